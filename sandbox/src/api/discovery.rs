//! Discovery documents: `/version`, `/api`, `/api/v1`, `/apis`,
//! `/apis/batch/v1` — what kubectl and kube-rs read to find resources.

use serde_json::{Value, json};

use crate::resources::Kind;

/// The discovery document at `path`, if it is one.
pub fn document(path: &str) -> Option<Value> {
    match path.trim_end_matches('/') {
        "/version" => Some(json!({
            "major": "1",
            "minor": "33",
            "gitVersion": "v1.33.0-polysync-sandbox",
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "n/a",
            "compiler": "rustc",
            "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        })),
        "/api" => Some(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
        })),
        "/apis" => Some(json!({
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [{
                "name": "batch",
                "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"},
            }],
        })),
        "/api/v1" => Some(resource_list("v1", "")),
        "/apis/batch" => Some(json!({
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": "batch",
            "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
            "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"},
        })),
        "/apis/batch/v1" => Some(resource_list("batch/v1", "batch")),
        _ => None,
    }
}

fn resource_list(group_version: &str, group: &str) -> Value {
    let resources: Vec<Value> =
        Kind::ALL.into_iter().filter(|k| k.group() == group).flat_map(Kind::api_resource).collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}
