//! The three PATCH flavours kubectl and client libraries send: JSON merge
//! patch (RFC 7386), JSON patch (RFC 6902), and strategic merge patch for the
//! lists our objects have (containers, env, conditions, ... merged by key).

use serde_json::{Map, Value};

use crate::error::ApiError;

/// Apply a patch of `content_type` to `target`.
pub fn apply(content_type: &str, target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    match content_type.split(';').next().unwrap_or_default().trim() {
        "application/merge-patch+json" => {
            merge(target, patch, false);
            Ok(())
        }
        "application/strategic-merge-patch+json" => {
            merge(target, patch, true);
            Ok(())
        }
        "application/json-patch+json" => json_patch(target, patch),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// The key lists of a strategic merge are merged by; `None` replaces the list.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "volumeMounts"
        | "imagePullSecrets" => Some("name"),
        "ports" => Some("containerPort"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        _ => None,
    }
}

fn merge(target: &mut Value, patch: &Value, strategic: bool) {
    let Some(patch) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if strategic && patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = patch.clone();
        replaced.remove("$patch");
        *target = Value::Object(replaced);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let object = target.as_object_mut().expect("made an object above");
    for (key, value) in patch {
        if strategic && key.starts_with('$') {
            continue;
        }
        if value.is_null() {
            object.remove(key);
            continue;
        }
        match (strategic, value, object.get_mut(key)) {
            (true, Value::Array(items), Some(Value::Array(existing))) if key == "finalizers" => {
                for item in items {
                    if !existing.contains(item) {
                        existing.push(item.clone());
                    }
                }
            }
            (true, Value::Array(items), Some(Value::Array(existing))) if merge_key(key).is_some() => {
                merge_list(existing, items, merge_key(key).expect("checked"));
            }
            (_, Value::Object(_), Some(current)) => merge(current, value, strategic),
            _ => {
                let mut fresh = Value::Null;
                if value.is_object() {
                    merge(&mut fresh, value, strategic);
                } else {
                    fresh = value.clone();
                }
                object.insert(key.clone(), fresh);
            }
        }
    }
}

fn merge_list(existing: &mut Vec<Value>, items: &[Value], key: &str) {
    for item in items {
        let id = item.get(key);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match existing.iter().position(|e| id.is_some() && e.get(key) == id) {
            Some(i) if delete => {
                existing.remove(i);
            }
            Some(i) => merge(&mut existing[i], item, true),
            None if delete => {}
            None => {
                let mut fresh = Value::Null;
                merge(&mut fresh, item, true);
                existing.push(fresh);
            }
        }
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

/// Split a JSON pointer into unescaped tokens.
fn tokens(path: &str) -> Result<Vec<String>, ApiError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest =
        path.strip_prefix('/').ok_or_else(|| invalid(format!("json patch path {path:?} must start with '/'")))?;
    Ok(rest.split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect())
}

fn parent<'a>(root: &'a mut Value, tokens: &[String], path: &str) -> Result<&'a mut Value, ApiError> {
    let mut node = root;
    for t in tokens {
        node = match node {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(move |i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| invalid(format!("json patch: path {path:?} does not exist")))?;
    }
    Ok(node)
}

fn add(root: &mut Value, path: &str, value: Value) -> Result<(), ApiError> {
    let toks = tokens(path)?;
    let Some((last, init)) = toks.split_last() else {
        *root = value;
        return Ok(());
    };
    match parent(root, init, path)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            let index = if last == "-" {
                a.len()
            } else {
                last.parse().map_err(|_| invalid(format!("bad array index in {path:?}")))?
            };
            if index > a.len() {
                return Err(invalid(format!("json patch: index out of range in {path:?}")));
            }
            a.insert(index, value);
        }
        _ => return Err(invalid(format!("json patch: cannot add at {path:?}"))),
    }
    Ok(())
}

fn remove(root: &mut Value, path: &str) -> Result<Value, ApiError> {
    let toks = tokens(path)?;
    let (last, init) = toks.split_last().ok_or_else(|| invalid("json patch: cannot remove the whole document"))?;
    let missing = || invalid(format!("json patch: path {path:?} does not exist"));
    match parent(root, init, path)? {
        Value::Object(m) => m.remove(last).ok_or_else(missing),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| missing())?;
            if i < a.len() { Ok(a.remove(i)) } else { Err(missing()) }
        }
        _ => Err(missing()),
    }
}

fn json_patch(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let ops = patch.as_array().ok_or_else(|| invalid("a json patch is an array of operations"))?;
    for op in ops {
        let path = op["path"].as_str().ok_or_else(|| invalid("json patch operation without a path"))?;
        match op["op"].as_str() {
            Some("add") => add(target, path, op["value"].clone())?,
            Some("remove") => {
                remove(target, path)?;
            }
            Some("replace") => {
                remove(target, path)?;
                add(target, path, op["value"].clone())?;
            }
            Some("move") => {
                let from = op["from"].as_str().ok_or_else(|| invalid("move without from"))?;
                let value = remove(target, from)?;
                add(target, path, value)?;
            }
            Some("copy") => {
                let from = op["from"].as_str().ok_or_else(|| invalid("copy without from"))?;
                let value =
                    target.pointer(from).cloned().ok_or_else(|| invalid(format!("path {from:?} does not exist")))?;
                add(target, path, value)?;
            }
            Some("test") => {
                if target.pointer(path) != Some(&op["value"]) {
                    return Err(ApiError::invalid_patch_test(path));
                }
            }
            other => return Err(invalid(format!("json patch: unknown operation {other:?}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_sets_and_removes() {
        let mut doc = json!({"a": 1, "b": {"c": 2, "d": 3}});
        apply("application/merge-patch+json", &mut doc, &json!({"a": null, "b": {"c": 5}})).unwrap();
        assert_eq!(doc, json!({"b": {"c": 5, "d": 3}}));
    }

    #[test]
    fn strategic_merge_merges_env_by_name() {
        let mut doc = json!({"spec": {"containers": [{"name": "main", "env": [{"name": "A", "value": "1"}]}]}});
        let patch = json!({"spec": {"containers": [{"name": "main", "env": [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}]}]}});
        apply("application/strategic-merge-patch+json", &mut doc, &patch).unwrap();
        assert_eq!(
            doc["spec"]["containers"][0]["env"],
            json!([{"name": "A", "value": "2"}, {"name": "B", "value": "3"}])
        );
    }

    #[test]
    fn json_patch_ops() {
        let mut doc = json!({"spec": {"suspend": false, "list": [1, 2]}});
        let patch = json!([
            {"op": "replace", "path": "/spec/suspend", "value": true},
            {"op": "add", "path": "/spec/list/-", "value": 3},
            {"op": "remove", "path": "/spec/list/0"},
            {"op": "test", "path": "/spec/suspend", "value": true},
        ]);
        apply("application/json-patch+json", &mut doc, &patch).unwrap();
        assert_eq!(doc, json!({"spec": {"suspend": true, "list": [2, 3]}}));
        let failing = json!([{"op": "test", "path": "/spec/suspend", "value": false}]);
        assert_eq!(apply("application/json-patch+json", &mut doc, &failing).unwrap_err().code, 422);
    }
}
