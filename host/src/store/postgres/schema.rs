//! PostgreSQL migrations: the same numbering as SQLite's and the same
//! tables, in PostgreSQL's types. Applied under an advisory lock, each in
//! its own transaction, and recorded in `polysync_schema`.

use tokio_postgres::Client;

use crate::error::{Error, Result};

const MIGRATIONS: &[&str] = &[
    // 1: entries, syncs, runs.
    "
    CREATE TABLE entries (
        connection   TEXT NOT NULL,
        external_id  TEXT NOT NULL,
        kind         TEXT NOT NULL,
        display_name TEXT NOT NULL,
        namespace    TEXT,
        cluster      TEXT,
        parameters   TEXT NOT NULL,
        fallback     TEXT NOT NULL,
        fingerprint  TEXT NOT NULL,
        labels       TEXT NOT NULL,
        state        TEXT NOT NULL,
        first_seen   TEXT NOT NULL,
        last_seen    TEXT NOT NULL,
        last_sync    BIGINT NOT NULL,
        PRIMARY KEY (connection, external_id)
    );
    CREATE TABLE syncs (
        id          BIGSERIAL PRIMARY KEY,
        connection  TEXT NOT NULL,
        started_at  TEXT NOT NULL,
        finished_at TEXT,
        status      TEXT NOT NULL,
        pages       BIGINT NOT NULL DEFAULT 0,
        seen        BIGINT NOT NULL DEFAULT 0,
        added       BIGINT NOT NULL DEFAULT 0,
        updated     BIGINT NOT NULL DEFAULT 0,
        unchanged   BIGINT NOT NULL DEFAULT 0,
        missing     BIGINT NOT NULL DEFAULT 0,
        error       TEXT
    );
    CREATE TABLE runs (
        id              BIGSERIAL PRIMARY KEY,
        connection      TEXT NOT NULL,
        external_id     TEXT NOT NULL,
        idempotency_key TEXT NOT NULL UNIQUE,
        parameters      TEXT NOT NULL,
        run_id          TEXT,
        state           TEXT NOT NULL,
        reason          TEXT,
        message         TEXT,
        source          TEXT,
        monitor_url     TEXT,
        delete_after    TEXT NOT NULL DEFAULT 'never',
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL,
        finished_at     TEXT
    );
    CREATE INDEX runs_by_state ON runs (state);
    CREATE INDEX runs_by_run_id ON runs (connection, run_id);
    ",
    // 2: per-run startup timeout; container logs archived when a run ends.
    "
    ALTER TABLE runs ADD COLUMN startup_timeout_ms BIGINT;
    ALTER TABLE syncs ADD COLUMN pid BIGINT;
    CREATE TABLE run_logs (
        seq        BIGSERIAL,
        run        BIGINT NOT NULL REFERENCES runs (id),
        unit       TEXT NOT NULL,
        container  TEXT NOT NULL,
        bytes      BIGINT NOT NULL,
        truncated  BOOLEAN NOT NULL,
        data       BYTEA NOT NULL,
        PRIMARY KEY (run, unit, container)
    );
    ",
    // 3: run ownership by lease, finalized runs, sync leases.
    "
    ALTER TABLE runs ADD COLUMN owner TEXT;
    ALTER TABLE runs ADD COLUMN lease_until BIGINT;
    ALTER TABLE runs ADD COLUMN finalized BOOLEAN NOT NULL DEFAULT false;
    UPDATE runs SET finalized = true
        WHERE state IN ('Success', 'Failed', 'Cancelled', 'SubmitFailed', 'Lost', 'Withdrawn');
    CREATE INDEX runs_open ON runs (id) WHERE NOT finalized;
    ALTER TABLE syncs ADD COLUMN owner TEXT;
    ALTER TABLE syncs ADD COLUMN lease_until BIGINT;
    ",
    // 4: completion callbacks; status streams read changes by time.
    "
    ALTER TABLE runs ADD COLUMN callback_url TEXT;
    CREATE INDEX runs_by_update ON runs (updated_at);
    ",
    // 5: output parameters (a JSON object of strings) and why some could
    // not be read.
    "
    ALTER TABLE runs ADD COLUMN outputs TEXT;
    ALTER TABLE runs ADD COLUMN output_error TEXT;
    ",
    // 6: room in each page for a row's next version, so the writes that
    // touch no indexed column (lease renewals and claims) are HOT updates:
    // renewing 10,000 leases went from ~150 to ~40-65 ms.
    "
    ALTER TABLE runs SET (fillfactor = 70);
    ",
    // 7: hosts' heartbeats. A run whose lease_until is NULL and whose owner
    // is set is held by its owner's heartbeat: one row per host renewed,
    // not one per run (10,000 followed runs were ~3,000 row updates a
    // second with a 10 s lease).
    "
    CREATE TABLE hosts (owner TEXT PRIMARY KEY, lease_until BIGINT NOT NULL);
    ",
    // 8: what each tick of every host reads, without going over every open
    // run: the runs that may be claimable (unowned, or on a lease of their
    // own; the rest are held by heartbeats), and the owners of open runs
    // (a loose scan: one index probe per owner). Both had read all open
    // runs, 12 and 20 ms a tick at 13,000.
    "
    CREATE INDEX runs_open_by_owner ON runs (owner) WHERE NOT finalized;
    CREATE INDEX runs_unheld ON runs (id) WHERE NOT finalized AND (owner IS NULL OR lease_until IS NOT NULL);
    ",
    // 9: a cancel polysync is making (Store::mark_cancelling).
    "
    ALTER TABLE runs ADD COLUMN cancelling BOOLEAN NOT NULL DEFAULT false;
    ",
    // 10: when a run started running, and its containers' exit codes.
    "
    ALTER TABLE runs ADD COLUMN started_at TEXT;
    ALTER TABLE runs ADD COLUMN exit_codes TEXT;
    ",
];

/// One key for the migration lock of every polysync catalog.
const LOCK: i64 = 0x706f_6c79_7379_6e63;

/// Apply the missing migrations; a catalog written by a newer polysync is
/// refused untouched.
pub(super) async fn migrate(client: &mut Client, shown: &str) -> Result<()> {
    let fail = |e: tokio_postgres::Error| super::err(shown, e);
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS polysync_schema (version INTEGER NOT NULL)")
        .await
        .map_err(fail)?;
    loop {
        let tx = client.transaction().await.map_err(fail)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK]).await.map_err(fail)?;
        let version: i32 =
            tx.query_opt("SELECT version FROM polysync_schema", &[]).await.map_err(fail)?.map_or(0, |r| r.get(0));
        let known = MIGRATIONS.len() as i32;
        if version > known {
            return Err(Error::InvalidInput(format!(
                "the catalog {shown} has schema version {version}, written by a newer polysync (this one knows up to {known}); upgrade polysync, or use another database"
            )));
        }
        let Some(sql) = MIGRATIONS.get(version as usize) else { return tx.commit().await.map_err(fail) };
        tx.batch_execute(sql).await.map_err(|e| {
            let why = e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_owned());
            crate::store::model::out_of_step(shown, version as usize, &why)
        })?;
        if version == 0 {
            tx.execute("INSERT INTO polysync_schema (version) VALUES (1)", &[]).await.map_err(fail)?;
        } else {
            tx.execute("UPDATE polysync_schema SET version = $1", &[&(version + 1)]).await.map_err(fail)?;
        }
        tx.commit().await.map_err(fail)?;
    }
}
