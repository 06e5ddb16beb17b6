//! The polysync host as a library: the `polysync` binary is a thin CLI over
//! it, and the cross-crate tests drive it directly.
//!
//! * [`config`] — the TOML file and its named connections;
//! * [`plugins`] — loading provider libraries through the C ABI;
//! * [`catalog`] — entries, syncs and runs in SQLite;
//! * [`sync`] — discovery into the catalog;
//! * [`tracking`] — submitting, recovering and following runs.

pub mod catalog;
pub mod config;
pub mod error;
pub mod plugins;
pub mod secrets;
pub mod sync;
pub mod tracking;

use std::collections::HashMap;
use std::sync::Arc;

use polysync_provider_api::{ErrorKind, Provider};

pub use error::{Error, Result};

/// Config, plugins and open connections of one process. Plugins are loaded
/// only when a command needs one, and then only that one (one broken
/// library in the directory never breaks `runs` or another provider's
/// commands); `polysync plugins` loads them all to report on each.
pub struct Host {
    pub config: config::Config,
    registry: Option<plugins::Registry>,
    providers: HashMap<String, Arc<dyn Provider>>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("config", &self.config.path)
            .field("connected", &self.providers.keys())
            .finish_non_exhaustive()
    }
}

impl Host {
    /// A host for `config`; nothing is loaded yet.
    pub fn new(config: config::Config) -> Result<Self> {
        Ok(Self { config, registry: None, providers: HashMap::new() })
    }

    /// Every plugin in the directory, loaded (once) to report on each.
    pub fn registry(&mut self) -> Result<&plugins::Registry> {
        self.registry_probed(|_| Ok(()))
    }

    /// [`Host::registry`], loading in this process only the files `probe`
    /// accepts (the CLI probes each in a child process, so a library whose
    /// initializer crashes is refused instead of killing the command).
    pub fn registry_probed(
        &mut self,
        probe: impl Fn(&std::path::Path) -> std::result::Result<(), String>,
    ) -> Result<&plugins::Registry> {
        if self.registry.is_none() {
            let dir = &self.config.plugin_dir;
            let scanned = plugins::Registry::scan_with(dir, probe)
                .map_err(|e| Error::Config(format!("cannot read the plugin directory {}: {e}", dir.display())))?;
            self.registry = Some(scanned);
        }
        Ok(self.registry.as_ref().expect("set above"))
    }

    /// The provider of a named connection, connected once per process.
    pub fn provider(&mut self, connection: &str) -> Result<Arc<dyn Provider>> {
        if let Some(p) = self.providers.get(connection) {
            return Ok(p.clone());
        }
        let conn = self.config.connection(connection)?.clone();
        // The provider's own library alone; the whole directory only if it
        // is not where it is expected.
        let alone = plugins::Registry::load_one(&self.config.plugin_dir, &conn.provider);
        let dir = self.config.plugin_dir.clone();
        let provider = if alone.get(&conn.provider).is_some() {
            connect(&alone, &dir, connection, &conn)?
        } else {
            connect(self.registry()?, &dir, connection, &conn)?
        };
        self.providers.insert(connection.to_owned(), provider.clone());
        Ok(provider)
    }

    pub fn catalog(&self) -> Result<catalog::Catalog> {
        catalog::Catalog::open(&self.config.catalog)
    }
}

/// Connect `conn` through `registry`, or say which plugins there are.
fn connect(
    registry: &plugins::Registry,
    dir: &std::path::Path,
    connection: &str,
    conn: &config::Connection,
) -> Result<Arc<dyn Provider>> {
    if registry.get(&conn.provider).is_none() {
        let loaded: Vec<&str> = registry.manifests().map(|m| m.name.as_str()).collect();
        let refused: Vec<String> =
            registry.refused().iter().map(|r| format!("{} ({})", r.path.display(), r.reason)).collect();
        return Err(Error::Config(format!(
            "connection {connection}: no plugin for provider {:?} in {} (loaded: {}{})",
            conn.provider,
            dir.display(),
            if loaded.is_empty() { "none".to_owned() } else { loaded.join(", ") },
            if refused.is_empty() { String::new() } else { format!("; refused: {}", refused.join("; ")) }
        )));
    }
    let provider = registry.connect(&conn.provider, &conn.settings).map_err(|e| match e.kind() {
        ErrorKind::InvalidInput => {
            Error::Config(format!("connection {connection} ({}): {}", conn.provider, e.message()))
        }
        _ => Error::Provider(e),
    })?;
    Ok(Arc::new(provider))
}
