//! The host's errors and the exit code each maps to.
//!
//! Exit codes are part of the CLI's contract with schedulers: 0 success,
//! 1 failure, 2 authentication or authorization, 20 invalid input, 21 name
//! conflict, 40 timeout.

use polysync_provider_api::{ErrorKind, ProviderError};

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_AUTH: u8 = 2;
pub const EXIT_INVALID: u8 = 20;
pub const EXIT_CONFLICT: u8 = 21;
pub const EXIT_TIMEOUT: u8 = 40;
/// `run` could not hear back from the platform: the run is recorded and
/// pending (it may or may not exist there); `polysync watch` finishes it
/// with the same idempotency key, `polysync cancel` withdraws it.
pub const EXIT_PENDING: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file or a connection in it is wrong.
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    InvalidInput(String),
    /// Something the request names is not in the catalog.
    #[error(transparent)]
    NotFound(#[from] Missing),
    #[error("{0}")]
    Provider(#[from] ProviderError),
    /// The catalog store failed; `message` says what to check, and
    /// `source` is the engine's own error (a statement's, the pool's, or a
    /// row polysync cannot read), when there is one.
    #[error("the catalog {store} failed: {message}")]
    Catalog {
        store: String,
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// `run --wait --timeout` gave up waiting; the run goes on.
    #[error(
        "run #{run} ({platform_id}) did not finish within {limit:?}; it goes on — follow it with `polysync watch` or stop it with `polysync cancel {run}`"
    )]
    Timeout { run: i64, platform_id: String, limit: std::time::Duration },
    /// A file, socket or signal call failed; `context` says what polysync
    /// was doing.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The embedded sandbox cluster (`polysync demo`, `polysync sandbox`)
    /// did not start.
    #[error("the sandbox cluster did not start: {0}")]
    Sandbox(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A blocking task of the host ended abnormally (it panicked or was
    /// cancelled at shutdown).
    #[error("{context} ended abnormally: {source}")]
    Task {
        context: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    /// A completion callback that every attempt failed to deliver; the run
    /// stays unfinished so the next follower tries again.
    #[error("the callback of run #{run} to {url} {last} after {attempts} attempts")]
    Callback { run: i64, url: String, last: String, attempts: u32 },
    /// The request collides with something that exists.
    #[error(transparent)]
    Conflict(#[from] Clash),
    /// A submission whose outcome is unknown; see [`EXIT_PENDING`].
    #[error(transparent)]
    Pending(#[from] Unanswered),
}

/// What a request named that the catalog does not hold. Each message says
/// how to get it.
#[derive(Debug, thiserror::Error)]
pub enum Missing {
    #[error("no entry {entry:?} in the catalog of {connection}; run `polysync discover {connection}` first")]
    Entry { connection: String, entry: String },
    /// `reference` as given: a catalog number (`12`, `#12`) or a platform id.
    #[error("no run {reference:?} in the catalog; list them with `polysync runs`")]
    Run { reference: String },
    /// The platform dropped the run's logs and none were archived; `why`
    /// is what the platform said.
    #[error(
        "the logs of run #{run} are gone from the platform and were not archived (the run ended before polysync followed it); {why}"
    )]
    Logs { run: i64, why: String },
}

/// A request that collides with something that exists.
#[derive(Debug, thiserror::Error)]
pub enum Clash {
    /// The idempotency key belongs to a run of another request (another
    /// entry or other parameter names).
    #[error(
        "idempotency key {key:?} already belongs to run #{run} ({connection} {entry} with {}); use a new key for a different request",
        names_or_none(.parameters)
    )]
    KeyReused { key: String, run: i64, connection: String, entry: String, parameters: Vec<String> },
    /// A sync of the connection is held by a live host (one sync per
    /// connection at a time); `holder` is its host id when recorded.
    #[error(
        "a sync of {connection} is already running (by {}, since {since}); wait for it to end",
        .holder.as_deref().unwrap_or("an unknown host")
    )]
    SyncRunning { connection: String, holder: Option<String>, since: crate::stamp::Stamp },
}

/// The parameter names of a run, or "no parameters".
fn names_or_none(names: &[String]) -> String {
    if names.is_empty() { "no parameters".to_owned() } else { names.join(", ") }
}

/// A submission the platform did not answer: run `run` is recorded and
/// may or may not exist there.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "run #{run} is pending: the platform did not answer ({platform_said}); it may or may not have been created. `polysync watch` finishes it with the same idempotency key (adopting the Job if it exists, never creating a second), or `polysync cancel {run}` withdraws it"
)]
pub struct Unanswered {
    pub run: i64,
    /// The provider's message for the failed call.
    pub platform_said: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O failure while doing `context`.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}

/// A provider's error kind in the host's vocabulary (snake case, as every
/// other kind the CLI, the API's problem documents and the metrics name).
pub fn provider_kind(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidInput => "invalid_input",
        ErrorKind::Unauthorized => "unauthorized",
        ErrorKind::Forbidden => "forbidden",
        ErrorKind::NotFound => "not_found",
        ErrorKind::Conflict => "conflict",
        ErrorKind::Throttled => "throttled",
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Cancelled => "cancelled",
        ErrorKind::Unsupported => "unsupported",
        ErrorKind::Internal => "internal",
        _ => "unknown",
    }
}

impl Error {
    /// A stable short name for `--output json`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Config(_) => "config",
            Self::InvalidInput(_) => "invalid_input",
            Self::NotFound(_) => "not_found",
            Self::Provider(e) => provider_kind(e.kind()),
            Self::Catalog { .. } => "catalog",
            Self::Timeout { .. } => "timeout",
            Self::Io { .. } => "io",
            Self::Sandbox(_) => "sandbox",
            Self::Task { .. } => "internal",
            Self::Callback { .. } => "callback",
            Self::Conflict(_) => "conflict",
            Self::Pending(_) => "pending",
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) | Self::InvalidInput(_) | Self::NotFound(_) => EXIT_INVALID,
            Self::Timeout { .. } => EXIT_TIMEOUT,
            Self::Conflict(_) => EXIT_CONFLICT,
            Self::Pending(_) => EXIT_PENDING,
            Self::Catalog { .. } | Self::Io { .. } | Self::Sandbox(_) | Self::Task { .. } | Self::Callback { .. } => {
                EXIT_FAILURE
            }
            Self::Provider(e) => match e.kind() {
                ErrorKind::Unauthorized | ErrorKind::Forbidden => EXIT_AUTH,
                ErrorKind::InvalidInput | ErrorKind::NotFound => EXIT_INVALID,
                ErrorKind::Conflict => EXIT_CONFLICT,
                ErrorKind::Timeout => EXIT_TIMEOUT,
                _ => EXIT_FAILURE,
            },
        }
    }
}
