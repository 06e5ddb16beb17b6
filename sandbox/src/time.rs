//! Wall-clock timestamps and the sandbox's time scale.
//!
//! Timestamps are real (RFC 3339, seconds, like `metav1.Time`). Durations the
//! sandbox simulates (a container's `sleep`, image pulls, backoff,
//! `activeDeadlineSeconds`) are multiplied by the time scale, so a
//! 10-second job can take 100 ms in a test.

use std::time::Duration;

use jiff::{Timestamp, Unit};

/// `2026-11-23T01:02:03Z`.
pub fn now_rfc3339() -> String {
    format_ts(Timestamp::now())
}

/// `2026-11-23T01:02:03.123456Z` (`metav1.MicroTime`).
pub fn now_micro() -> String {
    let ts = Timestamp::now().round(Unit::Microsecond).unwrap_or_else(|_| Timestamp::now());
    ts.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

pub fn format_ts(ts: Timestamp) -> String {
    let ts = ts.round(Unit::Second).unwrap_or(ts);
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn parse_ts(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}

/// Scales simulated durations.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    scale: f64,
}

impl Clock {
    /// `scale` 1.0 is real time; 0.01 makes a 10 s sleep take 100 ms.
    pub fn new(scale: f64) -> Self {
        Self { scale: if scale.is_finite() && scale > 0.0 { scale } else { 1.0 } }
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Real duration of a simulated one.
    pub fn real(&self, simulated: Duration) -> Duration {
        simulated.mul_f64(self.scale)
    }

    pub async fn sleep(&self, simulated: Duration) {
        tokio::time::sleep(self.real(simulated)).await;
    }
}
