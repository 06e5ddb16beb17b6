//! Schema migrations, applied in order and recorded in `user_version`.

use rusqlite::Connection;

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
];

/// The schema version this build writes.
pub(super) const VERSION: usize = MIGRATIONS.len();

/// Apply the missing migrations, one write transaction each; the version is
/// read inside the transaction, so two processes opening a new catalog at
/// once never apply one twice.
pub(super) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    loop {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let version = usize::try_from(version).unwrap_or(0);
        let Some(sql) = MIGRATIONS.get(version) else { return tx.commit() };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (version + 1) as i64)?;
        tx.commit()?;
    }
}
