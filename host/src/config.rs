//! The configuration file: where plugins and the catalog live, and the
//! named connections (a provider plus its settings).
//!
//! Found at `--config`, then `$POLYSYNC_CONFIG`, then
//! `<config dir>/polysync/config.toml`. A missing default file is an empty
//! configuration. Secrets do not belong here: providers read them from their
//! platform's credential chain or the environment, and the catalog never
//! stores connection settings at all.
//!
//! ```toml
//! plugin_dir = "/opt/polysync/plugins"
//! catalog = "/var/lib/polysync/catalog.db"
//!
//! [connections.prod-batch]
//! provider = "kubernetes"
//! kubeconfig = "~/.kube/config"
//! namespace = "batch"
//! ```

pub use crate::store::{CatalogLocation, PasswordSource, PostgresCatalog};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// One named connection.
#[derive(Debug, Clone)]
pub struct Connection {
    pub name: String,
    pub provider: String,
    /// A run still Starting this long after it was submitted fails with its
    /// last waiting reason (`startup_timeout = "10m"`); the host's, not the
    /// provider's.
    pub startup_timeout: Option<std::time::Duration>,
    /// Everything but `provider` and the host's own keys, as the provider's
    /// settings.
    pub settings: serde_json::Value,
}

/// Expand a leading `~/` and `$VAR` / `${VAR}` in a path setting; an unset
/// variable is an error that names it (never a directory literally named
/// `$HOME`).
pub fn expand_path(v: &str) -> std::result::Result<String, String> {
    let mut out = String::new();
    let rest = match (v.strip_prefix("~/"), dirs::home_dir()) {
        (Some(rest), Some(home)) => {
            out.push_str(&home.display().to_string());
            out.push('/');
            rest
        }
        (Some(_), None) => return Err("`~` is used but there is no home directory".into()),
        _ => v,
    };
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let braced = chars.peek() == Some(&'{');
        if braced {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphanumeric() || n == '_' {
                name.push(n);
                chars.next();
            } else {
                break;
            }
        }
        if braced && chars.next() != Some('}') {
            return Err(format!("{v:?} has an unclosed ${{...}}"));
        }
        if name.is_empty() {
            out.push('$');
            continue;
        }
        let value = std::env::var(&name).map_err(|_| format!("{v:?} uses ${name}, which is not set"))?;
        out.push_str(&value);
    }
    Ok(out)
}

/// `30s`, `5m`, `1h`, `500ms`, or plain seconds; at most a year (past
/// that `Duration` arithmetic overflows, and no wait is that long).
pub fn parse_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    let t = s.trim();
    let (num, unit) = t.split_at(t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len()));
    let n: f64 = num.trim().parse().map_err(|_| format!("{s:?} is not a duration; use e.g. 90s, 5m or 2h"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use ms, s, m or h")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a positive duration"));
    }
    if secs > 9999.0 * 3600.0 {
        return Err(format!("{s:?} is too long; at most 9999h"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// A duration setting of the config file: [`parse_duration`], between 1 s
/// and 7 days.
pub fn parse_duration_setting(what: &str, v: &str) -> Result<std::time::Duration> {
    let d = parse_duration(v).map_err(|e| Error::Config(format!("`{what}`: {e}")))?;
    if !(1.0..=7.0 * 86400.0).contains(&d.as_secs_f64()) {
        return Err(Error::Config(format!("`{what}` = {v:?} is out of range; use between 1s and 168h")));
    }
    Ok(d)
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (None: defaults only).
    pub path: Option<PathBuf>,
    pub plugin_dir: PathBuf,
    pub catalog: CatalogLocation,
    pub connections: BTreeMap<String, Connection>,
    /// Which parameter names hold secrets (`secret_patterns = [...]`).
    pub secrets: crate::secrets::SecretNames,
    /// How long a host holds a run it follows without renewing
    /// (`run_lease`): another host takes it over once this has passed.
    pub run_lease: std::time::Duration,
    /// The secret completion callbacks are signed with
    /// (`callback_secret_env` / `callback_secret_file`).
    pub callback_secret: Option<PasswordSource>,
    /// `polysync serve`'s settings (`[serve]`).
    pub serve: ServeConfig,
}

/// `[serve]`: how `polysync serve` listens and whom it lets in.
#[derive(Debug, Clone, Default)]
pub struct ServeConfig {
    /// `listen = "127.0.0.1:8080"` (the `--listen` flag wins).
    pub listen: Option<String>,
    /// SHA-256 hashes (hex) of the bearer tokens it accepts (`tokens`).
    pub token_hashes: Vec<String>,
    /// Files each holding one token (`token_files`), read at start.
    pub token_files: Vec<PathBuf>,
    /// PEM certificate chain and key for HTTPS (`tls_cert`, `tls_key`).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

/// The default [`Config::run_lease`].
pub const DEFAULT_RUN_LEASE: std::time::Duration = std::time::Duration::from_secs(30);

/// Where the config file is looked for.
pub fn default_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("polysync").join("config.toml"))
}

fn default_catalog() -> PathBuf {
    dirs::data_dir().unwrap_or_else(|| PathBuf::from(".")).join("polysync").join("catalog.db")
}

/// Where plugins are when the config does not say: `../lib/polysync/plugins`
/// from the executable (the release archive's layout, and a system
/// install's: /usr/bin and /usr/lib/polysync/plugins), else the
/// executable's own directory (a cargo build).
pub fn default_plugin_dir() -> PathBuf {
    let exe_dir = std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf));
    let Some(exe_dir) = exe_dir else { return PathBuf::from(".") };
    let installed = exe_dir.join("../lib/polysync/plugins");
    match installed.canonicalize() {
        Ok(dir) if dir.is_dir() => dir,
        _ => exe_dir,
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Config {
    /// Load from `explicit`, `$POLYSYNC_CONFIG`, or the default location.
    pub fn load(explicit: Option<&Path>) -> Result<Self> {
        let from_env = std::env::var_os("POLYSYNC_CONFIG").map(PathBuf::from);
        let (path, required) = match (explicit, from_env) {
            (Some(p), _) => (Some(p.to_path_buf()), true),
            (None, Some(p)) => (Some(p), true),
            (None, None) => (default_path(), false),
        };
        match path {
            Some(p) if p.exists() || required => {
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| Error::Config(format!("cannot read config file {}: {e}", p.display())))?;
                Self::parse(&text, Some(p))
            }
            _ => Ok(Self {
                path: None,
                plugin_dir: default_plugin_dir(),
                catalog: CatalogLocation::Sqlite(default_catalog()),
                connections: BTreeMap::new(),
                secrets: Default::default(),
                run_lease: DEFAULT_RUN_LEASE,
                callback_secret: None,
                serve: ServeConfig::default(),
            }),
        }
    }

    /// Parse a config file's text; errors name the file and the field.
    pub fn parse(text: &str, path: Option<PathBuf>) -> Result<Self> {
        let shown = path.as_ref().map_or("the config".to_owned(), |p| p.display().to_string());
        let table: toml::Table = text.parse().map_err(|e| Error::Config(format!("{shown} is not valid TOML: {e}")))?;
        let base = path.as_ref().and_then(|p| p.parent()).map(Path::to_path_buf).unwrap_or_default();
        let resolve = |key: &str, v: &str| -> Result<PathBuf> {
            let expanded = PathBuf::from(expand_path(v).map_err(|e| Error::Config(format!("{shown}: `{key}`: {e}")))?);
            Ok(if expanded.is_relative() { base.join(expanded) } else { expanded })
        };
        let (mut catalog, mut password) = (None::<String>, None::<PasswordSource>);
        let mut config = Self {
            path: path.clone(),
            plugin_dir: default_plugin_dir(),
            catalog: CatalogLocation::Sqlite(default_catalog()),
            connections: BTreeMap::new(),
            secrets: Default::default(),
            run_lease: DEFAULT_RUN_LEASE,
            callback_secret: None,
            serve: ServeConfig::default(),
        };
        for (key, value) in &table {
            match key.as_str() {
                "plugin_dir" => {
                    let v = value
                        .as_str()
                        .ok_or_else(|| Error::Config(format!("{shown}: `plugin_dir` must be a path string")))?;
                    config.plugin_dir = resolve("plugin_dir", v)?;
                }
                "catalog" => {
                    let v = value.as_str().ok_or_else(|| {
                        Error::Config(format!("{shown}: `catalog` must be a path or a postgres:// URL string"))
                    })?;
                    catalog = Some(v.to_owned());
                }
                "catalog_password_env" => {
                    let v = value.as_str().filter(|v| !v.is_empty()).ok_or_else(|| {
                        Error::Config(format!("{shown}: `catalog_password_env` must name an environment variable"))
                    })?;
                    password = Some(PasswordSource::Env(v.to_owned()));
                }
                "catalog_password_file" => {
                    let v = value.as_str().ok_or_else(|| {
                        Error::Config(format!("{shown}: `catalog_password_file` must be a path string"))
                    })?;
                    password = Some(PasswordSource::File(resolve("catalog_password_file", v)?));
                }
                "callback_secret_env" => {
                    let v = value.as_str().filter(|v| !v.is_empty()).ok_or_else(|| {
                        Error::Config(format!("{shown}: `callback_secret_env` must name an environment variable"))
                    })?;
                    config.callback_secret = Some(PasswordSource::Env(v.to_owned()));
                }
                "callback_secret_file" => {
                    let v = value.as_str().ok_or_else(|| {
                        Error::Config(format!("{shown}: `callback_secret_file` must be a path string"))
                    })?;
                    config.callback_secret = Some(PasswordSource::File(resolve("callback_secret_file", v)?));
                }
                "serve" => {
                    let table = value
                        .as_table()
                        .ok_or_else(|| Error::Config(format!("{shown}: `serve` must be a table, like [serve]")))?;
                    for (k, v) in table {
                        let text = |what: &str| {
                            v.as_str()
                                .map(str::to_owned)
                                .ok_or_else(|| Error::Config(format!("{shown}: `serve.{k}` must be {what}")))
                        };
                        let list = || {
                            v.as_array()
                                .and_then(|a| {
                                    a.iter().map(|x| x.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>()
                                })
                                .ok_or_else(|| Error::Config(format!("{shown}: `serve.{k}` must be a list of strings")))
                        };
                        match k.as_str() {
                            "listen" => config.serve.listen = Some(text("an address like \"127.0.0.1:8080\"")?),
                            "tokens" => {
                                for t in list()? {
                                    let hex = t.strip_prefix("sha256:").unwrap_or(&t).to_ascii_lowercase();
                                    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                                        return Err(Error::Config(format!(
                                            "{shown}: `serve.tokens` holds SHA-256 hashes of tokens (\"sha256:<64 hex>\", e.g. from `printf %s TOKEN | sha256sum`), never tokens themselves"
                                        )));
                                    }
                                    config.serve.token_hashes.push(hex);
                                }
                            }
                            "token_files" => {
                                for f in list()? {
                                    config.serve.token_files.push(resolve("serve.token_files", &f)?);
                                }
                            }
                            "tls_cert" => config.serve.tls_cert = Some(resolve("serve.tls_cert", &text("a path")?)?),
                            "tls_key" => config.serve.tls_key = Some(resolve("serve.tls_key", &text("a path")?)?),
                            other => {
                                return Err(Error::Config(format!(
                                    "{shown}: unknown setting `serve.{other}`; the settings are listen, tokens, token_files, tls_cert and tls_key"
                                )));
                            }
                        }
                    }
                }
                "run_lease" => {
                    let v = value.as_str().ok_or_else(|| {
                        Error::Config(format!("{shown}: `run_lease` must be a duration string like \"30s\""))
                    })?;
                    config.run_lease = parse_duration_setting("run_lease", v)?;
                }
                "connections" => {
                    let conns = value.as_table().ok_or_else(|| {
                        Error::Config(format!("{shown}: `connections` must be tables, like [connections.NAME]"))
                    })?;
                    for (name, conn) in conns {
                        if !is_name(name) {
                            return Err(Error::Config(format!(
                                "{shown}: connection name {name:?} must be letters, digits, '-' or '_'"
                            )));
                        }
                        let mut settings = conn
                            .as_table()
                            .ok_or_else(|| Error::Config(format!("{shown}: `connections.{name}` must be a table")))?
                            .clone();
                        let provider = match settings.remove("provider") {
                            Some(toml::Value::String(p)) => p,
                            Some(_) => {
                                return Err(Error::Config(format!(
                                    "{shown}: `connections.{name}.provider` must be a string"
                                )));
                            }
                            None => {
                                return Err(Error::Config(format!(
                                    "{shown}: `connections.{name}.provider` is missing; set it to aks, eks, ecs or kubernetes"
                                )));
                            }
                        };
                        let startup_timeout = match settings.remove("startup_timeout") {
                            Some(toml::Value::String(v)) => {
                                Some(parse_duration_setting(&format!("connections.{name}.startup_timeout"), &v)?)
                            }
                            Some(_) => {
                                return Err(Error::Config(format!(
                                    "{shown}: `connections.{name}.startup_timeout` must be a duration string like \"10m\""
                                )));
                            }
                            None => None,
                        };
                        let settings = serde_json::to_value(&settings)
                            .map_err(|e| Error::Config(format!("{shown}: `connections.{name}`: {e}")))?;
                        config.connections.insert(
                            name.clone(),
                            Connection { name: name.clone(), provider, startup_timeout, settings },
                        );
                    }
                }
                "secret_patterns" => {
                    let list = value
                        .as_array()
                        .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>())
                        .ok_or_else(|| {
                            Error::Config(format!(
                                "{shown}: `secret_patterns` must be a list of name fragments, like [\"PASSWORD\", \"TOKEN\"]"
                            ))
                        })?;
                    config.secrets = crate::secrets::SecretNames::new(list);
                }
                other => {
                    return Err(Error::Config(format!(
                        "{shown}: unknown setting `{other}`; the settings are plugin_dir, catalog, catalog_password_env, catalog_password_file, run_lease, callback_secret_env, callback_secret_file, secret_patterns, [serve] and [connections.NAME]"
                    )));
                }
            }
        }
        config.catalog = match catalog {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                CatalogLocation::Postgres(
                    PostgresCatalog::new(&url, password).map_err(|e| Error::Config(format!("{shown}: {e}")))?,
                )
            }
            Some(path) => {
                if password.is_some() {
                    return Err(Error::Config(format!(
                        "{shown}: `catalog_password_env`/`catalog_password_file` are for a postgres:// catalog; `catalog` is a file"
                    )));
                }
                CatalogLocation::Sqlite(resolve("catalog", &path)?)
            }
            None => CatalogLocation::Sqlite(default_catalog()),
        };
        Ok(config)
    }

    pub fn connection(&self, name: &str) -> Result<&Connection> {
        self.connections.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.connections.keys().map(String::as_str).collect();
            let file =
                self.path.as_ref().map_or("no config file was found".to_owned(), |p| format!("see {}", p.display()));
            Error::Config(format!(
                "no connection named {name:?} ({}; {file})",
                if known.is_empty() {
                    "none are configured".to_owned()
                } else {
                    format!("configured: {}", known.join(", "))
                }
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_connections_and_resolves_paths() {
        let c = Config::parse(
            "catalog = \"cat.db\"\n[connections.prod]\nprovider = \"kubernetes\"\nnamespace = \"batch\"\n",
            Some(PathBuf::from("/etc/polysync/config.toml")),
        )
        .unwrap();
        assert_eq!(c.catalog, CatalogLocation::Sqlite(PathBuf::from("/etc/polysync/cat.db")));
        let prod = c.connection("prod").unwrap();
        assert_eq!(prod.provider, "kubernetes");
        assert_eq!(prod.settings, serde_json::json!({"namespace": "batch"}));
    }

    #[test]
    fn errors_name_the_field() {
        let e = Config::parse("[connections.x]\nnamespace = \"a\"\n", None).unwrap_err().to_string();
        assert!(e.contains("connections.x.provider"), "{e}");
        let e = Config::parse("catalg = \"x\"\n", None).unwrap_err().to_string();
        assert!(e.contains("catalg"), "{e}");
        let e = Config::parse("[connections.\"bad name\"]\nprovider = \"k\"\n", None).unwrap_err().to_string();
        assert!(e.contains("bad name"), "{e}");
        let e = Config::parse("plugin_dir = 3\n", None).unwrap_err().to_string();
        assert!(e.contains("plugin_dir"), "{e}");
    }
}
