//! The sandbox's scheduling decision for its one node: a pod whose
//! `nodeSelector` the node does not match, or whose requests exceed the
//! node's allocatable resources, stays Pending with `PodScheduled=False`,
//! reason `Unschedulable` and the message kube-scheduler writes, so what a
//! user sees of an unschedulable pod is the same on both clusters.

use serde_json::Value;

/// The sandbox node's labels (the same set the real cluster's node has).
pub const NODE_LABELS: [(&str, &str); 5] = [
    ("kubernetes.io/hostname", super::node::SANDBOX_NODE),
    ("kubernetes.io/os", "linux"),
    ("kubernetes.io/arch", "amd64"),
    ("beta.kubernetes.io/os", "linux"),
    ("beta.kubernetes.io/arch", "amd64"),
];

/// The sandbox node's allocatable CPU (millicores) and memory (bytes): as
/// the real cluster's node registers (64 CPUs, 256 GiB).
const CPU_MILLIS: f64 = 64_000.0;
const MEMORY_BYTES: f64 = 256.0 * 1024.0 * 1024.0 * 1024.0;

/// Why the pod cannot be placed on the node, as kube-scheduler says it.
pub fn unschedulable(pod: &Value) -> Option<String> {
    let spec = &pod["spec"];
    if let Some(selector) = spec["nodeSelector"].as_object() {
        let matches =
            selector.iter().all(|(k, v)| NODE_LABELS.iter().any(|(lk, lv)| lk == k && Some(*lv) == v.as_str()));
        if !matches {
            return Some(
                "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. no new claims to deallocate, preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
                    .into(),
            );
        }
    }
    let containers = spec["containers"].as_array().into_iter().flatten();
    let requested = |resource: &str, parse: fn(&str) -> Option<f64>| -> f64 {
        containers
            .clone()
            .filter_map(|c| {
                let r = &c["resources"];
                let q = r["requests"][resource].as_str().or_else(|| r["limits"][resource].as_str())?;
                parse(q)
            })
            .sum()
    };
    let mut short = Vec::new();
    if requested("cpu", cpu_millis) > CPU_MILLIS {
        short.push("1 Insufficient cpu");
    }
    if requested("memory", bytes) > MEMORY_BYTES {
        short.push("1 Insufficient memory");
    }
    (!short.is_empty()).then(|| {
        format!(
            "0/1 nodes are available: {}. no new claims to deallocate, preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
            short.join(", ")
        )
    })
}

/// A CPU quantity (`500m`, `2`, `1.5`) in millicores.
fn cpu_millis(q: &str) -> Option<f64> {
    match q.strip_suffix('m') {
        Some(m) => m.parse().ok(),
        None => q.parse::<f64>().ok().map(|c| c * 1000.0),
    }
}

/// A memory quantity (`128Mi`, `1G`, `1e9`, `512`) in bytes.
fn bytes(q: &str) -> Option<f64> {
    const SUFFIXES: [(&str, f64); 12] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (suffix, factor) in SUFFIXES {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    q.parse().ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_pod_the_node_cannot_take_is_unschedulable() {
        assert_eq!(unschedulable(&json!({"spec": {"containers": [{"name": "main"}]}})), None);
        let fits = json!({"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
            "containers": [{"name": "main", "resources": {"requests": {"cpu": "500m", "memory": "128Mi"}}}]}});
        assert_eq!(unschedulable(&fits), None);
        let elsewhere = json!({"spec": {"nodeSelector": {"disktype": "ssd"}, "containers": [{"name": "main"}]}});
        assert!(unschedulable(&elsewhere).unwrap().contains("didn't match Pod's node affinity/selector"));
        let big = json!({"spec": {"containers": [{"name": "main", "resources": {"requests": {"cpu": "100", "memory": "1Ti"}}}]}});
        assert!(unschedulable(&big).unwrap().contains("1 Insufficient cpu, 1 Insufficient memory"));
        assert_eq!(bytes("1e3"), Some(1000.0));
        assert_eq!(cpu_millis("1.5"), Some(1500.0));
    }
}
