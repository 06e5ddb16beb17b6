//! Fault injection, switchable at run time: a share of resource requests
//! answered 429/500/503, added latency, watches cut after N events, and
//! `continue` tokens that expire at once.
//!
//! Faults apply to resource requests only (not discovery or `/sandbox/*`),
//! so a client can always find the API and the switches.

use std::sync::RwLock;
use std::time::Duration;

use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The current fault settings. `Default` is no faults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultSettings {
    /// Share of resource requests (0.0 – 1.0) answered with an error.
    pub error_rate: f64,
    /// The status codes to pick from for those errors (429, 500, 503).
    pub error_codes: Vec<u16>,
    /// `Retry-After` seconds sent with 429.
    pub retry_after_seconds: u64,
    /// Added to every resource request.
    pub latency_ms: u64,
    /// Cut each watch connection after this many events.
    pub watch_cut_after: Option<u64>,
    /// Every `continue` token is already expired (410).
    pub expire_continue: bool,
    /// Fail list requests that carry a `continue` token after this many
    /// pages of one listing have been served (a sync that dies midway).
    pub fail_list_after_pages: Option<u64>,
}

/// The shared switch board.
#[derive(Debug, Default)]
pub struct Faults(RwLock<FaultSettings>);

impl Faults {
    pub fn get(&self) -> FaultSettings {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, settings: FaultSettings) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = settings;
    }

    pub fn update(&self, f: impl FnOnce(&mut FaultSettings)) {
        f(&mut self.0.write().unwrap_or_else(|p| p.into_inner()));
    }

    pub fn clear(&self) {
        self.set(FaultSettings::default());
    }

    /// Apply latency, then maybe answer with an injected error.
    pub async fn before_request(&self) -> Result<(), ApiError> {
        let settings = self.get();
        if settings.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(settings.latency_ms)).await;
        }
        if settings.error_rate > 0.0 && rand::rng().random_bool(settings.error_rate.clamp(0.0, 1.0)) {
            let codes = if settings.error_codes.is_empty() { vec![429, 500, 503] } else { settings.error_codes };
            let code = codes[rand::rng().random_range(0..codes.len())];
            return Err(match code {
                429 => ApiError::too_many_requests(settings.retry_after_seconds.max(1)),
                503 => ApiError::unavailable("injected fault: the server is currently unable to handle the request"),
                _ => ApiError::internal(
                    "injected fault: an error on the server (\"\") has prevented the request from succeeding",
                ),
            });
        }
        Ok(())
    }
}
