//! The PostgreSQL engine, for several hosts sharing one catalog: a pool of
//! `tokio-postgres` connections (deadpool), TLS through rustls with ring
//! (the one TLS stack polysync ships) when the server offers it, and run
//! claims with `FOR UPDATE SKIP LOCKED`, so hosts claiming at once never
//! wait on each other or take the same run.

mod entries;
mod runs;
mod schema;
pub mod tls;

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use polysync_provider_api::{CatalogEntry, RunHandle, RunStatus};
use tokio_postgres::types::ToSql;

use super::PostgresCatalog;
use super::rows;
use super::{
    ArchivedLog, EntryFilter, Heartbeat, NewRun, PageCounts, Recorded, RunFilter, RunState, Stamp, Store, StoredEntry,
    StoredRun, SyncRecord, unreadable,
};
use crate::error::{Error, Result};

/// A catalog in a PostgreSQL database.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    shown: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("at", &self.shown).finish_non_exhaustive()
    }
}

pub(super) fn err(shown: &str, e: tokio_postgres::Error) -> Error {
    let detail = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        // "invalid configuration", "error performing TLS handshake": the
        // cause is in the chain.
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                let said = cause.to_string();
                if !text.contains(&said) {
                    text = format!("{text}: {said}");
                }
                source = cause.source();
            }
            text
        }
    };
    let message = if detail.contains("password missing") {
        "the server asks for a password and none is configured: set `catalog_password_env` (the name of a variable holding it) or `catalog_password_file`".to_owned()
    } else if detail.contains("not valid for name") {
        format!(
            "{detail}; connect by a name the server's certificate holds (sslmode=verify-full checks it), or use sslmode=verify-ca to check its signer only"
        )
    } else if detail.contains("TLS handshake") {
        format!(
            "{detail}; the server's certificate was refused: give sslrootcert=<the CA's PEM file> in the URL, or sslmode=require to encrypt without checking it (libpq's meaning)"
        )
    } else if detail.contains("no encryption") || detail.contains("SSL off") {
        format!("{detail}; the server takes TLS connections only: drop sslmode=disable (the default, prefer, uses TLS)")
    } else {
        format!("{detail}; check the server is reachable and the role may create and write tables there")
    };
    Error::Catalog { store: shown.to_owned(), message, source: Some(Box::new(e)) }
}

impl PostgresStore {
    /// `what` was there a statement ago and is not now: another process
    /// deleted it (polysync never deletes runs or syncs).
    fn vanished(&self, what: String) -> Error {
        Error::Catalog {
            store: self.shown.clone(),
            message: format!("{what} vanished from the catalog; something other than polysync deletes its rows"),
            source: None,
        }
    }

    /// Connect (checking the server answers) and migrate.
    pub async fn open(location: &PostgresCatalog) -> Result<Self> {
        let (url, settings) = tls::split(&location.url)?;
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| Error::Config(format!("`catalog` is not a PostgreSQL URL ({}): {e}", location.shown())))?;
        config.ssl_mode(settings.mode.wire());
        let connector = tokio_postgres_rustls::MakeRustlsConnect::new(tls::client_config(&settings)?);
        if let Some(password) = location.password()? {
            config.password(password);
        }
        if config.get_application_name().is_none() {
            config.application_name("polysync");
        }
        config.connect_timeout(Duration::from_secs(10));
        let shown = location.shown();
        // libpq's allow: without TLS if the server takes that, else with.
        if settings.mode == tls::SslMode::Allow && config.connect(tokio_postgres::NoTls).await.is_err() {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
        }
        let manager =
            Manager::from_config(config, connector, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(16)
            .build()
            .map_err(|e| Error::Config(format!("the catalog {shown}: {e}")))?;
        let store = Self { pool, shown };
        let mut client = store.client().await?;
        schema::migrate(&mut client, &store.shown).await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => err(&self.shown, e),
            other => Error::Catalog {
                store: self.shown.clone(),
                message: format!("{other}; check the server is reachable"),
                source: Some(Box::new(other)),
            },
        })
    }

    fn fail(&self) -> impl Fn(tokio_postgres::Error) -> Error + '_ {
        |e| err(&self.shown, e)
    }

    async fn query_runs(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<StoredRun>> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(self.fail())?;
        let found = client.query(&stmt, params).await.map_err(self.fail())?;
        found.iter().map(rows::run).collect::<Result<_, _>>().map_err(|e| unreadable(&self.shown, e))
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(self.fail())?;
        client.execute(&stmt, params).await.map_err(self.fail())
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    async fn begin_sync(&self, connection: &str, owner: &str, lease: Duration) -> Result<i64> {
        entries::begin_sync(self, connection, owner, lease).await
    }

    async fn upsert_page(&self, sync_id: i64, entries: &[CatalogEntry], lease: Duration) -> Result<PageCounts> {
        entries::upsert_page(self, sync_id, entries, lease).await
    }

    async fn restart_sync_counts(&self, sync_id: i64) -> Result<()> {
        entries::restart_sync_counts(self, sync_id).await
    }

    async fn finish_sync(&self, sync_id: i64, complete: bool, error: Option<&str>) -> Result<SyncRecord> {
        entries::finish_sync(self, sync_id, complete, error).await
    }

    async fn sync_record(&self, sync_id: i64) -> Result<Option<SyncRecord>> {
        entries::sync_record(self, sync_id).await
    }

    async fn entry(&self, connection: &str, external_id: &str) -> Result<Option<StoredEntry>> {
        entries::entry(self, connection, external_id).await
    }

    async fn entries(&self, filter: &EntryFilter) -> Result<Vec<StoredEntry>> {
        entries::entries(self, filter).await
    }

    async fn record_intent(&self, run: &NewRun, owner: &str, lease: Duration) -> Result<Recorded> {
        runs::record_intent(self, run, owner, lease).await
    }

    async fn record_submitted(&self, id: i64, handle: &RunHandle) -> Result<StoredRun> {
        runs::record_submitted(self, id, handle).await
    }

    async fn record_submit_failed(&self, id: i64, message: &str) -> Result<()> {
        runs::record_submit_failed(self, id, message).await
    }

    async fn withdraw(&self, id: i64) -> Result<bool> {
        runs::withdraw(self, id).await
    }

    async fn record_status(&self, id: i64, status: &RunStatus) -> Result<Option<StoredRun>> {
        runs::record_status(self, id, status).await
    }

    async fn mark_cancelling(&self, id: i64, cancelling: bool) -> Result<()> {
        runs::mark_cancelling(self, id, cancelling).await
    }

    async fn mark_finalized(&self, id: i64) -> Result<()> {
        runs::mark_finalized(self, id).await
    }

    async fn run(&self, id: i64) -> Result<Option<StoredRun>> {
        runs::run(self, id).await
    }

    async fn run_by_key(&self, key: &str) -> Result<Option<StoredRun>> {
        runs::run_by_key(self, key).await
    }

    async fn run_by_platform_id(&self, run_id: &str) -> Result<Option<StoredRun>> {
        runs::run_by_platform_id(self, run_id).await
    }

    async fn runs(&self, filter: &RunFilter) -> Result<Vec<StoredRun>> {
        runs::runs(self, filter).await
    }

    async fn runs_changed(&self, since: Stamp, run: Option<i64>, limit: usize) -> Result<Vec<StoredRun>> {
        runs::runs_changed(self, since, run, limit).await
    }

    async fn count_by_state(&self) -> Result<Vec<(RunState, u64)>> {
        runs::count_by_state(self).await
    }

    async fn claim_runs(
        &self,
        owner: &str,
        connection: Option<&str>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<StoredRun>> {
        runs::claim_runs(self, owner, connection, lease, limit).await
    }

    async fn open_owners(&self, connection: Option<&str>) -> Result<Vec<String>> {
        runs::open_owners(self, connection).await
    }

    async fn heartbeat(&self, owner: &str, lease: Duration, taken_on: &[i64], let_go: &[i64]) -> Result<Heartbeat> {
        runs::heartbeat(self, owner, lease, taken_on, let_go).await
    }

    async fn renew_leases(&self, owner: &str, ids: &[i64], lease: Duration) -> Result<Vec<i64>> {
        runs::renew_leases(self, owner, ids, lease).await
    }

    async fn release_runs(&self, owner: &str, ids: Option<&[i64]>) -> Result<u64> {
        runs::release_runs(self, owner, ids).await
    }

    async fn archive_logs(&self, id: i64, logs: &[ArchivedLog]) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(self.fail())?;
        for log in logs {
            let data = super::logs::compress(&log.text)?;
            tx.execute(
                "INSERT INTO run_logs (run, unit, container, bytes, truncated, data) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (run, unit, container) DO UPDATE SET bytes = $4, truncated = $5, data = $6",
                &[&id, &log.unit, &log.container, &(log.text.len() as i64), &log.truncated, &data],
            )
            .await
            .map_err(self.fail())?;
        }
        tx.commit().await.map_err(self.fail())
    }

    async fn archived_logs(&self, id: i64) -> Result<Option<Vec<ArchivedLog>>> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT unit, container, truncated, data FROM run_logs WHERE run = $1 ORDER BY seq", &[&id])
            .await
            .map_err(self.fail())?;
        let mut out = Vec::new();
        for r in rows {
            let (unit, container): (String, String) = (r.get(0), r.get(1));
            let text = super::logs::decompress(&unit, &container, r.get::<_, &[u8]>(3))?;
            out.push(ArchivedLog { unit, container, text, truncated: r.get(2) });
        }
        Ok((!out.is_empty()).then_some(out))
    }
}
