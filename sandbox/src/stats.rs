//! Request counters by verb and resource, readable at run time, so a
//! benchmark can report the API load a client causes.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Counts requests as `"verb resource"` → n (e.g. `"list jobs"`).
#[derive(Debug, Default)]
pub struct Stats(Mutex<BTreeMap<String, u64>>);

impl Stats {
    pub fn count(&self, verb: &str, resource: &str) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()).entry(format!("{verb} {resource}")).or_default() += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Total over every verb and resource.
    pub fn total(&self) -> u64 {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).values().sum()
    }

    pub fn get(&self, verb: &str, resource: &str) -> u64 {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(&format!("{verb} {resource}")).copied().unwrap_or(0)
    }

    pub fn reset(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
