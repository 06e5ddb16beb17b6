//! The `Provider` trait: the operations every platform implements.
//!
//! The host sees plugins and in-process providers through this one trait
//! (the host wraps a loaded plugin's C function table in an implementation
//! of it), so everything above the loader is independent of how a provider
//! was built.

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::clusters::{ClustersPage, ClustersRequest};
use crate::entry::{DiscoverPage, DiscoverRequest};
use crate::error::Result;
use crate::manifest::Manifest;
use crate::run::{CancelOutcome, CancelRequest, PollRequest, RunHandle, RunRequest, RunStatus, WatchRequest};
use crate::stream::{EventsRequest, LogChunk, LogRequest, MonitorUrl, RunEvent, UrlRequest};

/// A stream of results that ends after its first `Err`.
pub type ResultStream<T> = BoxStream<'static, Result<T>>;

/// One connection to one platform (a cluster + namespace, an ECS cluster).
///
/// Every method is cancel-safe: dropping the future or stream stops the
/// work and leaves the platform consistent (a dropped `run` either created
/// the run or did not; retrying with the same idempotency key finds out).
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    fn manifest(&self) -> Manifest;

    /// One page of catalog entries.
    async fn discover(&self, request: DiscoverRequest) -> Result<DiscoverPage>;

    /// Start a parameterized rerun of an entry.
    async fn run(&self, request: RunRequest) -> Result<RunHandle>;

    /// Read the current status of one run.
    async fn poll(&self, request: PollRequest) -> Result<RunStatus>;

    /// Status changes of a set of runs: the current status of each first,
    /// then every change. The stream ends once every run is terminal.
    async fn watch(&self, request: WatchRequest) -> Result<ResultStream<RunStatus>>;

    /// Stop a run. Idempotent: a run already finished or gone is not an error.
    async fn cancel(&self, request: CancelRequest) -> Result<CancelOutcome>;

    /// The platform console page for an entry or a run.
    async fn monitor_url(&self, request: UrlRequest) -> Result<MonitorUrl>;

    /// Container logs of a run.
    async fn logs(&self, request: LogRequest) -> Result<ResultStream<LogChunk>>;

    /// Pod / task state changes of a run.
    async fn events(&self, request: EventsRequest) -> Result<ResultStream<RunEvent>>;

    /// The clusters the connection's credentials can reach, a page at a
    /// time (API 1.2; providers that have it say so with
    /// [`Capability::ListClusters`](crate::Capability::ListClusters)).
    async fn list_clusters(&self, _request: ClustersRequest) -> Result<ClustersPage> {
        Err(crate::ProviderError::unsupported(format!(
            "the {} provider cannot list clusters; set `cluster` by name",
            self.manifest().name
        )))
    }
}
