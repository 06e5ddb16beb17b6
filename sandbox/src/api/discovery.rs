//! Discovery documents: `/version`, `/api`, `/api/v1`, `/apis`,
//! `/apis/batch/v1` — what kubectl and kube-rs read to find resources — and
//! the OpenAPI v3 index and group-version documents kubectl reads before
//! `create -f` / `apply -f` to learn that the server validates fields itself
//! (`fieldValidation`). The documents list every path and operation with
//! its group-version-kind, but no schemas: kubectl needs none for built-in
//! kinds once the server validates.

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
        "/openapi/v3" => Some(json!({"paths": {
            "api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=1"},
            "apis/batch/v1": {"serverRelativeURL": "/openapi/v3/apis/batch/v1?hash=1"},
        }})),
        "/openapi/v3/api/v1" => Some(openapi("v1", "")),
        "/openapi/v3/apis/batch/v1" => Some(openapi("batch/v1", "batch")),
        _ => None,
    }
}

/// An OpenAPI v3 document of one group version: each resource's paths and
/// operations, tagged with `x-kubernetes-group-version-kind` and
/// `x-kubernetes-action`, with the `fieldValidation` parameter where the
/// server takes it.
fn openapi(group_version: &str, group: &str) -> Value {
    let (g, version) = group_version.split_once('/').unwrap_or(("", group_version));
    let prefix = if group.is_empty() { format!("/api/{version}") } else { format!("/apis/{g}/{version}") };
    let mut paths = serde_json::Map::new();
    for kind in Kind::ALL.into_iter().filter(|k| k.group() == group) {
        let gvk = json!({"group": group, "version": version, "kind": kind.kind()});
        let param =
            |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
        let op = |action: &str, validate: bool| {
            let mut parameters = vec![];
            if validate {
                parameters.push(param("fieldValidation"));
                parameters.push(param("fieldManager"));
                parameters.push(param("dryRun"));
            }
            json!({
                "operationId": format!("{action}{}", kind.kind()),
                "parameters": parameters,
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
            })
        };
        let base = if kind.namespaced() {
            format!("{prefix}/namespaces/{{namespace}}/{}", kind.plural())
        } else {
            format!("{prefix}/{}", kind.plural())
        };
        paths.insert(
            base.clone(),
            json!({"get": op("list", false), "post": op("post", true), "delete": op("deletecollection", false)}),
        );
        paths.insert(
            format!("{base}/{{name}}"),
            json!({"get": op("get", false), "put": op("put", true), "patch": op("patch", true), "delete": op("delete", false)}),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0-polysync-sandbox"},
        "paths": paths,
        "components": {"schemas": {}},
    })
}

fn resource_list(group_version: &str, group: &str) -> Value {
    let resources: Vec<Value> =
        Kind::ALL.into_iter().filter(|k| k.group() == group).flat_map(Kind::api_resource).collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}
