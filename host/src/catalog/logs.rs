//! Container logs archived when a run ends, so they outlive the Job (TTL,
//! `--delete-after`, cancel): the last [`ARCHIVE_LIMIT`] bytes of each
//! container, gzip-compressed, in the catalog next to the run.

use std::io::{Read, Write};

use rusqlite::params;
use serde::Serialize;

use super::Catalog;
use crate::error::Result;

/// Most bytes kept per container (the end of its log).
pub const ARCHIVE_LIMIT: usize = 1024 * 1024;

/// One container's archived log.
#[derive(Debug, Clone, Serialize)]
pub struct ArchivedLog {
    pub unit: String,
    pub container: String,
    pub text: String,
    /// The log was longer than [`ARCHIVE_LIMIT`]; `text` is its end.
    pub truncated: bool,
}

/// Keep the last [`ARCHIVE_LIMIT`] bytes of `text`, cut at a line start.
pub fn bounded(text: &str) -> (String, bool) {
    if text.len() <= ARCHIVE_LIMIT {
        return (text.to_owned(), false);
    }
    let mut start = text.len() - ARCHIVE_LIMIT;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let start = text[start..].find('\n').map_or(start, |i| start + i + 1);
    (text[start..].to_owned(), true)
}

impl Catalog {
    /// Archive `logs` for run `id` (replacing an earlier archive).
    pub fn archive_logs(&self, id: i64, logs: &[ArchivedLog]) -> Result<()> {
        for log in logs {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(log.text.as_bytes())
                .map_err(|e| crate::error::Error::Io(format!("compressing a log: {e}")))?;
            let data = gz.finish().map_err(|e| crate::error::Error::Io(format!("compressing a log: {e}")))?;
            self.conn
                .execute(
                    "INSERT INTO run_logs (run, unit, container, bytes, truncated, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (run, unit, container) DO UPDATE SET bytes = ?4, truncated = ?5, data = ?6",
                    params![id, log.unit, log.container, log.text.len() as i64, log.truncated, data],
                )
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// The archived logs of run `id`, in the order they were written
    /// (`None` if nothing was archived).
    pub fn archived_logs(&self, id: i64) -> Result<Option<Vec<ArchivedLog>>> {
        let mut stmt = self
            .conn
            .prepare("SELECT unit, container, truncated, data FROM run_logs WHERE run = ?1 ORDER BY rowid")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, bool>(2)?, r.get::<_, Vec<u8>>(3)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (unit, container, truncated, data) = row.map_err(|e| self.err(e))?;
            let mut text = String::new();
            flate2::read::GzDecoder::new(&data[..]).read_to_string(&mut text).map_err(|e| {
                crate::error::Error::Io(format!("the archived log of {unit}/{container} is damaged: {e}"))
            })?;
            out.push(ArchivedLog { unit, container, text, truncated });
        }
        Ok((!out.is_empty()).then_some(out))
    }
}
