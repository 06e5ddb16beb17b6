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
pub use runs::{LOST, RunFilter, SUBMITTING as SUBMITTING_STATE, StoredRun, WITHDRAWN};

use crate::error::{Error, Result};

/// An open catalog.
#[derive(Debug)]
pub struct Catalog {
    conn: Connection,
    path: PathBuf,
}

impl Catalog {
    /// Open (creating the file, 0600, and its directory, 0700, if needed)
    /// and migrate. A file that is not a polysync catalog, or one written by
    /// a newer polysync, is refused before anything in it changes.
    pub fn open(path: &Path) -> Result<Self> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::Io(format!("cannot create the catalog directory {}: {e}", dir.display())))?;
        }
        if !path.exists() {
            // The catalog holds parameter defaults: the owner's alone. SQLite
            // gives its -wal and -shm files the same mode.
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| Error::Io(format!("cannot create the catalog {}: {e}", path.display())))?;
        }
        let conn =
            Connection::open(path).map_err(|source| Error::Catalog { path: path.display().to_string(), source })?;
        let mut catalog = Self { conn, path: path.to_path_buf() };
        catalog.conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(|e| catalog.err(e))?;
        catalog.check_is_ours()?;
        catalog.setup()?;
        Ok(catalog)
    }

    /// Refuse, without writing, a database polysync did not make or cannot read.
    fn check_is_ours(&self) -> Result<()> {
        let shown = self.path.display();
        let version: i64 = self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|_| {
            Error::InvalidInput(format!(
                "{shown} is not a polysync catalog (not an SQLite database); point `catalog` at another file"
            ))
        })?;
        let known = schema::VERSION as i64;
        if version > known {
            return Err(Error::InvalidInput(format!(
                "the catalog {shown} has schema version {version}, written by a newer polysync (this one knows up to {known}); upgrade polysync, or use another catalog"
            )));
        }
        let tables: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
                .map_err(|e| self.err(e))?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(|e| self.err(e))?;
            rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))?
        };
        let ours = ["entries", "syncs", "runs", "run_logs"];
        if version == 0 && !tables.is_empty() || tables.iter().any(|t| !ours.contains(&t.as_str())) {
            return Err(Error::InvalidInput(format!(
                "{shown} is not a polysync catalog (it has tables {}); point `catalog` at another file",
                tables.join(", ")
            )));
        }
        Ok(())
    }

    fn setup(&mut self) -> Result<()> {
        let err = |e| self.err(e);
        self.conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        self.conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| self.err(e))?;
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
