//! `v1` Events, as the controllers and the kubelet record them.

use serde_json::{Value, json};

use crate::resources::Kind;
use crate::store::Store;
use crate::time::{now_micro, now_rfc3339};

/// Record an event about `involved`. `warning` picks the event type.
pub fn record(store: &Store, component: &str, involved: &Value, warning: bool, reason: &str, message: &str) {
    // An event about an object in a namespace that is gone is dropped, as
    // the real recorder's would be.
    let _ = store.create(Kind::Event, build(component, involved, warning, reason, message));
}

/// The `v1` Event a recorder writes about `involved`.
pub fn build(component: &str, involved: &Value, warning: bool, reason: &str, message: &str) -> Value {
    let meta = &involved["metadata"];
    let namespace = meta["namespace"].as_str().unwrap_or("default");
    let name = format!("{}.{:016x}", meta["name"].as_str().unwrap_or_default(), rand::random::<u64>());
    let now = now_rfc3339();
    let event = json!({
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": {
            "kind": involved["kind"],
            "namespace": namespace,
            "name": meta["name"],
            "uid": meta["uid"],
            "apiVersion": involved["apiVersion"],
            "resourceVersion": meta["resourceVersion"],
        },
        "reason": reason,
        "message": message,
        "source": {"component": component},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "eventTime": now_micro(),
        "count": 1,
        "type": if warning { "Warning" } else { "Normal" },
        "reportingComponent": component,
        "reportingInstance": "sandbox",
        "action": reason,
    });
    event
}
