//! The one retry policy of the plugins: how long to wait before the next
//! attempt of a call the platform refused for now (throttled, unavailable).
//! Pure arithmetic, no I/O and no randomness of its own: each plugin
//! sleeps and draws the jitter, so this stays testable and the contract
//! crate stays free of a runtime.

use std::time::Duration;

/// Exponential backoff with jitter that never waits less than the platform
/// asked (`Retry-After`), within `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Attempts in all, the first one included.
    pub attempts: u32,
    /// The wait after the first failed attempt, before jitter.
    pub base: Duration,
    /// No wait is longer, whatever the attempt or the platform asked.
    pub cap: Duration,
}

impl Backoff {
    /// Whether a call that failed on attempt `attempt` (1 for the first)
    /// may be tried again.
    pub fn again(&self, attempt: u32) -> bool {
        attempt < self.attempts
    }

    /// The wait after failed attempt `attempt` (1 for the first): `base`
    /// doubled per attempt, capped, scaled by `jitter` (a draw from 0.5 to
    /// 1.0, so callers that fail together spread out), and never shorter
    /// than `retry_after` (itself capped).
    pub fn wait(&self, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        let exp = self.base.saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(self.cap);
        let jittered = exp.mul_f64(jitter.clamp(0.5, 1.0));
        retry_after.map_or(jittered, |after| after.min(self.cap).max(jittered))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Backoff = Backoff { attempts: 4, base: Duration::from_millis(100), cap: Duration::from_secs(1) };

    #[test]
    fn doubles_from_base_up_to_the_cap() {
        let waits: Vec<_> = (1..=6).map(|a| POLICY.wait(a, None, 1.0)).collect();
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(POLICY.wait(2, None, 0.5), Duration::from_millis(100));
    }

    #[test]
    fn waits_at_least_what_the_platform_asked_within_the_cap() {
        assert_eq!(POLICY.wait(1, Some(Duration::from_millis(700)), 1.0), Duration::from_millis(700));
        assert_eq!(POLICY.wait(1, Some(Duration::from_secs(30)), 1.0), Duration::from_secs(1));
        assert_eq!(POLICY.wait(4, Some(Duration::from_millis(10)), 1.0), Duration::from_millis(800));
    }

    #[test]
    fn attempts_count_the_first() {
        assert!(POLICY.again(3));
        assert!(!POLICY.again(4));
    }
}
