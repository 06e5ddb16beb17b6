//! Prometheus metrics. Labels are states, operations and outcomes only:
//! never a parameter, a run id or anything from a request body.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::{RunState, Store};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    pub operation: String,
}

/// Every metric the server exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    runs: Family<StateLabel, Gauge>,
    pub submissions: Family<OutcomeLabel, Counter>,
    pub provider_calls: Family<OperationLabel, Histogram>,
    pub watch_batches: Counter,
    pub follow_errors: Counter,
    pub lease_claims: Counter,
    pub callbacks: Family<OutcomeLabel, Counter>,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("polysync");
        let runs = Family::<StateLabel, Gauge>::default();
        registry.register("runs", "Runs in the catalog by state", runs.clone());
        let submissions = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "submissions",
            "Run creations answered (created, existing for a repeated idempotency key, pending, refused)",
            submissions.clone(),
        );
        let provider_calls = Family::<OperationLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        registry.register("provider_call_seconds", "Latency of calls into provider plugins", provider_calls.clone());
        let watch_batches = Counter::default();
        registry.register(
            "watch_batches",
            "Platform watches opened to follow a batch of runs (one per claim or adoption; a reconnect opens another)",
            watch_batches.clone(),
        );
        let follow_errors = Counter::default();
        registry.register(
            "follow_errors",
            "Batches whose following failed and were let go to be claimed again",
            follow_errors.clone(),
        );
        let lease_claims = Counter::default();
        registry.register(
            "lease_claims",
            "Runs this replica claimed from the catalog (new, released or taken over)",
            lease_claims.clone(),
        );
        let callbacks = Family::<OutcomeLabel, Counter>::default();
        registry.register("callbacks", "Completion callbacks by outcome", callbacks.clone());
        Arc::new(Self {
            registry,
            runs,
            submissions,
            provider_calls,
            watch_batches,
            follow_errors,
            lease_claims,
            callbacks,
        })
    }

    pub fn submission(&self, outcome: &str) {
        self.submissions.get_or_create(&OutcomeLabel { outcome: outcome.into() }).inc();
    }

    pub fn observe(&self, operation: &str, seconds: f64) {
        self.provider_calls.get_or_create(&OperationLabel { operation: operation.into() }).observe(seconds);
    }

    /// The text exposition, the run gauges read from the store first.
    pub async fn render(&self, store: &dyn Store) -> String {
        if let Ok(counts) = store.count_by_state().await {
            for state in RunState::ALL {
                let n = counts.iter().find(|(s, _)| *s == state).map_or(0, |(_, n)| *n);
                self.runs.get_or_create(&StateLabel { state: state.as_str().into() }).set(n as i64);
            }
        }
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
