//! The polysync host as a library: the `polysync` binary (CLI, demo and,
//! later, the server) only parses input and renders the typed outcomes of
//! the workflows here.
//!
//! * [`config`] — the TOML file and its named connections;
//! * [`plugins`] — loading provider libraries through the C ABI;
//! * [`store`] — the catalog (entries, syncs, runs, leases, archived
//!   logs) behind one trait, on SQLite or PostgreSQL;
//! * [`runs`] — every workflow: sync, start, follow, finish, cancel,
//!   watch (with run ownership), logs, completion callbacks;
//! * [`serve`] — the same workflows over HTTP (`polysync serve`).

pub mod config;
pub mod error;
pub mod plugins;
pub mod runs;
pub mod secrets;
pub mod serve;
mod stamp;
pub mod store;
mod tls;
mod trim;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use polysync_provider_api::{ErrorKind, Provider};

pub use error::{Clash, Error, Missing, Result, Unanswered};
pub use runs::HostId;
pub use store::Store;

/// Config, catalog, plugins and open connections of one process, shareable
/// across tasks. Plugins are loaded only when a workflow needs one, and
/// then only that one (one broken library in the directory never breaks
/// `runs` or another provider's commands).
pub struct Host {
    pub config: config::Config,
    store: tokio::sync::OnceCell<Arc<dyn Store>>,
    id: HostId,
    registry: Mutex<Option<Arc<plugins::Registry>>>,
    providers: Mutex<HashMap<String, Arc<dyn Provider>>>,
    callbacks: std::sync::OnceLock<Option<runs::Callbacks>>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("config", &self.config.path)
            .field("catalog", &self.config.catalog)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// A host for `config`. Nothing is opened yet: the catalog when a
    /// workflow first needs it (once per process), plugins likewise.
    pub fn new(config: config::Config) -> Self {
        Self {
            config,
            store: tokio::sync::OnceCell::new(),
            id: HostId::new(),
            registry: Mutex::new(None),
            providers: Mutex::new(HashMap::new()),
            callbacks: std::sync::OnceLock::new(),
        }
    }

    /// The catalog, opened (and migrated) on first use.
    pub async fn store(&self) -> Result<&Arc<dyn Store>> {
        self.store.get_or_try_init(|| store::open(&self.config.catalog)).await
    }

    /// This process's identity as an owner of runs.
    pub fn id(&self) -> &HostId {
        &self.id
    }

    /// Every plugin in the directory, loaded (once) to report on each.
    pub fn registry(&self) -> Result<Arc<plugins::Registry>> {
        self.registry_probed(|_| Ok(()))
    }

    /// [`Host::registry`], loading in this process only the files `probe`
    /// accepts (the CLI probes each in a child process, so a library whose
    /// initializer crashes is refused instead of killing the command).
    pub fn registry_probed(
        &self,
        probe: impl Fn(&std::path::Path) -> std::result::Result<(), String>,
    ) -> Result<Arc<plugins::Registry>> {
        let mut slot = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = slot.as_ref() {
            return Ok(r.clone());
        }
        let dir = &self.config.plugin_dir;
        let scanned = plugins::Registry::scan_with(dir, probe)
            .map_err(|e| Error::Config(format!("cannot read the plugin directory {}: {e}", dir.display())))?;
        let scanned = Arc::new(scanned);
        *slot = Some(scanned.clone());
        Ok(scanned)
    }

    /// The provider of a named connection, connected once per process.
    pub fn provider(&self, connection: &str) -> Result<Arc<dyn Provider>> {
        if let Some(p) = self.providers.lock().unwrap_or_else(|p| p.into_inner()).get(connection) {
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
            connect(self.registry()?.as_ref(), &dir, connection, &conn)?
        };
        let mut providers = self.providers.lock().unwrap_or_else(|p| p.into_inner());
        Ok(providers.entry(connection.to_owned()).or_insert(provider).clone())
    }

    /// The callback signer, if a secret is configured (read once).
    pub fn callbacks(&self) -> Result<Option<runs::Callbacks>> {
        if let Some(c) = self.callbacks.get() {
            return Ok(c.clone());
        }
        let built = match &self.config.callback_secret {
            None => None,
            Some(source) => {
                let secret = source.read("callback_secret")?;
                if secret.len() < 16 {
                    return Err(Error::Config(
                        "the callback secret is shorter than 16 characters; use a long random one".into(),
                    ));
                }
                Some(runs::Callbacks::new(secret.into_bytes(), self.config.secrets.clone())?)
            }
        };
        Ok(self.callbacks.get_or_init(|| built).clone())
    }

    /// Give up the runs this host holds, so another host takes them at
    /// once instead of after the lease; call before the process ends.
    pub async fn shutdown(&self) -> Result<()> {
        match self.store.get() {
            Some(store) => store.release_runs(self.id.as_str(), None).await.map(drop),
            None => Ok(()),
        }
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
