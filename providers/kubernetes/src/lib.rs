//! The `kubernetes` provider: Kubernetes Jobs on any cluster a kubeconfig
//! reaches (and the embedded sandbox). This crate only turns connection
//! settings into a client; everything else is `polysync-kube-jobs`.
//!
//! Settings: `kubeconfig` (a path; default `$KUBECONFIG`, then
//! `~/.kube/config`) or `kubeconfig_inline` (the YAML itself), `context`
//! (default: the current context), `namespace` (default: the context's, then
//! `default`), `monitor_url_template` (an https URL with `{namespace}`,
//! `{name}`, `{kind}`), `include_cronjobs` (default true).

use async_trait::async_trait;
use kube::config::{KubeConfigOptions, Kubeconfig};
use polysync_kube_jobs::{Connector, KubeJobs, NoMonitor, UrlTemplate};
use polysync_provider_api::{ErrorKind, Manifest, ProviderError, Result};

polysync_provider_api::settings! {
    /// The kubernetes connection's settings.
    struct Settings {
        /// path to a kubeconfig (default: $KUBECONFIG, then ~/.kube/config)
        optional kubeconfig: String,
        /// the kubeconfig YAML itself, instead of a path
        optional kubeconfig_inline: String,
        /// kubeconfig context (default: the current context)
        optional context: String,
        /// namespace of the Jobs (default: the context's, then default)
        optional namespace: String,
        /// https URL for entries and runs, with {namespace}, {name}, {kind}
        optional monitor_url_template: String,
        /// discover CronJobs too (default true)
        optional include_cronjobs: bool,
        /// how long one API request may go unanswered (default "30s")
        optional request_timeout: serde_json::Value,
        /// how long connecting to the API server may take (default "10s")
        optional connect_timeout: serde_json::Value,
    }
}

/// A duration setting: seconds as a number, or `"30s"`, `"2m"`, `"500ms"`;
/// between 100 ms and 1 hour; `default_secs` when unset.
fn duration_setting(key: &str, v: Option<&serde_json::Value>, default_secs: f64) -> Result<std::time::Duration> {
    let Some(v) = v else { return Ok(std::time::Duration::from_secs_f64(default_secs)) };
    let secs = match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(t) => {
            let t = t.trim();
            let (num, unit) = t.split_at(t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len()));
            let n: Option<f64> = num.trim().parse().ok();
            match unit {
                "" | "s" => n,
                "ms" => n.map(|n| n / 1000.0),
                "m" => n.map(|n| n * 60.0),
                _ => None,
            }
        }
        _ => None,
    };
    match secs {
        Some(s) if s.is_finite() && (0.1..=3600.0).contains(&s) => Ok(std::time::Duration::from_secs_f64(s)),
        _ => Err(invalid(format!("setting `{key}` = {v}: give a duration between 100ms and 1h, like \"30s\""))),
    }
}

fn invalid(message: String) -> ProviderError {
    ProviderError::invalid_input(message)
}

fn manifest() -> Manifest {
    let mut m = Manifest::new("kubernetes", env!("CARGO_PKG_VERSION"));
    m.description = "Kubernetes Jobs and CronJobs on any cluster reachable through a kubeconfig".into();
    m.settings = Settings::docs();
    m.capabilities = polysync_kube_jobs::capabilities();
    m
}

/// Builds a `kube::Client` from the kubeconfig on first use.
struct KubeconfigConnector {
    kubeconfig: Kubeconfig,
    options: KubeConfigOptions,
    connect_timeout: std::time::Duration,
}

#[async_trait]
impl Connector for KubeconfigConnector {
    async fn connect(&self) -> Result<kube::Client> {
        let config =
            kube::Config::from_custom_kubeconfig(self.kubeconfig.clone(), &self.options).await.map_err(|e| {
                ProviderError::new(
                    ErrorKind::InvalidInput,
                    format!("the kubeconfig cannot be used: {e}; check its cluster and user entries"),
                )
            })?;
        let mut config = config;
        config.connect_timeout = Some(self.connect_timeout);
        polysync_kube_jobs::connect::client(config)
    }
}

/// Validate settings and build the provider (no network yet).
pub fn build(settings: serde_json::Value) -> Result<KubeJobs> {
    let s: Settings = serde_json::from_value(settings).map_err(|e| {
        invalid(format!("kubernetes connection settings: {e}; the settings are {}", Settings::KEYS.join(", ")))
    })?;
    let kubeconfig = match (&s.kubeconfig, &s.kubeconfig_inline) {
        (Some(_), Some(_)) => return Err(invalid("set either `kubeconfig` or `kubeconfig_inline`, not both".into())),
        (Some(path), None) => {
            let path = expand_home(path);
            Kubeconfig::read_from(&path)
                .map_err(|e| invalid(format!("setting `kubeconfig`: cannot read {path}: {e}")))?
        }
        (None, Some(yaml)) => Kubeconfig::from_yaml(yaml)
            .map_err(|e| invalid(format!("setting `kubeconfig_inline` is not a kubeconfig: {e}")))?,
        (None, None) => Kubeconfig::read().map_err(|e| {
            invalid(format!(
                "no `kubeconfig` setting and none found in $KUBECONFIG or ~/.kube/config ({e}); set `kubeconfig`"
            ))
        })?,
    };
    let context_name = s.context.clone().or_else(|| kubeconfig.current_context.clone());
    let context = match &context_name {
        Some(name) => {
            let found = kubeconfig.contexts.iter().find(|c| &c.name == name);
            if found.is_none() {
                let known: Vec<&str> = kubeconfig.contexts.iter().map(|c| c.name.as_str()).collect();
                return Err(invalid(format!(
                    "setting `context`: {name:?} is not in the kubeconfig (it has: {})",
                    known.join(", ")
                )));
            }
            found.and_then(|c| c.context.clone())
        }
        None => return Err(invalid("the kubeconfig has no current-context; set `context`".into())),
    };
    let namespace =
        s.namespace.clone().or_else(|| context.clone().and_then(|c| c.namespace)).unwrap_or_else(|| "default".into());
    polysync_kube_jobs::naming::check_namespace(&namespace)?;
    let user = context.as_ref().and_then(|c| c.user.clone());
    let server = context.as_ref().and_then(|c| {
        kubeconfig.clusters.iter().find(|k| k.name == c.cluster).and_then(|k| k.cluster.as_ref()?.server.clone())
    });
    check_exec_helper(&kubeconfig, user.as_deref())?;
    let request_timeout = duration_setting("request_timeout", s.request_timeout.as_ref(), 30.0)?;
    let connect_timeout = duration_setting("connect_timeout", s.connect_timeout.as_ref(), 10.0)?;
    let connector = KubeconfigConnector {
        kubeconfig,
        options: KubeConfigOptions { context: context_name, cluster: None, user: None },
        connect_timeout,
    };
    let retry = polysync_kube_jobs::RetryPolicy {
        timeout: Some(request_timeout),
        endpoint: format!("the API server {}", server.as_deref().unwrap_or("of the kubeconfig")),
        ..Default::default()
    };
    let include = s.include_cronjobs.unwrap_or(true);
    let provider = match s.monitor_url_template {
        Some(t) if !t.starts_with("https://") => {
            return Err(invalid(format!("setting `monitor_url_template` must be an https URL, got {t:?}")));
        }
        Some(t) => KubeJobs::new(manifest(), namespace, connector, UrlTemplate(t)),
        None => KubeJobs::new(manifest(), namespace, connector, NoMonitor),
    };
    Ok(provider.with_cronjobs(include).with_retry(retry))
}

/// A kubeconfig whose user gets credentials from a program (`exec`:
/// kubelogin, aws, gke-gcloud-auth-plugin, ...) needs that program: say
/// which one is missing, not that "the client failed".
fn check_exec_helper(kubeconfig: &Kubeconfig, user: Option<&str>) -> Result<()> {
    let Some(user) = user else { return Ok(()) };
    let command = kubeconfig
        .auth_infos
        .iter()
        .find(|a| a.name == user)
        .and_then(|a| a.auth_info.as_ref()?.exec.as_ref()?.command.clone());
    let Some(command) = command else { return Ok(()) };
    let found = if command.contains('/') {
        std::path::Path::new(&command).is_file()
    } else {
        std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(&command).is_file()))
    };
    if found {
        return Ok(());
    }
    Err(invalid(format!(
        "the kubeconfig user {user:?} gets its credentials by running `{command}` (exec), which is not installed or not on PATH; install it, or use a kubeconfig with a token or certificate"
    )))
}

fn expand_home(path: &str) -> String {
    match (path.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) => format!("{home}/{rest}"),
        _ => path.to_owned(),
    }
}

polysync_provider_api::export_provider!(manifest = manifest, build = build);
