//! Schema migrations, applied in order and recorded in `user_version`.
//! PostgreSQL's (in `postgres/schema.rs`) follow the same numbering and
//! end in the same tables.

use std::path::Path;

use rusqlite::Connection;

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
        last_sync    INTEGER NOT NULL,
        PRIMARY KEY (connection, external_id)
    );
    CREATE TABLE syncs (
        id          INTEGER PRIMARY KEY,
        connection  TEXT NOT NULL,
        started_at  TEXT NOT NULL,
        finished_at TEXT,
        status      TEXT NOT NULL,
        pages       INTEGER NOT NULL DEFAULT 0,
        seen        INTEGER NOT NULL DEFAULT 0,
        added       INTEGER NOT NULL DEFAULT 0,
        updated     INTEGER NOT NULL DEFAULT 0,
        unchanged   INTEGER NOT NULL DEFAULT 0,
        missing     INTEGER NOT NULL DEFAULT 0,
        error       TEXT
    );
    CREATE TABLE runs (
        id              INTEGER PRIMARY KEY,
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
    ALTER TABLE runs ADD COLUMN startup_timeout_ms INTEGER;
    ALTER TABLE syncs ADD COLUMN pid INTEGER;
    CREATE TABLE run_logs (
        run        INTEGER NOT NULL REFERENCES runs (id),
        unit       TEXT NOT NULL,
        container  TEXT NOT NULL,
        bytes      INTEGER NOT NULL,
        truncated  INTEGER NOT NULL,
        data       BLOB NOT NULL,
        PRIMARY KEY (run, unit, container)
    );
    ",
    // 3: run ownership (several hosts on one catalog divide the runs by
    // lease), finished runs marked once their logs are archived and their
    // delete-after applied, and sync leases (one sync per connection).
    // Runs already final were finished by the process that saw them end.
    "
    ALTER TABLE runs ADD COLUMN owner TEXT;
    ALTER TABLE runs ADD COLUMN lease_until INTEGER;
    ALTER TABLE runs ADD COLUMN finalized INTEGER NOT NULL DEFAULT 0;
    UPDATE runs SET finalized = 1
        WHERE state IN ('Success', 'Failed', 'Cancelled', 'SubmitFailed', 'Lost', 'Withdrawn');
    CREATE INDEX runs_open ON runs (id) WHERE finalized = 0;
    ALTER TABLE syncs ADD COLUMN owner TEXT;
    ALTER TABLE syncs ADD COLUMN lease_until INTEGER;
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
    // 6: hosts' heartbeats: a run whose lease_until is NULL and whose owner
    // is set is held by its owner's heartbeat, one row renewed per host.
    "
    CREATE TABLE hosts (owner TEXT PRIMARY KEY, lease_until INTEGER NOT NULL);
    ",
    // 7: what each tick reads, without going over every open run (see the
    // PostgreSQL schema's migration 8).
    "
    CREATE INDEX runs_open_by_owner ON runs (owner) WHERE finalized = 0;
    CREATE INDEX runs_unheld ON runs (id) WHERE finalized = 0 AND (owner IS NULL OR lease_until IS NOT NULL);
    ",
    // 8: a cancel polysync is making (Store::mark_cancelling).
    "
    ALTER TABLE runs ADD COLUMN cancelling INTEGER NOT NULL DEFAULT 0;
    ",
    // 9: when a run started running, and its containers' exit codes.
    "
    ALTER TABLE runs ADD COLUMN started_at TEXT;
    ALTER TABLE runs ADD COLUMN exit_codes TEXT;
    ",
];

/// The schema version this build writes.
pub(crate) const VERSION: usize = MIGRATIONS.len();

/// Apply the missing migrations, one write transaction each; the version is
/// read inside the transaction, so two processes opening a new catalog at
/// once never apply one twice.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let fail = |e| super::err(path, e);
    loop {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(fail)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(fail)?;
        let version = usize::try_from(version).unwrap_or(0);
        let Some(sql) = MIGRATIONS.get(version) else { return tx.commit().map_err(fail) };
        tx.execute_batch(sql).map_err(|e| crate::store::model::out_of_step(path.display(), version, &e.to_string()))?;
        tx.pragma_update(None, "user_version", (version + 1) as i64).map_err(fail)?;
        tx.commit().map_err(fail)?;
    }
}

/// Refuse, without writing, a database polysync did not make or cannot read.
pub(super) fn check_is_ours(conn: &Connection, path: &Path) -> Result<()> {
    let shown = path.display();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|_| {
        Error::InvalidInput(format!(
            "{shown} is not a polysync catalog (not an SQLite database); point `catalog` at another file"
        ))
    })?;
    let known = VERSION as i64;
    if version > known {
        return Err(Error::InvalidInput(format!(
            "the catalog {shown} has schema version {version}, written by a newer polysync (this one knows up to {known}); upgrade polysync, or use another catalog"
        )));
    }
    let tables: Vec<String> = (|| {
        let mut stmt =
            conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()
    })()
    .map_err(|e| super::err(path, e))?;
    let ours = ["entries", "syncs", "runs", "run_logs", "hosts"];
    if version == 0 && !tables.is_empty() || tables.iter().any(|t| !ours.contains(&t.as_str())) {
        return Err(Error::InvalidInput(format!(
            "{shown} is not a polysync catalog (it has tables {}); point `catalog` at another file",
            tables.join(", ")
        )));
    }
    Ok(())
}
