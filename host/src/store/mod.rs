//! The catalog store: entries found by discovery, the history of syncs,
//! every run with its owner and lease, and archived logs — behind one
//! trait with two engines.
//!
//! * [`sqlite`] — one file (WAL), the embedded default;
//! * [`postgres`] — one database shared by several hosts (`polysync watch`
//!   processes, `polysync serve` replicas), which divide the active runs
//!   through leases.
//!
//! Guarantees, on both engines:
//! * an entry is never deleted: one not seen in a *complete* sync is marked
//!   `missing` (and can still run from its fallback attributes); a sync that
//!   failed midway marks nothing missing;
//! * a run is recorded (with its idempotency key) before the provider is
//!   called and updated after, so a crash loses no run and a restart can
//!   finish submitting it without creating a second one;
//! * a run never leaves a final state;
//! * an active run is followed by at most one host at a time: the one
//!   holding its lease ([`Store::claim_runs`]). A run just recorded or
//!   claimed has a lease of its own; once its host follows it, the host's
//!   heartbeat holds it ([`Store::heartbeat`]), so keeping 10,000 runs is
//!   one write per period, not 10,000;
//! * connection settings are never stored, only connection names.
//!
//! SQL stays behind this trait: the workflows in [`crate::runs`] see typed
//! values only.

mod host_id;
mod location;
mod logs;
mod model;
pub mod postgres;
mod rows;
mod sql;
pub mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use polysync_provider_api::{CatalogEntry, RunHandle, RunStatus};

pub use crate::stamp::Stamp;
pub use host_id::HostId;
pub use location::{CatalogLocation, PasswordSource, PostgresCatalog};
pub use logs::{ARCHIVE_LIMIT, ArchivedLog, bounded};
pub use model::{
    CANCELLED_BY_USER, DeleteAfter, EntryFilter, EntryState, Heartbeat, NewRun, PageCounts, Recorded, RunFilter,
    RunState, SpecSource, StoredEntry, StoredRun, SyncRecord, SyncStatus, next_state, now_ms,
};
pub use rows::RowError;

use crate::error::Result;

/// The catalog, opened once per process and shared by every task.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Where it is, for messages (never a password).
    fn describe(&self) -> String;

    // ---- syncs and entries

    /// Start a sync of `connection` by `owner`. A sync of the same
    /// connection whose owner still holds it is a Conflict (one sync per
    /// connection at a time); one whose owner is gone is failed first.
    async fn begin_sync(&self, connection: &str, owner: &str, lease: Duration) -> Result<i64>;
    /// Upsert one page in one transaction, renewing the sync's lease.
    async fn upsert_page(&self, sync_id: i64, entries: &[CatalogEntry], lease: Duration) -> Result<PageCounts>;
    /// The provider restarted its listing: the counts start over.
    async fn restart_sync_counts(&self, sync_id: i64) -> Result<()>;
    /// Close a sync. Only a complete sync marks entries it did not see
    /// missing; a failed one records how far it got and marks nothing.
    async fn finish_sync(&self, sync_id: i64, complete: bool, error: Option<&str>) -> Result<SyncRecord>;
    async fn sync_record(&self, sync_id: i64) -> Result<Option<SyncRecord>>;
    async fn entry(&self, connection: &str, external_id: &str) -> Result<Option<StoredEntry>>;
    async fn entries(&self, filter: &EntryFilter) -> Result<Vec<StoredEntry>>;

    // ---- runs

    /// Record the intent to run, owned by `owner` for `lease`. The same key
    /// twice returns the existing run (a retried request); a key reused for
    /// another request is a Conflict.
    async fn record_intent(&self, run: &NewRun, owner: &str, lease: Duration) -> Result<Recorded>;
    /// The platform accepted the run. Returns the run as stored after.
    async fn record_submitted(&self, id: i64, handle: &RunHandle) -> Result<StoredRun>;
    /// The provider refused the run: final.
    async fn record_submit_failed(&self, id: i64, message: &str) -> Result<()>;
    /// Withdraw a run still `Submitting`; false if it was submitted meanwhile.
    async fn withdraw(&self, id: i64) -> Result<bool>;
    /// Store the latest status (see [`next_state`]); a final run is left
    /// as it is. Returns the run as stored after.
    async fn record_status(&self, id: i64, status: &RunStatus) -> Result<Option<StoredRun>>;
    /// Mark (or, when the platform refused it, unmark) a cancel polysync is
    /// making: while marked, a `Cancelled` status is recorded as
    /// `CancelledByUser` whoever records it first — the cancel itself, or
    /// a follower that saw the platform delete the run.
    async fn mark_cancelling(&self, id: i64, cancelling: bool) -> Result<()>;
    /// Logs archived and delete-after applied.
    async fn mark_finalized(&self, id: i64) -> Result<()>;
    async fn run(&self, id: i64) -> Result<Option<StoredRun>>;
    async fn run_by_key(&self, key: &str) -> Result<Option<StoredRun>>;
    /// The newest run with this platform id.
    async fn run_by_platform_id(&self, run_id: &str) -> Result<Option<StoredRun>>;
    async fn runs(&self, filter: &RunFilter) -> Result<Vec<StoredRun>>;
    /// Runs changed at or after `since`, oldest change first: what status
    /// streams poll, on any host.
    async fn runs_changed(&self, since: Stamp, run: Option<i64>, limit: usize) -> Result<Vec<StoredRun>>;
    /// How many runs are in each state.
    async fn count_by_state(&self) -> Result<Vec<(RunState, u64)>>;

    // ---- ownership

    /// Atomically take up to `limit` runs that need a host — active, or
    /// final but not finalized — that nobody holds (unowned, or the lease
    /// lapsed; runs `owner` holds already are not returned again). They
    /// are `owner`'s for `lease`.
    async fn claim_runs(
        &self,
        owner: &str,
        connection: Option<&str>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<StoredRun>>;
    /// The hosts holding unfinished runs (of `connection`), each once: how
    /// a host finds the runs of a process that ended without reading every
    /// open run.
    async fn open_owners(&self, connection: Option<&str>) -> Result<Vec<String>>;
    /// Keep every run `owner` follows its own for `lease` more, in one
    /// write whatever their number: a heartbeat. Runs with a lease of their
    /// own (`taken_on`: recorded or claimed since the last heartbeat) hand
    /// it over to the heartbeat; returns those still `owner`'s. Runs it
    /// stopped following unfinished (`let_go`) get a lease of their own
    /// again, for `lease`, and are claimable after it.
    async fn heartbeat(&self, owner: &str, lease: Duration, taken_on: &[i64], let_go: &[i64]) -> Result<Heartbeat>;
    /// Give `owner`'s runs `ids` a lease of their own for `lease`; returns
    /// the ids still its own (a run another host took over after a stall
    /// is dropped). What a host whose heartbeat lapsed does before it
    /// trusts its runs again.
    async fn renew_leases(&self, owner: &str, ids: &[i64], lease: Duration) -> Result<Vec<i64>>;
    /// Give up `owner`'s leases on `ids`, or on every run it holds (clean
    /// shutdown); another host may claim them at once.
    async fn release_runs(&self, owner: &str, ids: Option<&[i64]>) -> Result<u64>;

    // ---- logs

    /// Archive `logs` for run `id` (replacing an earlier archive).
    async fn archive_logs(&self, id: i64, logs: &[ArchivedLog]) -> Result<()>;
    /// The archived logs of run `id`, in the order they were written.
    async fn archived_logs(&self, id: i64) -> Result<Option<Vec<ArchivedLog>>>;
}

/// Open the catalog the config names (creating and migrating it).
pub async fn open(location: &CatalogLocation) -> Result<std::sync::Arc<dyn Store>> {
    Ok(match location {
        CatalogLocation::Sqlite(path) => std::sync::Arc::new(sqlite::SqliteStore::open(path).await?),
        CatalogLocation::Postgres(pg) => std::sync::Arc::new(postgres::PostgresStore::open(pg).await?),
    })
}

/// The refusal of a key reused for another request.
pub(crate) fn key_conflict(key: &str, run: &StoredRun) -> crate::Error {
    crate::error::Clash::KeyReused {
        key: key.to_owned(),
        run: run.id,
        connection: run.connection.clone(),
        entry: run.external_id.clone(),
        parameters: run.parameters.keys().cloned().collect(),
    }
    .into()
}

/// Whether `run` was recorded for the same request as `new`.
pub(crate) fn same_request(run: &StoredRun, new: &NewRun) -> bool {
    run.connection == new.connection && run.external_id == new.external_id && run.parameters == new.parameters
}

/// The JSON column of a value.
pub(crate) fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Whether a running sync's holder is gone, so the sync is failed
/// ([`model::INTERRUPTED`]) instead of blocking the next: its lease lapsed
/// (it was killed mid-way), or it is a process of this machine that ended
/// (no need to wait out its lease).
pub(crate) fn sync_holder_gone(holder: Option<&str>, lease_until: Option<i64>, now_ms: i64) -> bool {
    lease_until.is_none_or(|u| u < now_ms) || holder.is_some_and(HostId::is_gone)
}

/// The refusal of a sync while another of the same connection is held.
pub(crate) fn sync_busy(connection: &str, holder: Option<&str>, since: Stamp) -> crate::Error {
    crate::error::Clash::SyncRunning { connection: connection.to_owned(), holder: holder.map(str::to_owned), since }
        .into()
}

/// A row the catalog cannot read, as the host's error.
pub(crate) fn unreadable(store: &str, e: RowError) -> crate::Error {
    crate::Error::Catalog { store: store.to_owned(), message: e.to_string(), source: Some(Box::new(e)) }
}

/// A heartbeat lapsed this long ago, of a host that holds no open run, is
/// deleted: hosts are many over time (one per process).
pub(crate) const HOSTS_FORGOTTEN_MS: i64 = 3_600_000;

/// Lease length in milliseconds.
pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
