//! Syncs and entries in SQLite.

use std::time::Duration;

use polysync_provider_api::CatalogEntry;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::error::{Error, Result};
use crate::store::rows::{self, ENTRY_COLUMNS, SYNC_COLUMNS, kind_str};
use crate::store::{
    EntryFilter, EntryState, PageCounts, Stamp, StoredEntry, SyncRecord, SyncStatus, json, ms, now_ms, sync_busy,
    sync_holder_gone,
};

/// The stored columns of an entry that a sync compares.
type Row = (String, String, Option<String>, Option<String>, String, String, String, String);

fn row_to_entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEntry> {
    super::readable(rows::entry(row))
}

pub(super) fn begin_sync(
    c: &mut Connection,
    connection: &str,
    owner: &str,
    lease: Duration,
    wrap: &impl Fn(rusqlite::Error) -> Error,
) -> Result<i64> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(wrap)?;
    let now_ms = now_ms();
    // Syncs whose owner stopped renewing (killed mid-way) are failed, so
    // none stays `running` forever; so are those of a process on this
    // machine that is gone (no need to wait out its lease).
    let running: Vec<(i64, Option<String>, Option<i64>)> = (|| {
        let mut stmt = tx.prepare("SELECT id, owner, lease_until FROM syncs WHERE status = ?1")?;
        let rows = stmt.query_map([SyncStatus::Running], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
    })()
    .map_err(wrap)?;
    for (id, holder, until) in running {
        if sync_holder_gone(holder.as_deref(), until, now_ms) {
            tx.execute(
                "UPDATE syncs SET status = ?4, finished_at = ?2, error = ?3 WHERE id = ?1",
                params![id, Stamp::now(), crate::store::model::INTERRUPTED, SyncStatus::Failed],
            )
            .map_err(wrap)?;
        }
    }
    let busy = tx
        .query_row(
            "SELECT id, owner, started_at FROM syncs WHERE status = ?2 AND connection = ?1",
            params![connection, SyncStatus::Running],
            |r| super::readable(rows::sync_holder(r)),
        )
        .optional()
        .map_err(wrap)?;
    if let Some((holder, since)) = busy {
        return Err(sync_busy(connection, holder.as_deref(), since));
    }
    tx.execute(
        "INSERT INTO syncs (connection, started_at, status, pid, owner, lease_until) VALUES (?1, ?2, ?6, ?3, ?4, ?5)",
        params![connection, Stamp::now(), std::process::id(), owner, now_ms + ms(lease), SyncStatus::Running],
    )
    .map_err(wrap)?;
    let id = tx.last_insert_rowid();
    tx.commit().map_err(wrap)?;
    Ok(id)
}

pub(super) fn upsert_page(
    c: &mut Connection,
    sync_id: i64,
    entries: &[CatalogEntry],
    lease: Duration,
) -> rusqlite::Result<PageCounts> {
    let at = Stamp::now();
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let connection: String = tx.query_row("SELECT connection FROM syncs WHERE id = ?1", [sync_id], |r| r.get(0))?;
    let mut counts = PageCounts::default();
    {
        let mut existing = tx.prepare_cached(
            "SELECT kind, display_name, namespace, cluster, parameters, fallback, fingerprint, labels, state FROM entries WHERE connection = ?1 AND external_id = ?2",
        )?;
        let mut upsert = tx.prepare_cached(
            "INSERT INTO entries (connection, external_id, kind, display_name, namespace, cluster, parameters, fallback, fingerprint, labels, state, first_seen, last_seen, last_sync)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?13, ?11, ?11, ?12)
             ON CONFLICT (connection, external_id) DO UPDATE SET
                kind = excluded.kind, display_name = excluded.display_name, namespace = excluded.namespace,
                cluster = excluded.cluster, parameters = excluded.parameters, fallback = excluded.fallback,
                fingerprint = excluded.fingerprint, labels = excluded.labels, state = ?13,
                last_seen = excluded.last_seen, last_sync = excluded.last_sync",
        )?;
        for e in entries {
            let row: Row = (
                kind_str(e.kind),
                e.display_name.clone(),
                e.namespace.clone(),
                e.cluster.clone(),
                json(&e.parameters),
                json(&e.fallback),
                e.fingerprint.clone(),
                json(&e.labels),
            );
            let before: Option<(Row, String)> = existing
                .query_row(params![connection, e.external_id], |r| {
                    Ok((
                        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?),
                        r.get(8)?,
                    ))
                })
                .optional()?;
            match before {
                None => counts.added += 1,
                Some((stored, state)) if stored == row && state == EntryState::Active.as_str() => counts.unchanged += 1,
                Some(_) => counts.updated += 1,
            }
            upsert.execute(params![
                connection,
                e.external_id,
                row.0,
                row.1,
                row.2,
                row.3,
                row.4,
                row.5,
                row.6,
                row.7,
                at,
                sync_id,
                EntryState::Active
            ])?;
        }
    }
    tx.execute(
        "UPDATE syncs SET pages = pages + 1, seen = seen + ?2, added = added + ?3, updated = updated + ?4, unchanged = unchanged + ?5, lease_until = ?6 WHERE id = ?1",
        params![
            sync_id,
            entries.len() as i64,
            counts.added as i64,
            counts.updated as i64,
            counts.unchanged as i64,
            now_ms() + ms(lease)
        ],
    )?;
    tx.commit()?;
    Ok(counts)
}

pub(super) fn finish_sync(
    c: &mut Connection,
    sync_id: i64,
    complete: bool,
    error: Option<&str>,
) -> rusqlite::Result<SyncRecord> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let missing = if complete {
        tx.execute(
            "UPDATE entries SET state = ?2 WHERE connection = (SELECT connection FROM syncs WHERE id = ?1) AND last_sync != ?1 AND state = ?3",
            params![sync_id, EntryState::Missing, EntryState::Active],
        )?
    } else {
        0
    };
    tx.execute(
        "UPDATE syncs SET finished_at = ?2, status = ?3, missing = ?4, error = ?5, lease_until = NULL WHERE id = ?1",
        params![sync_id, Stamp::now(), SyncStatus::ended(complete), missing as i64, error],
    )?;
    tx.commit()?;
    sync_record(c, sync_id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)
}

pub(super) fn sync_record(c: &Connection, sync_id: i64) -> rusqlite::Result<Option<SyncRecord>> {
    c.query_row(&format!("SELECT {SYNC_COLUMNS} FROM syncs WHERE id = ?1"), [sync_id], |r| {
        super::readable(rows::sync(r))
    })
    .optional()
}

pub(super) fn entry(c: &Connection, connection: &str, external_id: &str) -> rusqlite::Result<Option<StoredEntry>> {
    c.query_row(
        &format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE connection = ?1 AND external_id = ?2"),
        params![connection, external_id],
        row_to_entry,
    )
    .optional()
}

pub(super) fn entries(c: &Connection, filter: &EntryFilter) -> rusqlite::Result<Vec<StoredEntry>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {ENTRY_COLUMNS} FROM entries WHERE (?1 IS NULL OR connection = ?1) AND (?2 IS NULL OR state = ?2)
         AND (?3 IS NULL OR (connection, external_id) > (?3, ?4)) ORDER BY connection, external_id LIMIT ?5"
    ))?;
    let (after_c, after_e) = filter.after.clone().unzip();
    let limit = filter.limit.map_or(-1, |l| l as i64);
    let rows = stmt.query_map(params![filter.connection, filter.state, after_c, after_e, limit], row_to_entry)?;
    rows.collect()
}
