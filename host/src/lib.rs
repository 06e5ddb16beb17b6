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
pub mod sync;
pub mod tracking;

use std::collections::HashMap;
use std::sync::Arc;

use polysync_provider_api::{ErrorKind, Provider};

pub use error::{Error, Result};

/// Config, plugins and open connections of one process.
pub struct Host {
    pub config: config::Config,
    pub registry: plugins::Registry,
    providers: HashMap<String, Arc<dyn Provider>>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("config", &self.config.path).field("connected", &self.providers.keys()).finish()
    }
}

impl Host {
    /// Load the plugins from the configured directory.
    pub fn new(config: config::Config) -> Result<Self> {
        let registry = plugins::Registry::scan(&config.plugin_dir).map_err(|e| {
            Error::Config(format!("cannot read the plugin directory {}: {e}", config.plugin_dir.display()))
        })?;
        Ok(Self { config, registry, providers: HashMap::new() })
    }

    /// The provider of a named connection, connected once per process.
    pub fn provider(&mut self, connection: &str) -> Result<Arc<dyn Provider>> {
        if let Some(p) = self.providers.get(connection) {
            return Ok(p.clone());
        }
        let conn = self.config.connection(connection)?.clone();
        if self.registry.get(&conn.provider).is_none() {
            let loaded: Vec<&str> = self.registry.manifests().map(|m| m.name.as_str()).collect();
            let refused: Vec<String> =
                self.registry.refused().iter().map(|r| format!("{} ({})", r.path.display(), r.reason)).collect();
            return Err(Error::Config(format!(
                "connection {connection}: no plugin for provider {:?} in {} (loaded: {}{})",
                conn.provider,
                self.config.plugin_dir.display(),
                if loaded.is_empty() { "none".to_owned() } else { loaded.join(", ") },
                if refused.is_empty() { String::new() } else { format!("; refused: {}", refused.join("; ")) }
            )));
        }
        let provider = self.registry.connect(&conn.provider, &conn.settings).map_err(|e| match e.kind() {
            ErrorKind::InvalidInput => {
                Error::Config(format!("connection {connection} ({}): {}", conn.provider, e.message()))
            }
            _ => Error::Provider(e),
        })?;
        let provider: Arc<dyn Provider> = Arc::new(provider);
        self.providers.insert(connection.to_owned(), provider.clone());
        Ok(provider)
    }

    pub fn catalog(&self) -> Result<catalog::Catalog> {
        catalog::Catalog::open(&self.config.catalog)
    }
}
