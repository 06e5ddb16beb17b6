//! The PostgreSQL engine, for several hosts sharing one catalog: a pool of
//! `tokio-postgres` connections (deadpool), TLS through rustls with ring
//! (the one TLS stack polysync ships) when the server offers it, and run
//! claims with `FOR UPDATE SKIP LOCKED`, so hosts claiming at once never
//! wait on each other or take the same run.

mod schema;
pub mod tls;

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use polysync_provider_api::{CatalogEntry, RunHandle, RunStatus};
use tokio_postgres::types::ToSql;

use super::PostgresCatalog;
use super::rows::{self, ENTRY_COLUMNS, RUN_COLUMNS, SYNC_COLUMNS, kind_str};
use super::{
    ArchivedLog, EntryFilter, EntryState, HOSTS_FORGOTTEN_MS, Heartbeat, NewRun, PageCounts, Recorded, RunFilter,
    RunState, Store, StoredEntry, StoredRun, SyncRecord, SyncStatus, json, key_conflict, ms, next_state, now, now_ms,
    same_request, source_str, unreadable,
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
    Error::Catalog { store: shown.to_owned(), message }
}

/// Runs unowned or on a lease of their own: the claimable ones while no
/// heartbeat has lapsed, found through the partial index `runs_unheld`
/// (the rest of the open runs are held by heartbeats). `$4` is now.
const UNHELD: &str = "SELECT id FROM runs WHERE NOT finalized AND (owner IS NULL OR lease_until IS NOT NULL)
                                        AND (owner IS NULL OR lease_until < $4)";

/// Hosts whose heartbeat lapsed and that still hold open runs, each found
/// by one probe of `runs_open_by_owner` in owner order (the form the
/// planner reliably takes the index for: it expects an owner to hold many
/// runs and would read them all to learn one holds none).
const LAPSED_HOLDERS: &str = "SELECT h.owner FROM hosts h WHERE h.lease_until < $1
     AND h.owner = (SELECT r.owner FROM runs r WHERE NOT r.finalized AND r.owner >= h.owner ORDER BY r.owner LIMIT 1)";

impl PostgresStore {
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
            other => {
                Error::Catalog { store: self.shown.clone(), message: format!("{other}; check the server is reachable") }
            }
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
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(self.fail())?;
        // One sync per connection: serialize the check on a per-connection lock.
        tx.execute("SELECT pg_advisory_xact_lock(hashtext('polysync-sync:' || $1))", &[&connection])
            .await
            .map_err(self.fail())?;
        let now_ms = now_ms();
        let running = tx
            .query(
                "SELECT id, owner, lease_until FROM syncs WHERE status = 'running' AND connection = $1",
                &[&connection],
            )
            .await
            .map_err(self.fail())?;
        for row in running {
            let (id, holder, until): (i64, Option<String>, Option<i64>) = (row.get(0), row.get(1), row.get(2));
            let gone = until.is_none_or(|u| u < now_ms) || holder.as_deref().is_some_and(crate::store::HostId::is_gone);
            if gone {
                tx.execute(
                    "UPDATE syncs SET status = 'failed', finished_at = $2, error = $3 WHERE id = $1",
                    &[&id, &now(), &crate::store::model::INTERRUPTED],
                )
                .await
                .map_err(self.fail())?;
            } else {
                let since: String = tx
                    .query_one("SELECT started_at FROM syncs WHERE id = $1", &[&id])
                    .await
                    .map_err(self.fail())?
                    .get(0);
                return Err(Error::Conflict(format!(
                    "a sync of {connection} is already running (by {}, since {since}); wait for it to end",
                    holder.unwrap_or_default()
                )));
            }
        }
        let id: i64 = tx
            .query_one(
                "INSERT INTO syncs (connection, started_at, status, pid, owner, lease_until) VALUES ($1, $2, 'running', $3, $4, $5) RETURNING id",
                &[&connection, &now(), &i64::from(std::process::id()), &owner, &(now_ms + ms(lease))],
            )
            .await
            .map_err(self.fail())?
            .get(0);
        tx.commit().await.map_err(self.fail())?;
        Ok(id)
    }

    async fn upsert_page(&self, sync_id: i64, entries: &[CatalogEntry], lease: Duration) -> Result<PageCounts> {
        let at = now();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(self.fail())?;
        let connection: String =
            tx.query_one("SELECT connection FROM syncs WHERE id = $1", &[&sync_id]).await.map_err(self.fail())?.get(0);
        let ids: Vec<&str> = entries.iter().map(|e| e.external_id.as_str()).collect();
        // What the page's entries were, in one round trip.
        let before: std::collections::HashMap<String, (Vec<Option<String>>, String)> = tx
            .query(
                "SELECT external_id, kind, display_name, namespace, cluster, parameters, fallback, fingerprint, labels, state
                 FROM entries WHERE connection = $1 AND external_id = ANY($2)",
                &[&connection, &ids],
            )
            .await
            .map_err(self.fail())?
            .iter()
            .map(|r| (r.get(0), ((1..9).map(|i| r.get::<_, Option<String>>(i)).collect(), r.get(9))))
            .collect();
        let upsert = tx
            .prepare_cached(
                "INSERT INTO entries (connection, external_id, kind, display_name, namespace, cluster, parameters, fallback, fingerprint, labels, state, first_seen, last_seen, last_sync)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'active', $11, $11, $12)
                 ON CONFLICT (connection, external_id) DO UPDATE SET
                    kind = excluded.kind, display_name = excluded.display_name, namespace = excluded.namespace,
                    cluster = excluded.cluster, parameters = excluded.parameters, fallback = excluded.fallback,
                    fingerprint = excluded.fingerprint, labels = excluded.labels, state = 'active',
                    last_seen = excluded.last_seen, last_sync = excluded.last_sync",
            )
            .await
            .map_err(self.fail())?;
        let mut counts = PageCounts::default();
        let rows: Vec<[Option<String>; 8]> = entries
            .iter()
            .map(|e| {
                [
                    Some(kind_str(e.kind)),
                    Some(e.display_name.clone()),
                    e.namespace.clone(),
                    e.cluster.clone(),
                    Some(json(&e.parameters)),
                    Some(json(&e.fallback)),
                    Some(e.fingerprint.clone()),
                    Some(json(&e.labels)),
                ]
            })
            .collect();
        for (e, row) in entries.iter().zip(&rows) {
            match before.get(&e.external_id) {
                None => counts.added += 1,
                Some((stored, state)) if stored.as_slice() == row.as_slice() && state == "active" => {
                    counts.unchanged += 1
                }
                Some(_) => counts.updated += 1,
            }
        }
        // Pipelined: every upsert of the page in flight at once.
        let params: Vec<[&(dyn ToSql + Sync); 12]> = entries
            .iter()
            .zip(&rows)
            .map(|(e, row)| {
                [
                    &connection as &(dyn ToSql + Sync),
                    &e.external_id,
                    &row[0],
                    &row[1],
                    &row[2],
                    &row[3],
                    &row[4],
                    &row[5],
                    &row[6],
                    &row[7],
                    &at,
                    &sync_id,
                ]
            })
            .collect();
        let writes = params.iter().map(|p| tx.execute(&upsert, p));
        futures::future::try_join_all(writes).await.map_err(self.fail())?;
        tx.execute(
            "UPDATE syncs SET pages = pages + 1, seen = seen + $2, added = added + $3, updated = updated + $4, unchanged = unchanged + $5, lease_until = $6 WHERE id = $1",
            &[
                &sync_id,
                &(entries.len() as i64),
                &(counts.added as i64),
                &(counts.updated as i64),
                &(counts.unchanged as i64),
                &(now_ms() + ms(lease)),
            ],
        )
        .await
        .map_err(self.fail())?;
        tx.commit().await.map_err(self.fail())?;
        Ok(counts)
    }

    async fn restart_sync_counts(&self, sync_id: i64) -> Result<()> {
        self.execute("UPDATE syncs SET seen = 0, added = 0, updated = 0, unchanged = 0 WHERE id = $1", &[&sync_id])
            .await
            .map(drop)
    }

    async fn finish_sync(&self, sync_id: i64, complete: bool, error: Option<&str>) -> Result<SyncRecord> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(self.fail())?;
        let missing = if complete {
            tx.execute(
                "UPDATE entries SET state = 'missing' WHERE connection = (SELECT connection FROM syncs WHERE id = $1) AND last_sync != $1 AND state = 'active'",
                &[&sync_id],
            )
            .await
            .map_err(self.fail())?
        } else {
            0
        };
        tx.execute(
            "UPDATE syncs SET finished_at = $2, status = $3, missing = $4, error = $5, lease_until = NULL WHERE id = $1",
            &[&sync_id, &now(), &SyncStatus::ended(complete).as_str(), &(missing as i64), &error],
        )
        .await
        .map_err(self.fail())?;
        tx.commit().await.map_err(self.fail())?;
        drop(client);
        self.sync_record(sync_id).await?.ok_or_else(|| Error::Io(format!("sync {sync_id} vanished")))
    }

    async fn sync_record(&self, sync_id: i64) -> Result<Option<SyncRecord>> {
        let client = self.client().await?;
        let row = client
            .query_opt(&format!("SELECT {SYNC_COLUMNS} FROM syncs WHERE id = $1"), &[&sync_id])
            .await
            .map_err(self.fail())?;
        row.as_ref().map(rows::sync).transpose().map_err(|e| unreadable(&self.shown, e))
    }

    async fn entry(&self, connection: &str, external_id: &str) -> Result<Option<StoredEntry>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE connection = $1 AND external_id = $2"))
            .await
            .map_err(self.fail())?;
        let row = client.query_opt(&stmt, &[&connection, &external_id]).await.map_err(self.fail())?;
        row.as_ref().map(rows::entry).transpose().map_err(|e| unreadable(&self.shown, e))
    }

    async fn entries(&self, filter: &EntryFilter) -> Result<Vec<StoredEntry>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {ENTRY_COLUMNS} FROM entries WHERE ($1::text IS NULL OR connection = $1) AND ($2::text IS NULL OR state = $2)
                     AND ($3::text IS NULL OR (connection, external_id) > ($3, $4::text)) ORDER BY connection, external_id LIMIT $5"
                ),
                &[
                    &filter.connection,
                    &filter.state.map(EntryState::as_str),
                    &filter.after.as_ref().map(|a| a.0.as_str()),
                    &filter.after.as_ref().map(|a| a.1.as_str()),
                    &filter.limit.map(|l| l as i64),
                ],
            )
            .await
            .map_err(self.fail())?;
        rows.iter().map(rows::entry).collect::<Result<_, _>>().map_err(|e| unreadable(&self.shown, e))
    }

    async fn record_intent(&self, run: &NewRun, owner: &str, lease: Duration) -> Result<Recorded> {
        let at = now();
        let timeout_ms = run.startup_timeout.map(ms);
        // One round trip for a new run: the insert returns it.
        let inserted = self.query_runs(
            &format!("INSERT INTO runs (connection, external_id, idempotency_key, parameters, state, delete_after, created_at, updated_at, startup_timeout_ms, owner, lease_until, callback_url)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11) ON CONFLICT (idempotency_key) DO NOTHING RETURNING {RUN_COLUMNS}"),
            &[
                &run.connection,
                &run.external_id,
                &run.idempotency_key,
                &json(&run.parameters),
                &RunState::Submitting.as_str(),
                &run.delete_after.as_str(),
                &at,
                &timeout_ms,
                &owner,
                &(now_ms() + ms(lease)),
                &run.callback_url,
            ],
        )
        .await?
        .pop();
        if let Some(run) = inserted {
            return Ok(Recorded { run, created: true });
        }
        let stored = self
            .run_by_key(&run.idempotency_key)
            .await?
            .ok_or_else(|| Error::Io("the run vanished right after it was recorded".into()))?;
        if !same_request(&stored, run) {
            return Err(key_conflict(&run.idempotency_key, &stored));
        }
        Ok(Recorded { run: stored, created: false })
    }

    async fn record_submitted(&self, id: i64, handle: &RunHandle) -> Result<StoredRun> {
        self.query_runs(
            &format!(
                "UPDATE runs SET run_id = $2, state = CASE WHEN state = 'Submitting' THEN 'Starting' ELSE state END, source = $3, monitor_url = $4, updated_at = $5 WHERE id = $1 RETURNING {RUN_COLUMNS}"
            ),
            &[&id, &handle.run_id, &source_str(handle), &handle.monitor_url, &now()],
        )
        .await?
        .pop()
        .ok_or_else(|| Error::Io(format!("run #{id} vanished from the catalog")))
    }

    async fn record_submit_failed(&self, id: i64, message: &str) -> Result<()> {
        self.execute(
            "UPDATE runs SET state = 'SubmitFailed', message = $2, updated_at = $3, finished_at = $3, finalized = true, owner = NULL, lease_until = NULL WHERE id = $1",
            &[&id, &message, &now()],
        )
        .await
        .map(drop)
    }

    async fn withdraw(&self, id: i64) -> Result<bool> {
        let n = self
            .execute(
                "UPDATE runs SET state = 'Withdrawn', reason = 'WithdrawnByUser', updated_at = $2, finished_at = $2, finalized = true, owner = NULL, lease_until = NULL
                 WHERE id = $1 AND state = 'Submitting' AND run_id IS NULL",
                &[&id, &now()],
            )
            .await?;
        Ok(n == 1)
    }

    async fn record_status(&self, id: i64, status: &RunStatus) -> Result<Option<StoredRun>> {
        // One statement takes the row lock, checks that the run is not final
        // and writes: a status costs one round trip, not four (a transaction
        // around SELECT … FOR UPDATE). Only the reason of a vanished run
        // depends on the stored state; SET reads the row as it was.
        let at = now();
        let (state, reason, final_now) = next_state(RunState::Unknown, status);
        let finished = final_now.then(|| crate::store::model::finished_at(status, &at));
        let finals: Vec<&str> = RunState::finals().collect();
        let written = self
            .query_runs(
                &format!(
                    "UPDATE runs SET state = $2,
                         reason = CASE WHEN $9 THEN 'Vanished after ' || state WHEN $2 = 'Cancelled' AND cancelling THEN $11 ELSE $3 END,
                         message = CASE WHEN $2 = 'Cancelled' AND cancelling THEN NULL ELSE $4 END, updated_at = $5,
                         finished_at = COALESCE(finished_at, CASE WHEN $6::text IS NULL THEN NULL ELSE GREATEST($6, started_at, $12, created_at) END),
                         outputs = COALESCE($7, outputs), output_error = COALESCE($8, output_error),
                         started_at = COALESCE(started_at, CASE WHEN $12::text IS NULL THEN NULL ELSE GREATEST($12, created_at) END), exit_codes = COALESCE($13, exit_codes)
                     WHERE id = $1 AND state <> ALL($10) RETURNING {RUN_COLUMNS}"
                ),
                &[
                    &id,
                    &state.as_str(),
                    &reason,
                    &status.message,
                    &at,
                    &finished,
                    &crate::store::model::outputs_json(status),
                    &status.output_error,
                    &crate::store::model::vanished(status),
                    &finals,
                    &crate::store::model::CANCELLED_BY_USER,
                    &crate::store::model::started_at(status, &at),
                    &crate::store::model::exit_codes_json(status),
                ],
            )
            .await?
            .pop();
        match written {
            Some(run) => Ok(Some(run)),
            // Final already (it stays as it is), or no such run.
            None => self.run(id).await,
        }
    }

    async fn mark_cancelling(&self, id: i64, cancelling: bool) -> Result<()> {
        self.execute("UPDATE runs SET cancelling = $2 WHERE id = $1", &[&id, &cancelling]).await.map(drop)
    }

    async fn mark_finalized(&self, id: i64) -> Result<()> {
        self.execute("UPDATE runs SET finalized = true, owner = NULL, lease_until = NULL WHERE id = $1", &[&id])
            .await
            .map(drop)
    }

    async fn run(&self, id: i64) -> Result<Option<StoredRun>> {
        Ok(self.query_runs(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"), &[&id]).await?.pop())
    }

    async fn run_by_key(&self, key: &str) -> Result<Option<StoredRun>> {
        Ok(self.query_runs(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE idempotency_key = $1"), &[&key]).await?.pop())
    }

    async fn run_by_platform_id(&self, run_id: &str) -> Result<Option<StoredRun>> {
        Ok(self
            .query_runs(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $1 ORDER BY id DESC LIMIT 1"),
                &[&run_id],
            )
            .await?
            .pop())
    }

    async fn runs(&self, filter: &RunFilter) -> Result<Vec<StoredRun>> {
        let limit = filter.limit.map(|l| l as i64);
        self.query_runs(
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE ($1::text IS NULL OR connection = $1) AND ($2::text IS NULL OR external_id = $2)
                 AND ($3::text IS NULL OR state = $3) AND ($4::bigint IS NULL OR id < $4) AND (NOT $6 OR NOT finalized) ORDER BY id DESC LIMIT $5"
            ),
            &[&filter.connection, &filter.external_id, &filter.state.map(RunState::as_str), &filter.before, &limit, &filter.open],
        )
        .await
    }

    async fn runs_changed(&self, since: &str, run: Option<i64>, limit: usize) -> Result<Vec<StoredRun>> {
        self.query_runs(
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE updated_at >= $1 AND ($2::bigint IS NULL OR id = $2) ORDER BY updated_at, id LIMIT $3"
            ),
            &[&since, &run, &(limit as i64)],
        )
        .await
    }

    async fn count_by_state(&self) -> Result<Vec<(RunState, u64)>> {
        let client = self.client().await?;
        let rows = client.query("SELECT state, count(*) FROM runs GROUP BY state", &[]).await.map_err(self.fail())?;
        Ok(rows.iter().filter_map(|r| Some((RunState::parse(r.get(0))?, r.get::<_, i64>(1) as u64))).collect())
    }

    async fn claim_runs(
        &self,
        owner: &str,
        connection: Option<&str>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<StoredRun>> {
        let now = now_ms();
        let lapsed: Vec<String> = {
            let client = self.client().await?;
            let stmt = client.prepare_cached(LAPSED_HOLDERS).await.map_err(self.fail())?;
            client.query(&stmt, &[&now]).await.map_err(self.fail())?.iter().map(|r| r.get(0)).collect()
        };
        // Only the runs that may be claimable are read: those of lapsed
        // heartbeats only when there are some. SKIP LOCKED: rows another
        // host is claiming right now are passed over, not waited for; the
        // lock re-checks ownership on the row's latest version, so a run
        // just taken is never taken twice.
        let candidates = if lapsed.is_empty() {
            UNHELD.to_owned()
        } else {
            format!(
                "{UNHELD} UNION ALL SELECT id FROM runs WHERE NOT finalized AND lease_until IS NULL AND owner = ANY($6)"
            )
        };
        let sql = format!(
            "UPDATE runs SET owner = $1, lease_until = $2
             WHERE id IN (SELECT id FROM runs WHERE NOT finalized AND ($3::text IS NULL OR connection = $3)
                          AND id IN ({candidates})
                          AND (owner IS NULL OR lease_until < $4
                               OR lease_until IS NULL AND NOT EXISTS
                                  (SELECT 1 FROM hosts h WHERE h.owner = runs.owner AND h.lease_until >= $4))
                          ORDER BY id LIMIT $5 FOR UPDATE SKIP LOCKED)
             RETURNING {RUN_COLUMNS}"
        );
        let (until, limit) = (now + ms(lease), limit as i64);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&owner, &until, &connection, &now, &limit];
        if !lapsed.is_empty() {
            params.push(&lapsed);
        }
        let mut runs = self.query_runs(&sql, &params).await?;
        runs.sort_by_key(|r| r.id);
        Ok(runs)
    }

    async fn open_owners(&self, connection: Option<&str>) -> Result<Vec<String>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "WITH RECURSIVE o(owner) AS (
                     (SELECT owner FROM runs WHERE NOT finalized AND owner IS NOT NULL AND ($1::text IS NULL OR connection = $1)
                      ORDER BY owner LIMIT 1)
                     UNION ALL
                     SELECT (SELECT r.owner FROM runs r WHERE NOT r.finalized AND r.owner > o.owner
                                                        AND ($1::text IS NULL OR r.connection = $1)
                             ORDER BY r.owner LIMIT 1)
                     FROM o WHERE o.owner IS NOT NULL)
                 SELECT owner FROM o WHERE owner IS NOT NULL",
            )
            .await
            .map_err(self.fail())?;
        let rows = client.query(&stmt, &[&connection]).await.map_err(self.fail())?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn heartbeat(&self, owner: &str, lease: Duration, taken_on: &[i64], let_go: &[i64]) -> Result<Heartbeat> {
        let now = now_ms();
        let until = now + ms(lease);
        let client = self.client().await?;
        // The previous heartbeat, read by the statement that replaces it.
        let previous: Option<i64> = client
            .query_one(
                "WITH previous AS (SELECT lease_until FROM hosts WHERE owner = $1)
                 INSERT INTO hosts (owner, lease_until) VALUES ($1, $2)
                 ON CONFLICT (owner) DO UPDATE SET lease_until = EXCLUDED.lease_until
                 RETURNING (SELECT lease_until FROM previous)",
                &[&owner, &until],
            )
            .await
            .map_err(self.fail())?
            .get(0);
        let mut kept = Vec::new();
        if !taken_on.is_empty() {
            let rows = client
                .query(
                    "UPDATE runs SET lease_until = NULL WHERE owner = $1 AND id = ANY($2) RETURNING id",
                    &[&owner, &taken_on],
                )
                .await
                .map_err(self.fail())?;
            kept = rows.iter().map(|r| r.get(0)).collect();
            kept.sort_unstable();
        }
        if !let_go.is_empty() {
            client
                .execute(
                    "UPDATE runs SET lease_until = $3 WHERE owner = $1 AND id = ANY($2) AND NOT finalized",
                    &[&owner, &let_go, &until],
                )
                .await
                .map_err(self.fail())?;
        }
        // Heartbeats lapsed long ago, of hosts that hold nothing, go: hosts
        // are many over time (one per process). One that holds runs stays,
        // so its runs stay claimable (see LAPSED_HOLDERS, whose probe this
        // uses too).
        client
            .execute(
                "DELETE FROM hosts h WHERE lease_until < $1 AND h.owner IS DISTINCT FROM
                     (SELECT r.owner FROM runs r WHERE NOT r.finalized AND r.owner >= h.owner ORDER BY r.owner LIMIT 1)",
                &[&(now - HOSTS_FORGOTTEN_MS)],
            )
            .await
            .map_err(self.fail())?;
        Ok(Heartbeat { known: previous.is_some(), lapsed: previous.is_some_and(|p| p < now), kept })
    }

    async fn renew_leases(&self, owner: &str, ids: &[i64], lease: Duration) -> Result<Vec<i64>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "UPDATE runs SET lease_until = $1 WHERE owner = $2 AND id = ANY($3) RETURNING id",
                &[&(now_ms() + ms(lease)), &owner, &ids],
            )
            .await
            .map_err(self.fail())?;
        let mut kept: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        kept.sort_unstable();
        Ok(kept)
    }

    async fn release_runs(&self, owner: &str, ids: Option<&[i64]>) -> Result<u64> {
        let ids: Option<Vec<i64>> = ids.map(<[i64]>::to_vec);
        self.execute(
            "UPDATE runs SET owner = NULL, lease_until = NULL WHERE owner = $1 AND ($2::bigint[] IS NULL OR id = ANY($2))",
            &[&owner, &ids],
        )
        .await
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
