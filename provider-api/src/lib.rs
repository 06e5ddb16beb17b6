//! The stable contract between the polysync host and its providers.
//!
//! * Plain serde types ([`entry`], [`run`], [`stream`], [`manifest`],
//!   [`error`]) whose JSON is the wire format. Every enum has an `Unknown`
//!   fallback and every added field a default, so an older host reads a newer
//!   plugin's payloads and the other way round.
//! * The async [`Provider`] trait.
//! * The C ABI ([`abi`]): a `#[repr(C)]` function table behind one exported
//!   symbol, JSON payloads, non-blocking calls that report through a host
//!   callback. The plugin side (`plugin` feature) turns a `Provider` into that
//!   table with [`export_provider!`]; the host side (`host` feature) turns the
//!   table back into a `Provider`. `include/polysync_provider.h` is the same
//!   ABI for hosts written in other languages.
//!
//! This crate does no I/O of its own.

pub mod abi;
pub mod backoff;
pub mod clusters;
pub mod entry;
pub mod error;
pub mod manifest;
pub mod outputs;
pub mod provider;
pub mod run;
pub mod stream;

pub use backoff::Backoff;
pub use clusters::{ClusterInfo, ClustersPage, ClustersRequest};
pub use entry::{
    CatalogEntry, DataType, Direction, DiscoverPage, DiscoverRequest, EntryKind, FallbackAttributes, Parameter,
};
pub use error::{ErrorKind, ProviderError, Result};
pub use manifest::{API_VERSION, Capability, Manifest, SettingDoc};
pub use provider::{Provider, ResultStream};
pub use run::{
    CancelOutcome, CancelRequest, ContainerStatus, PollRequest, REASON_VANISHED, RunHandle, RunRequest, RunSource,
    RunState, RunStatus, UnitStatus, WatchRequest,
};
pub use stream::{EventKind, EventsRequest, LogChunk, LogRequest, MonitorUrl, RunEvent, UrlRequest};

/// Re-exported for `export_provider!` and for plugin crates.
pub use async_trait::async_trait;
pub use futures;
pub use serde_json;

/// What [`settings!`] expands to needs; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use serde;
}
