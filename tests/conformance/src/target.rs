//! What the suite needs to know about a provider under test.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use polysync::plugins::Registry;
use polysync_provider_api::RunRequest;
use polysync_provider_api::abi::host::PluginProvider;

use crate::raw::RawInstance;

/// A provider under test: its library, its connection settings, and entries
/// the suite may run.
#[derive(Debug, Clone)]
pub struct Target {
    pub plugin: String,
    pub path: PathBuf,
    pub settings: serde_json::Value,
    /// Ends `Success` within `timeout`.
    pub quick_run: RunRequest,
    /// Stays non-terminal for longer than any check takes.
    pub long_run: RunRequest,
    /// Makes the provider panic (only test providers have one).
    pub panic_run: Option<RunRequest>,
    /// If known, how many entries discover must return.
    pub expected_entries: Option<usize>,
    /// Page size for the paging check: small, to force many pages.
    pub page_size: u32,
    /// Bound for anything that waits on the platform.
    pub timeout: Duration,
    /// The entry's monitor URL: what it starts with, or why there is none.
    pub monitor_url: Promise,
    /// Text some log line of the finished quick run contains.
    pub quick_logs: Promise,
    /// Text the phase or reason of some event of the finished quick run
    /// contains.
    pub quick_events: Promise,
}

/// What a target promises about one thing the provider shows, so that a
/// check cannot pass on an empty answer: every target declares each one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Promise {
    /// Not declared: the check fails and says what to declare.
    #[default]
    Undeclared,
    /// There is one, and it has this text.
    Has(String),
    /// There is none, for this reason; the check asserts that.
    Nothing(&'static str),
}

impl Target {
    /// `quick` and `long` name an entry and its parameters; idempotency keys
    /// are filled in fresh for every use.
    pub fn new(
        plugin: &str,
        path: PathBuf,
        settings: serde_json::Value,
        quick: (&str, &[(&str, &str)]),
        long: (&str, &[(&str, &str)]),
    ) -> Self {
        Self {
            plugin: plugin.to_owned(),
            path,
            settings,
            quick_run: request(quick),
            long_run: request(long),
            panic_run: None,
            expected_entries: None,
            page_size: 7,
            timeout: Duration::from_secs(60),
            monitor_url: Promise::Undeclared,
            quick_logs: Promise::Undeclared,
            quick_events: Promise::Undeclared,
        }
    }

    /// The entry's monitor URL starts with `prefix`.
    pub fn monitor_url(mut self, prefix: &str) -> Self {
        self.monitor_url = Promise::Has(prefix.to_owned());
        self
    }

    /// The provider answers no monitor URL, for reason `why`.
    pub fn no_monitor_url(mut self, why: &'static str) -> Self {
        self.monitor_url = Promise::Nothing(why);
        self
    }

    /// The finished quick run logged a line containing `text`.
    pub fn quick_logs(mut self, text: &str) -> Self {
        self.quick_logs = Promise::Has(text.to_owned());
        self
    }

    /// The quick run logs nothing here, for reason `why`.
    pub fn no_quick_logs(mut self, why: &'static str) -> Self {
        self.quick_logs = Promise::Nothing(why);
        self
    }

    /// Some event of the finished quick run has `text` in its phase or
    /// reason.
    pub fn quick_events(mut self, text: &str) -> Self {
        self.quick_events = Promise::Has(text.to_owned());
        self
    }

    pub fn expect_entries(mut self, n: usize) -> Self {
        self.expected_entries = Some(n);
        self
    }

    pub fn panic_run(mut self, external_id: &str) -> Self {
        self.panic_run = Some(request((external_id, &[])));
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The provider as the host sees it: through the host's loader.
    pub fn provider(&self) -> PluginProvider {
        let mut registry = Registry::default();
        registry.add(self.path.clone());
        assert!(registry.refused().is_empty(), "the host refused the plugin: {:?}", registry.refused());
        registry.connect(&self.plugin, &self.settings).unwrap_or_else(|e| panic!("connect failed: {e}"))
    }

    /// The provider through the bare ABI, every callback recorded.
    pub fn raw(&self) -> RawInstance {
        RawInstance::open(&self.path, &self.settings)
    }

    /// `template` with a fresh idempotency key.
    pub fn fresh(&self, template: &RunRequest) -> RunRequest {
        RunRequest { idempotency_key: fresh_key(), ..template.clone() }
    }
}

fn request((external_id, params): (&str, &[(&str, &str)])) -> RunRequest {
    RunRequest {
        external_id: external_id.to_owned(),
        parameters: params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
        idempotency_key: String::new(),
        fallback: None,
    }
}

/// Unique across processes and test runs against a long-lived platform.
pub fn fresh_key() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("conformance-{}-{nanos}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}
