//! The SQLite engine: one file in WAL mode (readers never block the
//! writer), one connection per process behind a mutex, every call on
//! tokio's blocking threads so no async worker waits on the disk. Writes
//! run in IMMEDIATE transactions, so several processes on one file
//! serialize instead of failing with "database is locked".

mod entries;

mod runs;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use polysync_provider_api::{CatalogEntry, RunHandle, RunStatus};
use rusqlite::Connection;

use super::{
    ArchivedLog, EntryFilter, Heartbeat, NewRun, PageCounts, Recorded, RunFilter, Stamp, Store, StoredEntry, StoredRun,
    SyncRecord,
};
use crate::error::{Error, Result};

/// A catalog in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
}

/// The error of a failed statement, naming the file.
fn err(path: &Path, source: rusqlite::Error) -> Error {
    let store = path.display().to_string();
    let message = format!("{source}; check the file is writable and not corrupt");
    if let rusqlite::Error::FromSqlConversionFailure(_, _, cause) = source {
        return match cause.downcast::<super::RowError>() {
            Ok(row) => Error::Catalog { store, message: row.to_string(), source: Some(row) },
            Err(cause) => Error::Catalog { store, message, source: Some(cause) },
        };
    }
    Error::Catalog { store, message, source: Some(Box::new(source)) }
}

/// A row read by [`super::rows`], as rusqlite's result (its error carried
/// through to [`err`], which shows it as it is).
fn readable<T>(read: Result<T, super::RowError>) -> rusqlite::Result<T> {
    read.map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Null, Box::new(e)))
}

impl SqliteStore {
    /// Open (creating the file, 0600, and its directory, 0700, if needed)
    /// and migrate. A file that is not a polysync catalog, or one written by
    /// a newer polysync, is refused before anything in it changes.
    pub async fn open(path: &Path) -> Result<Self> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(&path))
            .await
            .map_err(|source| Error::Task { context: "opening the catalog", source })?
    }

    /// [`SqliteStore::open`] on the calling thread.
    pub fn open_blocking(path: &Path) -> Result<Self> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(Error::io(format!("creating the catalog directory {}", dir.display())))?;
        }
        if !path.exists() {
            // The catalog holds parameter defaults: the owner's alone. SQLite
            // gives its -wal and -shm files the same mode.
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(Error::io(format!("creating the catalog {}", path.display())))?;
        }
        let mut conn = Connection::open(path).map_err(|e| err(path, e))?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(|e| err(path, e))?;
        schema::check_is_ours(&conn, path)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| err(path, e))?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| err(path, e))?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(|e| err(path, e))?;
        schema::migrate(&mut conn, path)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)), path: Arc::new(path.to_path_buf()) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` on the connection on a blocking thread.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        self.call_checked(move |c| Ok(f(c))).await?.map_err(|e| err(&self.path, e))
    }

    /// [`SqliteStore::call`] for work that returns the host's own errors too.
    async fn call_checked<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|source| Error::Task { context: "a catalog call", source })?
    }

    fn wrap(&self) -> impl Fn(rusqlite::Error) -> Error + Send + 'static {
        let path = self.path.clone();
        move |e| err(&path, e)
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    async fn begin_sync(&self, connection: &str, owner: &str, lease: Duration) -> Result<i64> {
        let (connection, owner) = (connection.to_owned(), owner.to_owned());
        let wrap = self.wrap();
        self.call_checked(move |c| entries::begin_sync(c, &connection, &owner, lease, &wrap)).await
    }

    async fn upsert_page(&self, sync_id: i64, list: &[CatalogEntry], lease: Duration) -> Result<PageCounts> {
        let list = list.to_vec();
        self.call(move |c| entries::upsert_page(c, sync_id, &list, lease)).await
    }

    async fn restart_sync_counts(&self, sync_id: i64) -> Result<()> {
        self.call(move |c| {
            c.execute("UPDATE syncs SET seen = 0, added = 0, updated = 0, unchanged = 0 WHERE id = ?1", [sync_id])
                .map(drop)
        })
        .await
    }

    async fn finish_sync(&self, sync_id: i64, complete: bool, error: Option<&str>) -> Result<SyncRecord> {
        let error = error.map(str::to_owned);
        self.call(move |c| entries::finish_sync(c, sync_id, complete, error.as_deref())).await
    }

    async fn sync_record(&self, sync_id: i64) -> Result<Option<SyncRecord>> {
        self.call(move |c| entries::sync_record(c, sync_id)).await
    }

    async fn entry(&self, connection: &str, external_id: &str) -> Result<Option<StoredEntry>> {
        let (connection, external_id) = (connection.to_owned(), external_id.to_owned());
        self.call(move |c| entries::entry(c, &connection, &external_id)).await
    }

    async fn entries(&self, filter: &EntryFilter) -> Result<Vec<StoredEntry>> {
        let filter = filter.clone();
        self.call(move |c| entries::entries(c, &filter)).await
    }

    async fn record_intent(&self, run: &NewRun, owner: &str, lease: Duration) -> Result<Recorded> {
        let (run, owner) = (run.clone(), owner.to_owned());
        let wrap = self.wrap();
        self.call_checked(move |c| runs::record_intent(c, &run, &owner, lease).map_err(&wrap)?).await
    }

    async fn record_submitted(&self, id: i64, handle: &RunHandle) -> Result<StoredRun> {
        let handle = handle.clone();
        self.call(move |c| runs::record_submitted(c, id, &handle)).await
    }

    async fn record_submit_failed(&self, id: i64, message: &str) -> Result<()> {
        let message = message.to_owned();
        self.call(move |c| runs::record_submit_failed(c, id, &message)).await
    }

    async fn withdraw(&self, id: i64) -> Result<bool> {
        self.call(move |c| runs::withdraw(c, id)).await
    }

    async fn record_status(&self, id: i64, status: &RunStatus) -> Result<Option<StoredRun>> {
        let status = status.clone();
        self.call(move |c| runs::record_status(c, id, &status)).await
    }

    async fn mark_cancelling(&self, id: i64, cancelling: bool) -> Result<()> {
        self.call(move |c| {
            c.execute("UPDATE runs SET cancelling = ?2 WHERE id = ?1", rusqlite::params![id, cancelling]).map(drop)
        })
        .await
    }

    async fn mark_finalized(&self, id: i64) -> Result<()> {
        self.call(move |c| {
            c.execute("UPDATE runs SET finalized = 1, owner = NULL, lease_until = NULL WHERE id = ?1", [id]).map(drop)
        })
        .await
    }

    async fn run(&self, id: i64) -> Result<Option<StoredRun>> {
        self.call(move |c| runs::by_id(c, id)).await
    }

    async fn run_by_key(&self, key: &str) -> Result<Option<StoredRun>> {
        let key = key.to_owned();
        self.call(move |c| runs::by_key(c, &key)).await
    }

    async fn run_by_platform_id(&self, run_id: &str) -> Result<Option<StoredRun>> {
        let run_id = run_id.to_owned();
        self.call(move |c| runs::by_platform_id(c, &run_id)).await
    }

    async fn runs(&self, filter: &RunFilter) -> Result<Vec<StoredRun>> {
        let filter = filter.clone();
        self.call(move |c| runs::list(c, &filter)).await
    }

    async fn runs_changed(&self, since: Stamp, run: Option<i64>, limit: usize) -> Result<Vec<StoredRun>> {
        self.call(move |c| runs::changed(c, since, run, limit)).await
    }

    async fn count_by_state(&self) -> Result<Vec<(super::RunState, u64)>> {
        self.call(|c| {
            let mut stmt = c.prepare_cached("SELECT state, count(*) FROM runs GROUP BY state")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            let rows = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows.into_iter().filter_map(|(s, n)| Some((super::RunState::parse(&s)?, n as u64))).collect())
        })
        .await
    }

    async fn claim_runs(
        &self,
        owner: &str,
        connection: Option<&str>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<StoredRun>> {
        let (owner, connection) = (owner.to_owned(), connection.map(str::to_owned));
        self.call(move |c| runs::claim(c, &owner, connection.as_deref(), lease, limit)).await
    }

    async fn open_owners(&self, connection: Option<&str>) -> Result<Vec<String>> {
        let connection = connection.map(str::to_owned);
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "WITH RECURSIVE o(owner) AS (
                     SELECT (SELECT owner FROM runs WHERE finalized = 0 AND owner IS NOT NULL AND (?1 IS NULL OR connection = ?1)
                             ORDER BY owner LIMIT 1)
                     UNION ALL
                     SELECT (SELECT r.owner FROM runs r WHERE r.finalized = 0 AND r.owner > o.owner
                                                        AND (?1 IS NULL OR r.connection = ?1)
                             ORDER BY r.owner LIMIT 1)
                     FROM o WHERE o.owner IS NOT NULL)
                 SELECT owner FROM o WHERE owner IS NOT NULL",
            )?;
            let owners = stmt.query_map([connection], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(owners)
        })
        .await
    }

    async fn heartbeat(&self, owner: &str, lease: Duration, taken_on: &[i64], let_go: &[i64]) -> Result<Heartbeat> {
        let (owner, taken_on, let_go) = (owner.to_owned(), taken_on.to_vec(), let_go.to_vec());
        self.call(move |c| runs::heartbeat(c, &owner, lease, &taken_on, &let_go)).await
    }

    async fn renew_leases(&self, owner: &str, ids: &[i64], lease: Duration) -> Result<Vec<i64>> {
        let (owner, ids) = (owner.to_owned(), ids.to_vec());
        self.call(move |c| runs::renew(c, &owner, &ids, lease)).await
    }

    async fn release_runs(&self, owner: &str, ids: Option<&[i64]>) -> Result<u64> {
        let (owner, ids) = (owner.to_owned(), ids.map(|i| super::json(&i)));
        self.call(move |c| {
            c.execute(
                "UPDATE runs SET owner = NULL, lease_until = NULL WHERE owner = ?1 AND (?2 IS NULL OR id IN (SELECT value FROM json_each(?2)))",
                rusqlite::params![owner, ids],
            )
            .map(|n| n as u64)
        })
        .await
    }

    async fn archive_logs(&self, id: i64, logs: &[ArchivedLog]) -> Result<()> {
        let mut rows = Vec::with_capacity(logs.len());
        for log in logs {
            rows.push((
                log.unit.clone(),
                log.container.clone(),
                log.text.len() as i64,
                log.truncated,
                super::logs::compress(&log.text)?,
            ));
        }
        self.call(move |c| {
            let tx = c.transaction()?;
            for (unit, container, bytes, truncated, data) in rows {
                tx.execute(
                    "INSERT INTO run_logs (run, unit, container, bytes, truncated, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (run, unit, container) DO UPDATE SET bytes = ?4, truncated = ?5, data = ?6",
                    rusqlite::params![id, unit, container, bytes, truncated, data],
                )?;
            }
            tx.commit()
        })
        .await
    }

    async fn archived_logs(&self, id: i64) -> Result<Option<Vec<ArchivedLog>>> {
        let rows: Vec<(String, String, bool, Vec<u8>)> = self
            .call(move |c| {
                let mut stmt =
                    c.prepare("SELECT unit, container, truncated, data FROM run_logs WHERE run = ?1 ORDER BY rowid")?;
                let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
                rows.collect()
            })
            .await?;
        let mut out = Vec::new();
        for (unit, container, truncated, data) in rows {
            let text = super::logs::decompress(&unit, &container, &data)?;
            out.push(ArchivedLog { unit, container, text, truncated });
        }
        Ok((!out.is_empty()).then_some(out))
    }
}
