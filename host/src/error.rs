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
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Provider(#[from] ProviderError),
    /// The catalog store failed; `message` says what to check.
    #[error("the catalog {store} failed: {message}")]
    Catalog { store: String, message: String },
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Io(String),
    /// The request collides with something that exists (an idempotency key
    /// already used for another request).
    #[error("{0}")]
    Conflict(String),
    /// A submission whose outcome is unknown; see [`EXIT_PENDING`].
    #[error("{0}")]
    Pending(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

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
            Self::Timeout(_) => "timeout",
            Self::Io(_) => "io",
            Self::Conflict(_) => "conflict",
            Self::Pending(_) => "pending",
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) | Self::InvalidInput(_) | Self::NotFound(_) => EXIT_INVALID,
            Self::Timeout(_) => EXIT_TIMEOUT,
            Self::Conflict(_) => EXIT_CONFLICT,
            Self::Pending(_) => EXIT_PENDING,
            Self::Catalog { .. } | Self::Io(_) => EXIT_FAILURE,
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
