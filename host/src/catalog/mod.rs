//! The catalog: entries found by discovery, the history of syncs, and every
//! run, in one SQLite file (WAL, so readers never block the writer).
//!
//! Guarantees:
//! * an entry is never deleted: one not seen in a *complete* sync is marked
//!   `missing` (and can still run from its fallback attributes); a sync that
//!   failed midway marks nothing missing;
//! * a run is recorded (with its idempotency key) before the provider is
//!   called and updated after, so a crash loses no run and a restart can
//!   finish submitting it without creating a second one;
//! * connection settings are never stored here, only connection names.

mod entries;
mod logs;
mod runs;
mod schema;

use std::path::{Path, PathBuf};

use rusqlite::Connection;

pub use entries::{EntryState, PageCounts, StoredEntry, SyncRecord};
pub use logs::{ARCHIVE_LIMIT, ArchivedLog, bounded};
pub use runs::{LOST, RunFilter, StoredRun};

use crate::error::{Error, Result};

/// An open catalog.
#[derive(Debug)]
pub struct Catalog {
    conn: Connection,
    path: PathBuf,
}

impl Catalog {
    /// Open (creating the file and its directory if needed) and migrate.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Io(format!("cannot create the catalog directory {}: {e}", dir.display())))?;
        }
        let conn =
            Connection::open(path).map_err(|source| Error::Catalog { path: path.display().to_string(), source })?;
        let mut catalog = Self { conn, path: path.to_path_buf() };
        catalog.setup()?;
        Ok(catalog)
    }

    fn setup(&mut self) -> Result<()> {
        let err = |e| self.err(e);
        self.conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        self.conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| self.err(e))?;
        self.conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| self.err(e))?;
        self.conn.pragma_update(None, "foreign_keys", "ON").map_err(|e| self.err(e))?;
        schema::migrate(&mut self.conn).map_err(|e| self.err(e))
    }

    pub(crate) fn err(&self, source: rusqlite::Error) -> Error {
        Error::Catalog { path: self.path.display().to_string(), source }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

pub(crate) fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}
