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
