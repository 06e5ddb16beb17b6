//! Where the catalog is (an SQLite file, or a PostgreSQL URL and where its
//! password is read from): what opening a store takes. Beneath the store,
//! so the store needs nothing of the configuration that names it.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Where the catalog lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogLocation {
    /// An SQLite file (the default).
    Sqlite(PathBuf),
    /// A PostgreSQL database shared by several hosts.
    Postgres(PostgresCatalog),
}

impl CatalogLocation {
    /// For messages: the path, or the URL without a password.
    pub fn shown(&self) -> String {
        match self {
            Self::Sqlite(p) => p.display().to_string(),
            Self::Postgres(pg) => pg.shown(),
        }
    }
}

/// Where a secret (the catalog's password, the callback secret) comes
/// from: never the config file itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    Env(String),
    File(PathBuf),
}

impl PasswordSource {
    /// Read it now; `setting` (`catalog_password`) names it in errors.
    pub fn read(&self, setting: &str) -> Result<String> {
        match self {
            Self::Env(var) => std::env::var(var).map_err(|_| {
                Error::Config(format!("`{setting}_env` names {var}, which is not set; export it with the secret"))
            }),
            Self::File(path) => std::fs::read_to_string(path)
                .map(|p| p.trim_end_matches(['\n', '\r']).to_owned())
                .map_err(|e| Error::Config(format!("cannot read `{setting}_file` {}: {e}", path.display()))),
        }
    }
}

/// A PostgreSQL catalog: its URL (without a password) and where the
/// password is read from when the catalog opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresCatalog {
    pub url: String,
    pub password: Option<PasswordSource>,
}

impl PostgresCatalog {
    /// `url` must not carry a password: the config file is not a secret store.
    pub fn new(url: &str, password: Option<PasswordSource>) -> std::result::Result<Self, String> {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && userinfo.contains(':')
        {
            return Err(
                "`catalog` has a password in its URL; remove it and set `catalog_password_env` (an environment variable holding it) or `catalog_password_file`".into(),
            );
        }
        if url.contains("password=") {
            return Err("`catalog` has a password= parameter; remove it and set `catalog_password_env` or `catalog_password_file`".into());
        }
        Ok(Self { url: url.to_owned(), password })
    }

    /// The URL as shown in messages (it holds no password).
    pub fn shown(&self) -> String {
        self.url.clone()
    }

    /// The password, read now (so a rotated file or variable is picked up
    /// at the next start).
    pub fn password(&self) -> Result<Option<String>> {
        self.password.as_ref().map(|p| p.read("catalog_password")).transpose()
    }
}
