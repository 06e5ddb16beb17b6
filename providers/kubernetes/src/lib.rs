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
use polysync_provider_api::{ErrorKind, Manifest, ProviderError, Result, SettingDoc};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    kubeconfig: Option<String>,
    kubeconfig_inline: Option<String>,
    context: Option<String>,
    namespace: Option<String>,
    monitor_url_template: Option<String>,
    include_cronjobs: Option<bool>,
}

fn invalid(message: String) -> ProviderError {
    ProviderError::invalid_input(message)
}

fn manifest() -> Manifest {
    let mut m = Manifest::new("kubernetes", env!("CARGO_PKG_VERSION"));
    m.description = "Kubernetes Jobs and CronJobs on any cluster reachable through a kubeconfig".into();
    m.settings = vec![
        SettingDoc::optional("kubeconfig", "path to a kubeconfig (default: $KUBECONFIG, then ~/.kube/config)"),
        SettingDoc::optional("kubeconfig_inline", "the kubeconfig YAML itself, instead of a path"),
        SettingDoc::optional("context", "kubeconfig context (default: the current context)"),
        SettingDoc::optional("namespace", "namespace of the Jobs (default: the context's, then default)"),
        SettingDoc::optional(
            "monitor_url_template",
            "https URL for entries and runs, with {namespace}, {name}, {kind}",
        ),
        SettingDoc::optional("include_cronjobs", "discover CronJobs too (default true)"),
    ];
    m.capabilities = polysync_kube_jobs::capabilities();
    m
}

/// Builds a `kube::Client` from the kubeconfig on first use.
struct KubeconfigConnector {
    kubeconfig: Kubeconfig,
    options: KubeConfigOptions,
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
        polysync_kube_jobs::connect::client(config)
    }
}

/// Validate settings and build the provider (no network yet).
pub fn build(settings: serde_json::Value) -> Result<KubeJobs> {
    let s: Settings = serde_json::from_value(settings).map_err(|e| {
        invalid(format!(
            "kubernetes connection settings: {e}; the settings are kubeconfig, kubeconfig_inline, context, namespace, monitor_url_template, include_cronjobs"
        ))
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
        s.namespace.clone().or_else(|| context.and_then(|c| c.namespace)).unwrap_or_else(|| "default".into());
    polysync_kube_jobs::naming::check_namespace(&namespace)?;
    let connector = KubeconfigConnector {
        kubeconfig,
        options: KubeConfigOptions { context: context_name, cluster: None, user: None },
    };
    let include = s.include_cronjobs.unwrap_or(true);
    let provider = match s.monitor_url_template {
        Some(t) if !t.starts_with("https://") => {
            return Err(invalid(format!("setting `monitor_url_template` must be an https URL, got {t:?}")));
        }
        Some(t) => KubeJobs::new(manifest(), namespace, connector, UrlTemplate(t)),
        None => KubeJobs::new(manifest(), namespace, connector, NoMonitor),
    };
    Ok(provider.with_cronjobs(include))
}

fn expand_home(path: &str) -> String {
    match (path.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) => format!("{home}/{rest}"),
        _ => path.to_owned(),
    }
}

polysync_provider_api::export_provider!(manifest = manifest, build = build);
