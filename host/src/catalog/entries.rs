//! Entries and syncs.

use polysync_provider_api::{CatalogEntry, EntryKind, FallbackAttributes, Parameter};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Catalog, now};
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    Active,
    Missing,
}

impl EntryState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Missing => "missing",
        }
    }
}

/// An entry as the catalog keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredEntry {
    pub connection: String,
    #[serde(flatten)]
    pub entry: CatalogEntry,
    pub state: EntryState,
    pub first_seen: String,
    pub last_seen: String,
}

/// What one page did to the catalog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PageCounts {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
}

/// One sync, as recorded.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncRecord {
    pub id: i64,
    pub connection: String,
    pub complete: bool,
    pub pages: u64,
    pub seen: u64,
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub missing: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The stored columns of an entry that a sync compares.
type Row = (String, String, Option<String>, Option<String>, String, String, String, String);

fn kind_str(kind: EntryKind) -> String {
    serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_else(|| "Unknown".into())
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn row_to_entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEntry> {
    let parse_kind = |s: String| serde_json::from_value(serde_json::Value::String(s)).unwrap_or(EntryKind::Unknown);
    let parameters: Vec<Parameter> = serde_json::from_str(&row.get::<_, String>(6)?).unwrap_or_default();
    let fallback: FallbackAttributes = serde_json::from_str(&row.get::<_, String>(7)?).unwrap_or_default();
    let labels = serde_json::from_str(&row.get::<_, String>(9)?).unwrap_or_default();
    Ok(StoredEntry {
        connection: row.get(0)?,
        entry: CatalogEntry {
            external_id: row.get(1)?,
            kind: parse_kind(row.get(2)?),
            display_name: row.get(3)?,
            namespace: row.get(4)?,
            cluster: row.get(5)?,
            parameters,
            fallback,
            fingerprint: row.get(8)?,
            labels,
        },
        state: if row.get::<_, String>(10)? == "missing" { EntryState::Missing } else { EntryState::Active },
        first_seen: row.get(11)?,
        last_seen: row.get(12)?,
    })
}

const ENTRY_COLUMNS: &str = "connection, external_id, kind, display_name, namespace, cluster, parameters, fallback, fingerprint, labels, state, first_seen, last_seen";

impl Catalog {
    /// Start a sync of `connection`; returns its id.
    pub fn begin_sync(&self, connection: &str) -> Result<i64> {
        self.fail_orphaned_syncs()?;
        self.conn
            .execute(
                "INSERT INTO syncs (connection, started_at, status, pid) VALUES (?1, ?2, 'running', ?3)",
                params![connection, now(), std::process::id()],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Upsert one page in one transaction.
    pub fn upsert_page(&mut self, connection: &str, sync_id: i64, entries: &[CatalogEntry]) -> Result<PageCounts> {
        let at = now();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| Error::Catalog { path: self.path.display().to_string(), source: e })?;
        let mut counts = PageCounts::default();
        {
            let mut existing = tx
                .prepare_cached("SELECT kind, display_name, namespace, cluster, parameters, fallback, fingerprint, labels, state FROM entries WHERE connection = ?1 AND external_id = ?2")
                .map_err(|e| Error::Catalog { path: self.path.display().to_string(), source: e })?;
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO entries (connection, external_id, kind, display_name, namespace, cluster, parameters, fallback, fingerprint, labels, state, first_seen, last_seen, last_sync)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'active', ?11, ?11, ?12)
                     ON CONFLICT (connection, external_id) DO UPDATE SET
                        kind = excluded.kind, display_name = excluded.display_name, namespace = excluded.namespace,
                        cluster = excluded.cluster, parameters = excluded.parameters, fallback = excluded.fallback,
                        fingerprint = excluded.fingerprint, labels = excluded.labels, state = 'active',
                        last_seen = excluded.last_seen, last_sync = excluded.last_sync",
                )
                .map_err(|e| Error::Catalog { path: self.path.display().to_string(), source: e })?;
            for e in entries {
                let row = (
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
                    .optional()
                    .map_err(|err| Error::Catalog { path: self.path.display().to_string(), source: err })?;
                match before {
                    None => counts.added += 1,
                    Some((stored, state)) => {
                        let same = stored == row && state == "active";
                        if same { counts.unchanged += 1 } else { counts.updated += 1 }
                    }
                }
                upsert
                    .execute(params![
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
                        sync_id
                    ])
                    .map_err(|err| Error::Catalog { path: self.path.display().to_string(), source: err })?;
            }
        }
        tx.execute(
            "UPDATE syncs SET pages = pages + 1, seen = seen + ?2, added = added + ?3, updated = updated + ?4, unchanged = unchanged + ?5 WHERE id = ?1",
            params![sync_id, entries.len() as i64, counts.added as i64, counts.updated as i64, counts.unchanged as i64],
        )
        .map_err(|e| Error::Catalog { path: self.path.display().to_string(), source: e })?;
        tx.commit().map_err(|e| Error::Catalog { path: self.path.display().to_string(), source: e })?;
        Ok(counts)
    }

    /// Close a sync. Only a complete sync marks entries it did not see as
    /// missing; a failed one records how far it got and marks nothing.
    pub fn finish_sync(
        &mut self,
        connection: &str,
        sync_id: i64,
        complete: bool,
        error: Option<&str>,
    ) -> Result<SyncRecord> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| Error::Catalog { path: self.path.display().to_string(), source: e })?;
        let missing = if complete {
            tx.execute(
                "UPDATE entries SET state = 'missing' WHERE connection = ?1 AND last_sync != ?2 AND state = 'active'",
                params![connection, sync_id],
            )
            .map_err(|e| Error::Catalog { path: self.path.display().to_string(), source: e })?
        } else {
            0
        };
        tx.execute(
            "UPDATE syncs SET finished_at = ?2, status = ?3, missing = ?4, error = ?5 WHERE id = ?1",
            params![sync_id, now(), if complete { "complete" } else { "failed" }, missing as i64, error],
        )
        .map_err(|e| Error::Catalog { path: self.path.display().to_string(), source: e })?;
        tx.commit().map_err(|e| Error::Catalog { path: self.path.display().to_string(), source: e })?;
        self.sync(sync_id)
    }

    pub fn sync(&self, sync_id: i64) -> Result<SyncRecord> {
        self.conn
            .query_row(
                "SELECT id, connection, status, pages, seen, added, updated, unchanged, missing, error FROM syncs WHERE id = ?1",
                [sync_id],
                |r| {
                    Ok(SyncRecord {
                        id: r.get(0)?,
                        connection: r.get(1)?,
                        complete: r.get::<_, String>(2)? == "complete",
                        pages: r.get::<_, i64>(3)? as u64,
                        seen: r.get::<_, i64>(4)? as u64,
                        added: r.get::<_, i64>(5)? as u64,
                        updated: r.get::<_, i64>(6)? as u64,
                        unchanged: r.get::<_, i64>(7)? as u64,
                        missing: r.get::<_, i64>(8)? as u64,
                        error: r.get(9)?,
                    })
                },
            )
            .map_err(|e| self.err(e))
    }

    pub fn entry(&self, connection: &str, external_id: &str) -> Result<Option<StoredEntry>> {
        self.conn
            .query_row(
                &format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE connection = ?1 AND external_id = ?2"),
                params![connection, external_id],
                row_to_entry,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Entries, optionally of one connection and one state, by id.
    pub fn entries(&self, connection: Option<&str>, state: Option<EntryState>) -> Result<Vec<StoredEntry>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {ENTRY_COLUMNS} FROM entries WHERE (?1 IS NULL OR connection = ?1) AND (?2 IS NULL OR state = ?2) ORDER BY connection, external_id"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![connection, state.map(EntryState::as_str)], row_to_entry)
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }
}

use crate::error::Error;

impl Catalog {
    /// The provider restarted its listing: the sync's entry counts start over.
    pub fn restart_sync_counts(&self, sync_id: i64) -> Result<()> {
        self.conn
            .execute("UPDATE syncs SET seen = 0, added = 0, updated = 0, unchanged = 0 WHERE id = ?1", [sync_id])
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

impl Catalog {
    /// A sync whose process is gone (killed mid-way) is marked failed, so
    /// none stays `running` forever. Processes on this machine only: a
    /// catalog is a local file.
    pub fn fail_orphaned_syncs(&self) -> Result<usize> {
        let running: Vec<(i64, Option<i64>)> = {
            let mut stmt =
                self.conn.prepare("SELECT id, pid FROM syncs WHERE status = 'running'").map_err(|e| self.err(e))?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| self.err(e))?;
            rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))?
        };
        let mut failed = 0;
        for (id, pid) in running {
            let alive = pid.is_some_and(|p| std::path::Path::new("/proc").join(p.to_string()).exists());
            if !alive {
                failed += self
                    .conn
                    .execute(
                        "UPDATE syncs SET status = 'failed', finished_at = ?2, error = 'interrupted: the process running it ended before it finished; nothing was marked missing' WHERE id = ?1 AND status = 'running'",
                        params![id, now()],
                    )
                    .map_err(|e| self.err(e))?;
            }
        }
        Ok(failed)
    }
}
