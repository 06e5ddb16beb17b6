//! What both engines read back: the columns of runs, entries and syncs and
//! how a row becomes a typed value, written once. Each engine only says
//! how to take one column of its own row type ([`Columns`]).
//!
//! A row whose stored word or JSON no longer parses (a catalog edited by
//! hand, or written by a newer polysync) is an error naming the table, the
//! row and the column, not a silent `Unknown` or an empty map: a run read
//! as `Unknown` would be followed for ever, and lost parameters would rerun
//! a job with the wrong ones.

use std::collections::BTreeMap;

use polysync_provider_api::{CatalogEntry, EntryKind, FallbackAttributes, Parameter};

use super::model::{DeleteAfter, EntryState, RunState, SpecSource, StoredEntry, StoredRun, SyncRecord, SyncStatus};
use crate::stamp::Stamp;

pub(crate) const RUN_COLUMNS: &str = "id, connection, external_id, idempotency_key, parameters, run_id, state, reason, message, source, monitor_url, delete_after, created_at, updated_at, finished_at, startup_timeout_ms, owner, finalized, callback_url, outputs, output_error, started_at, exit_codes";

pub(crate) const ENTRY_COLUMNS: &str = "connection, external_id, kind, display_name, namespace, cluster, parameters, fallback, fingerprint, labels, state, first_seen, last_seen";

pub(crate) const SYNC_COLUMNS: &str = "id, connection, status, pages, seen, added, updated, unchanged, missing, error";

/// A row the catalog cannot read.
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    /// The engine could not hand over the column (a type mismatch).
    #[error("column {column} of a {table} row: {message}")]
    Engine { table: &'static str, column: &'static str, message: String },
    /// The column holds something polysync never writes there.
    #[error(
        "{table} row {key}: column {column} holds {value:?}, which is not {expected}; the catalog was changed outside polysync or by a newer version of it"
    )]
    Corrupt { table: &'static str, key: String, column: &'static str, value: String, expected: &'static str },
}

/// One column of an engine's row, by position.
pub(crate) trait Columns {
    fn text(&self, i: usize) -> Result<String, String>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, String>;
    fn int(&self, i: usize) -> Result<i64, String>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, String>;
    fn flag(&self, i: usize) -> Result<bool, String>;
}

/// A reader of one row of `table`, which names the row in its errors.
struct Reader<'a, R: Columns> {
    row: &'a R,
    table: &'static str,
    key: String,
}

impl<R: Columns> Reader<'_, R> {
    fn wrap<T>(&self, column: &'static str, r: Result<T, String>) -> Result<T, RowError> {
        r.map_err(|message| RowError::Engine { table: self.table, column, message })
    }

    fn text(&self, i: usize, column: &'static str) -> Result<String, RowError> {
        self.wrap(column, self.row.text(i))
    }

    fn opt_text(&self, i: usize, column: &'static str) -> Result<Option<String>, RowError> {
        self.wrap(column, self.row.opt_text(i))
    }

    fn int(&self, i: usize, column: &'static str) -> Result<i64, RowError> {
        self.wrap(column, self.row.int(i))
    }

    fn count(&self, i: usize, column: &'static str) -> Result<u64, RowError> {
        let n = self.int(i, column)?;
        u64::try_from(n).map_err(|_| self.corrupt(column, n.to_string(), "a count"))
    }

    fn corrupt(&self, column: &'static str, value: String, expected: &'static str) -> RowError {
        RowError::Corrupt { table: self.table, key: self.key.clone(), column, value, expected }
    }

    /// A stored word, parsed by `parse`.
    fn word<T>(
        &self,
        i: usize,
        column: &'static str,
        expected: &'static str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, RowError> {
        let word = self.text(i, column)?;
        parse(&word).ok_or_else(|| self.corrupt(column, word, expected))
    }

    /// A stored time.
    fn stamp(&self, i: usize, column: &'static str) -> Result<Stamp, RowError> {
        self.word(i, column, "a time (RFC 3339)", Stamp::parse)
    }

    /// A stored time, or `NULL`.
    fn opt_stamp(&self, i: usize, column: &'static str) -> Result<Option<Stamp>, RowError> {
        match self.opt_text(i, column)? {
            None => Ok(None),
            Some(text) => Stamp::parse(&text).map(Some).ok_or_else(|| self.corrupt(column, text, "a time (RFC 3339)")),
        }
    }

    /// A JSON column (`NULL` reads as the empty value).
    fn json<T: serde::de::DeserializeOwned + Default>(
        &self,
        i: usize,
        column: &'static str,
        expected: &'static str,
    ) -> Result<T, RowError> {
        match self.opt_text(i, column)? {
            None => Ok(T::default()),
            Some(text) => serde_json::from_str(&text).map_err(|_| self.corrupt(column, text, expected)),
        }
    }
}

/// A row of `runs`, read with [`RUN_COLUMNS`].
pub(crate) fn run(row: &impl Columns) -> Result<StoredRun, RowError> {
    let id = row.int(0).map_err(|message| RowError::Engine { table: "runs", column: "id", message })?;
    let r = Reader { row, table: "runs", key: format!("#{id}") };
    Ok(StoredRun {
        id,
        connection: r.text(1, "connection")?,
        external_id: r.text(2, "external_id")?,
        idempotency_key: r.text(3, "idempotency_key")?,
        parameters: r.json::<BTreeMap<String, String>>(4, "parameters", "a JSON object of strings")?,
        run_id: r.opt_text(5, "run_id")?,
        state: r.word(6, "state", "a run state", RunState::parse)?,
        reason: r.opt_text(7, "reason")?,
        message: r.opt_text(8, "message")?,
        source: match r.opt_text(9, "source")? {
            None => None,
            Some(word) => Some(SpecSource::parse(&word).ok_or_else(|| r.corrupt("source", word, "Live or Fallback"))?),
        },
        monitor_url: r.opt_text(10, "monitor_url")?,
        delete_after: r.word(11, "delete_after", "default, never, success or always", DeleteAfter::parse)?,
        created_at: r.stamp(12, "created_at")?,
        updated_at: r.stamp(13, "updated_at")?,
        finished_at: r.opt_stamp(14, "finished_at")?,
        startup_timeout_ms: r.wrap("startup_timeout_ms", row.opt_int(15))?,
        owner: r.opt_text(16, "owner")?.map(super::HostId::stored),
        finalized: r.wrap("finalized", row.flag(17))?,
        callback_url: r.opt_text(18, "callback_url")?,
        outputs: r.json(19, "outputs", "a JSON object of strings")?,
        output_error: r.opt_text(20, "output_error")?,
        started_at: r.opt_stamp(21, "started_at")?,
        exit_codes: r.json(22, "exit_codes", "a JSON object of exit codes")?,
    })
}

/// A row of `entries`, read with [`ENTRY_COLUMNS`].
pub(crate) fn entry(row: &impl Columns) -> Result<StoredEntry, RowError> {
    let connection =
        row.text(0).map_err(|message| RowError::Engine { table: "entries", column: "connection", message })?;
    let external_id =
        row.text(1).map_err(|message| RowError::Engine { table: "entries", column: "external_id", message })?;
    let r = Reader { row, table: "entries", key: format!("{connection}/{external_id}") };
    let parameters: Vec<Parameter> = r.json(6, "parameters", "a JSON list of parameters")?;
    let fallback: FallbackAttributes = r.json(7, "fallback", "JSON fallback attributes")?;
    Ok(StoredEntry {
        entry: CatalogEntry {
            external_id,
            kind: r.word(2, "kind", "an entry kind", parse_kind)?,
            display_name: r.text(3, "display_name")?,
            namespace: r.opt_text(4, "namespace")?,
            cluster: r.opt_text(5, "cluster")?,
            parameters,
            fallback,
            fingerprint: r.text(8, "fingerprint")?,
            labels: r.json(9, "labels", "a JSON object of strings")?,
        },
        state: r.word(10, "state", "active or missing", EntryState::parse)?,
        first_seen: r.stamp(11, "first_seen")?,
        last_seen: r.stamp(12, "last_seen")?,
        connection,
    })
}

/// A row of `syncs`, read with [`SYNC_COLUMNS`].
pub(crate) fn sync(row: &impl Columns) -> Result<SyncRecord, RowError> {
    let id = row.int(0).map_err(|message| RowError::Engine { table: "syncs", column: "id", message })?;
    let r = Reader { row, table: "syncs", key: format!("#{id}") };
    Ok(SyncRecord {
        id,
        connection: r.text(1, "connection")?,
        status: r.word(2, "status", "running, complete or failed", SyncStatus::parse)?,
        pages: r.count(3, "pages")?,
        seen: r.count(4, "seen")?,
        added: r.count(5, "added")?,
        updated: r.count(6, "updated")?,
        unchanged: r.count(7, "unchanged")?,
        missing: r.count(8, "missing")?,
        error: r.opt_text(9, "error")?,
    })
}

/// Who holds a running sync and since when: a row of `syncs` read with
/// `id, owner, started_at`.
pub(crate) fn sync_holder(row: &impl Columns) -> Result<(Option<String>, Stamp), RowError> {
    let id = row.int(0).map_err(|message| RowError::Engine { table: "syncs", column: "id", message })?;
    let r = Reader { row, table: "syncs", key: format!("#{id}") };
    Ok((r.opt_text(1, "owner")?, r.stamp(2, "started_at")?))
}

/// The stored word of an entry kind.
pub(crate) fn kind_str(kind: EntryKind) -> String {
    serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_else(|| "Unknown".into())
}

fn parse_kind(word: &str) -> Option<EntryKind> {
    serde_json::from_value(serde_json::Value::String(word.to_owned())).ok()
}

impl Columns for rusqlite::Row<'_> {
    fn text(&self, i: usize) -> Result<String, String> {
        self.get(i).map_err(|e| e.to_string())
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, String> {
        self.get(i).map_err(|e| e.to_string())
    }
    fn int(&self, i: usize) -> Result<i64, String> {
        self.get(i).map_err(|e| e.to_string())
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, String> {
        self.get(i).map_err(|e| e.to_string())
    }
    fn flag(&self, i: usize) -> Result<bool, String> {
        self.get(i).map_err(|e| e.to_string())
    }
}

impl Columns for tokio_postgres::Row {
    fn text(&self, i: usize) -> Result<String, String> {
        self.try_get(i).map_err(|e| e.to_string())
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, String> {
        self.try_get(i).map_err(|e| e.to_string())
    }
    fn int(&self, i: usize) -> Result<i64, String> {
        self.try_get(i).map_err(|e| e.to_string())
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, String> {
        self.try_get(i).map_err(|e| e.to_string())
    }
    fn flag(&self, i: usize) -> Result<bool, String> {
        self.try_get(i).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row of plain values, as an engine would hand them over.
    struct Fake(Vec<Option<String>>);

    impl Columns for Fake {
        fn text(&self, i: usize) -> Result<String, String> {
            self.0[i].clone().ok_or_else(|| "NULL".into())
        }
        fn opt_text(&self, i: usize) -> Result<Option<String>, String> {
            Ok(self.0[i].clone())
        }
        fn int(&self, i: usize) -> Result<i64, String> {
            self.text(i)?.parse().map_err(|e| format!("{e}"))
        }
        fn opt_int(&self, i: usize) -> Result<Option<i64>, String> {
            self.0[i].as_deref().map(|s| s.parse().map_err(|e| format!("{e}"))).transpose()
        }
        fn flag(&self, i: usize) -> Result<bool, String> {
            Ok(self.int(i)? != 0)
        }
    }

    fn sync_row(status: &str) -> Fake {
        let v = ["7", "prod", status, "1", "2", "2", "0", "0", "0"];
        Fake(v.iter().map(|s| Some((*s).to_owned())).chain([None]).collect())
    }

    #[test]
    fn a_stored_word_that_is_not_ours_is_an_error_naming_the_row() {
        assert_eq!(sync(&sync_row("complete")).unwrap().status, SyncStatus::Complete);
        let err = sync(&sync_row("finished")).unwrap_err().to_string();
        assert!(err.contains("syncs row #7: column status holds \"finished\""), "{err}");
        assert!(err.contains("changed outside polysync"), "{err}");
    }
}
