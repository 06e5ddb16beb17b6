//! Plugin discovery: which provider libraries are in the plugin directory,
//! which were accepted, and why the others were refused.
//!
//! A refused library is reported and skipped; it never stops the others
//! from loading, and nothing in it is called after it was refused.

mod loader;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polysync_provider_api::abi::host::PluginLibrary;
use polysync_provider_api::abi::{LOG_INFO, LOG_OFF};
use polysync_provider_api::{Manifest, ProviderError};
use serde::Serialize;

pub use loader::{RefuseReason, SUPPORTED_API};

/// A library that passed every check.
#[derive(Debug, Clone)]
pub struct LoadedPlugin {
    pub path: PathBuf,
    pub library: PluginLibrary,
}

/// A library that did not.
#[derive(Debug, Clone, Serialize)]
pub struct RefusedPlugin {
    pub path: PathBuf,
    /// Stable short name of the reason (`not_a_library`, `abi_mismatch`, ...).
    pub kind: &'static str,
    /// One line saying what is wrong and what to do.
    pub reason: String,
}

/// Every plugin found in one directory.
#[derive(Debug, Default)]
pub struct Registry {
    plugins: BTreeMap<String, LoadedPlugin>,
    refused: Vec<RefusedPlugin>,
}

impl Registry {
    /// The file a provider's plugin is expected in: `libpolysync_provider_<name>.so`
    /// (Cargo's name for the `polysync-provider-<name>` crate).
    pub fn conventional_path(dir: &Path, provider: &str) -> PathBuf {
        let stem = format!("polysync_provider_{}", provider.replace('-', "_"));
        dir.join(format!("{}{stem}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX))
    }

    /// Load only the plugin of `provider`, from its conventional file; an
    /// empty registry if that file is missing or holds another plugin.
    pub fn load_one(dir: &Path, provider: &str) -> Self {
        let mut registry = Self::default();
        let path = Self::conventional_path(dir, provider);
        if path.is_file() {
            registry.add(path);
        }
        registry
    }

    /// Load every library in `dir` (files ending in the platform's dynamic
    /// library extension). A missing directory is an empty registry.
    pub fn scan(dir: &Path) -> std::io::Result<Self> {
        Self::scan_with(dir, |_| Ok(()))
    }

    /// [`Registry::scan`], loading only the files `probe` accepts; the
    /// others are refused with the probe's reason.
    pub fn scan_with(dir: &Path, probe: impl Fn(&Path) -> std::result::Result<(), String>) -> std::io::Result<Self> {
        let mut registry = Self::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(registry),
            Err(e) => return Err(e),
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == std::env::consts::DLL_EXTENSION))
            .collect();
        paths.sort();
        for path in paths {
            match probe(&path) {
                Ok(()) => registry.add(path),
                Err(why) => {
                    tracing::warn!(path = %path.display(), "plugin refused: {why}");
                    registry.refused.push(RefusedPlugin { path, kind: "crashed_on_load", reason: why });
                }
            }
        }
        Ok(registry)
    }

    /// Load one library file, recording it as loaded or refused.
    pub fn add(&mut self, path: PathBuf) {
        match loader::load(&path) {
            Ok(library) => {
                let name = library.manifest().name.clone();
                if let Some(first) = self.plugins.get(&name) {
                    let reason = RefuseReason::Duplicate { name, first: first.path.clone() };
                    self.refuse(path, reason);
                } else {
                    tracing::debug!(plugin = %name, path = %path.display(), "plugin loaded");
                    self.plugins.insert(name, LoadedPlugin { path, library });
                }
            }
            Err(reason) => self.refuse(path, reason),
        }
    }

    fn refuse(&mut self, path: PathBuf, reason: RefuseReason) {
        tracing::warn!(path = %path.display(), "plugin refused: {reason}");
        self.refused.push(RefusedPlugin { path, kind: reason.kind(), reason: reason.to_string() });
    }

    pub fn get(&self, name: &str) -> Option<&LoadedPlugin> {
        self.plugins.get(name)
    }

    pub fn plugins(&self) -> impl Iterator<Item = &LoadedPlugin> {
        self.plugins.values()
    }

    pub fn manifests(&self) -> impl Iterator<Item = &Manifest> {
        self.plugins.values().map(|p| p.library.manifest())
    }

    pub fn refused(&self) -> &[RefusedPlugin] {
        &self.refused
    }

    /// Open a connection through the named plugin.
    pub fn connect(
        &self,
        provider: &str,
        settings: &serde_json::Value,
    ) -> Result<polysync_provider_api::abi::host::PluginProvider, ProviderError> {
        let plugin = self.get(provider).ok_or_else(|| {
            let known: Vec<_> = self.plugins.keys().map(String::as_str).collect();
            ProviderError::invalid_input(format!(
                "no plugin named {provider:?} is loaded (loaded: {}); check the plugin directory",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            ))
        })?;
        let level = if tracing::enabled!(tracing::Level::INFO) { LOG_INFO } else { LOG_OFF };
        plugin.library.connect(settings, max_level(level))
    }
}

/// The most verbose plugin level the host's subscriber would record.
fn max_level(at_least: u32) -> u32 {
    use polysync_provider_api::abi::{LOG_DEBUG, LOG_TRACE};
    if tracing::enabled!(tracing::Level::TRACE) {
        LOG_TRACE
    } else if tracing::enabled!(tracing::Level::DEBUG) {
        LOG_DEBUG
    } else {
        at_least
    }
}
