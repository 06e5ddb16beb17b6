//! The labels and annotations polysync puts on the Jobs it creates, and the
//! server-owned labels it strips from clones.

/// Marks every Job (and its pods) this system created; discovery skips them.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "polysync";
/// The run id (the Job's own name), also on the pods.
pub const RUN: &str = "polysync.io/run";
/// The source Job or CronJob name.
pub const SOURCE: &str = "polysync.io/source";
/// `Job` or `CronJob`.
pub const SOURCE_KIND: &str = "polysync.io/source-kind";
/// The idempotency key the Job was created for.
pub const IDEMPOTENCY_KEY: &str = "polysync.io/idempotency-key";

/// The label selector of everything polysync manages.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY}={MANAGED_BY_VALUE}")
}

/// Labels the API server and job controller own; a clone must not carry them.
pub const SERVER_OWNED: [&str; 5] = [
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
    "batch.kubernetes.io/job-completion-index",
];

/// Annotations the server or tools own.
pub const SERVER_OWNED_ANNOTATIONS: [&str; 3] = [
    "batch.kubernetes.io/job-tracking",
    "kubectl.kubernetes.io/last-applied-configuration",
    "cronjob.kubernetes.io/instantiate",
];

/// Kueue's queue label (also accepted as an annotation): the Job waits,
/// suspended, until Kueue admits it.
pub const KUEUE_QUEUE: &str = "kueue.x-k8s.io/queue-name";

/// The queue a Job waits in, if Kueue manages it.
pub fn kueue_queue(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<String> {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(KUEUE_QUEUE))
        .or_else(|| meta.annotations.as_ref().and_then(|a| a.get(KUEUE_QUEUE)))
        .cloned()
}

/// Marks of other controllers that a rerun must not carry, or a GitOps tool
/// would prune or adopt it: Helm hooks and release metadata, Argo CD
/// tracking. Matched as key prefixes.
pub const FOREIGN_ANNOTATION_PREFIXES: [&str; 3] = ["helm.sh/", "meta.helm.sh/", "argocd.argoproj.io/"];

/// Labels other controllers use to track what they own.
pub fn is_foreign_label(key: &str) -> bool {
    key.starts_with("argocd.argoproj.io/") || key == "helm.sh/chart" || key == "app.kubernetes.io/instance"
}

/// The outputs an object declares in its annotations.
pub fn declared(meta: &kube::api::ObjectMeta) -> Vec<String> {
    let Some(value) = meta.annotations.as_ref().and_then(|a| a.get(polysync_provider_api::outputs::DECLARE)) else {
        return Vec::new();
    };
    let (names, invalid) = polysync_provider_api::outputs::declared(value);
    if !invalid.is_empty() {
        tracing::warn!(
            object = meta.name.as_deref().unwrap_or_default(),
            "{} lists names that are not valid output names, skipped: {}",
            polysync_provider_api::outputs::DECLARE,
            invalid.join(", ")
        );
    }
    names
}
