//! The conformance suite: what every provider must do, checked through its
//! real dynamic library.
//!
//! A provider's test file builds a [`Target`] (the plugin, connection
//! settings, and runs that succeed quickly or run long) and invokes
//! [`conformance_suite!`], which expands to one `#[test]` per check, so a
//! failure names the rule that was broken.
//!
//! Checks go through two doors: the host's own loader and
//! [`PluginProvider`](polysync_provider_api::abi::host::PluginProvider) (what
//! the host really uses), and a [`raw`] harness that records every callback,
//! for the rules only the ABI can show (exactly one terminal per call,
//! aborted calls end `Cancelled`).

pub mod artifacts;
pub mod checks;
pub mod compat;
pub mod raw;
mod target;

pub use target::{Promise, Target};

/// Expand to one test per conformance check. `$make` is an expression that
/// yields a [`Target`]; it is evaluated once per test. `conformance_suite!(
/// target, panics)` adds the check that a panic inside the plugin comes back
/// as `Internal`, for targets that have a run that panics on purpose (the
/// production plugins have none, so they do not get a test that could only
/// be skipped).
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr, panics) => {
        $crate::conformance_suite!($make);
        $crate::conformance_suite!(@tests $make; panic_comes_back_as_internal);
    };
    ($make:expr) => {
        $crate::conformance_suite!(@tests $make;
            manifest_is_valid,
            paging_terminates_without_duplicates,
            bad_parameters_are_invalid_input,
            unknown_run_is_not_found,
            run_moves_only_toward_terminal,
            same_idempotency_key_gives_same_run,
            cancel_is_idempotent,
            monitor_url_answers,
            streams_end_and_stop_when_dropped,
            aborted_calls_end_cancelled,
            every_call_gets_exactly_one_terminal,
            unknown_operation_is_unsupported,
            two_hundred_concurrent_calls,
            list_clusters_matches_the_manifest,
            payloads_parse_as_api_1_2,
        );
    };
    (@tests $make:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                let target: $crate::Target = $make;
                $crate::checks::run(stringify!($check), &target, $crate::checks::$check);
            }
        )*
    };
}
