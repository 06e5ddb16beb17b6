//! get, list, create, update, patch, delete and deletecollection.

use std::io::Write as _;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::request::{Query, Target};
use super::response::{self, Body};
use super::{Server, patch, table};
use crate::controllers::gc;
use crate::error::ApiError;
use crate::resources::{Kind, Propagation};
use crate::store::selector::{FieldSelector, LabelSelector};
use crate::store::{Key, Mutation};
use crate::validation;

fn key(target: &Target) -> Key {
    Key::new(target.namespace.as_deref().unwrap_or_default(), target.name.as_deref().unwrap_or_default())
}

fn parse_json(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}")))
}

pub(super) fn get(
    server: &Server,
    target: &Target,
    as_table: Option<table::Include>,
) -> Result<Response<Body>, ApiError> {
    let name = target.name.as_deref().unwrap_or_default();
    let object = server.store.get(target.kind, &key(target)).ok_or_else(|| ApiError::not_found(target.kind, name))?;
    if let Some(include) = as_table.filter(|_| target.subresource.is_none()) {
        let rv = object["metadata"]["resourceVersion"].clone();
        let t = table::table(target.kind, &[&object], json!({"resourceVersion": rv}), true, include);
        return Ok(response::bytes(StatusCode::OK, table::CONTENT_TYPE, serde_json::to_vec(&t).unwrap_or_default()));
    }
    Ok(response::json(StatusCode::OK, &object))
}

/// The opaque `continue` token: where the next page starts, the list's
/// resourceVersion, when it was issued, and how many pages came before.
#[derive(Debug, Serialize, Deserialize)]
struct Continue {
    rv: u64,
    ns: String,
    name: String,
    issued_ms: u64,
    page: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn decode_continue(server: &Server, token: &str) -> Result<Continue, ApiError> {
    let bytes =
        URL_SAFE_NO_PAD.decode(token).map_err(|e| ApiError::bad_request(format!("continue key is not valid: {e}")))?;
    let token: Continue =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("continue key is not valid: {e}")))?;
    let age = now_ms().saturating_sub(token.issued_ms);
    if server.faults.get().expire_continue || age > server.continue_ttl.as_millis() as u64 {
        return Err(ApiError::expired_continue());
    }
    if server.faults.get().fail_list_after_pages.is_some_and(|n| token.page >= n) {
        return Err(ApiError::internal("injected fault: the listing failed midway"));
    }
    Ok(token)
}

pub(super) fn list(
    server: &Server,
    target: &Target,
    query: &Query,
    as_table: Option<table::Include>,
) -> Result<Response<Body>, ApiError> {
    let labels = query.get("labelSelector").map(LabelSelector::parse).transpose()?;
    let fields = query.get("fieldSelector").map(|f| FieldSelector::parse(target.kind, f)).transpose()?;
    let limit = query.number("limit")?.map(|l| l as usize);
    let token = query.get("continue").map(|t| decode_continue(server, t)).transpose()?;
    let after = token.as_ref().map(|t| Key::new(&t.ns, &t.name));
    let filter =
        |o: &Value| labels.as_ref().is_none_or(|s| s.matches(o)) && fields.as_ref().is_none_or(|s| s.matches(o));
    let filtered = labels.is_some() || fields.is_some();
    let narrow = labels.as_ref().map(LabelSelector::narrowing).unwrap_or_default();
    let page = server.store.list(
        target.kind,
        target.namespace.as_deref(),
        after.as_ref(),
        limit,
        if filtered { Some(&filter) } else { None },
        &narrow,
    );
    let rv = token.as_ref().map_or(page.rv, |t| t.rv);
    let next = page.next.as_ref().map(|k| {
        let c = Continue {
            rv,
            ns: k.namespace.clone(),
            name: k.name.clone(),
            issued_ms: token.as_ref().map_or_else(now_ms, |t| t.issued_ms),
            page: token.as_ref().map_or(1, |t| t.page + 1),
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap_or_default())
    });
    if let Some(include) = as_table {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if let Some(next) = &next {
            metadata["continue"] = json!(next);
            if let Some(remaining) = page.remaining {
                metadata["remainingItemCount"] = json!(remaining);
            }
        }
        let items: Vec<&Value> = page.items.iter().map(|o| &**o).collect();
        let t = table::table(target.kind, &items, metadata, true, include);
        return Ok(response::bytes(StatusCode::OK, table::CONTENT_TYPE, serde_json::to_vec(&t).unwrap_or_default()));
    }
    let mut out = Vec::with_capacity(page.items.len() * 2048 + 256);
    let _ = write!(
        out,
        r#"{{"kind":"{}List","apiVersion":"{}","metadata":{{"resourceVersion":"{rv}""#,
        target.kind.kind(),
        target.kind.api_version()
    );
    if let Some(next) = &next {
        let _ = write!(out, r#","continue":"{next}""#);
    }
    if let (Some(remaining), Some(_)) = (page.remaining, &next) {
        let _ = write!(out, r#","remainingItemCount":{remaining}"#);
    }
    out.extend_from_slice(br#"},"items":["#);
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = serde_json::to_writer(&mut out, &**item);
    }
    out.extend_from_slice(b"]}");
    Ok(response::bytes(StatusCode::OK, "application/json", out))
}

pub(super) fn create(
    server: &Server,
    target: &Target,
    query: &Query,
    body: &Bytes,
) -> Result<Response<Body>, ApiError> {
    if target.subresource.is_some() {
        return Err(ApiError::method_not_allowed("POST"));
    }
    let mut object = parse_json(body)?;
    validation::check_types(target.kind, &object)?;
    if object.pointer("/metadata/resourceVersion").and_then(Value::as_str).is_some_and(|rv| !rv.is_empty()) {
        return Err(ApiError::internal("resourceVersion should not be set on objects to be created"));
    }
    validation::prepare_create(target.kind, target.namespace.as_deref(), &mut object)?;
    if query.get("dryRun") == Some("All") {
        object["kind"] = json!(target.kind.kind());
        object["apiVersion"] = json!(target.kind.api_version());
        return Ok(response::json(StatusCode::CREATED, &object));
    }
    let created = server.store.create(target.kind, object)?;
    Ok(response::json(StatusCode::CREATED, &created))
}

fn check_resource_version(kind: Kind, current: &Value, requested: &Value) -> Result<(), ApiError> {
    match requested.pointer("/metadata/resourceVersion").and_then(Value::as_str) {
        Some(rv) if !rv.is_empty() && Some(rv) != current["metadata"]["resourceVersion"].as_str() => {
            Err(ApiError::conflict(
                kind,
                current["metadata"]["name"].as_str().unwrap_or_default(),
                "the object has been modified; please apply your changes to the latest version and try again",
            ))
        }
        _ => Ok(()),
    }
}

/// Write `new` over `current`: the main resource keeps the stored status,
/// the status subresource takes only the status.
fn replace(kind: Kind, subresource: Option<&str>, current: &mut Value, mut new: Value) -> Result<Mutation, ApiError> {
    match subresource {
        Some("status") => {
            if current.get("status") == new.get("status") {
                return Ok(Mutation::Unchanged);
            }
            current["status"] = new.get("status").cloned().unwrap_or(json!({}));
        }
        Some(_) => return Err(ApiError::method_not_allowed("PUT")),
        None => {
            if kind != Kind::Event {
                match current.get("status") {
                    Some(status) => new["status"] = status.clone(),
                    None => {
                        if let Some(o) = new.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            }
            validation::validate_update(kind, current, &mut new)?;
            // Fields the client never owns.
            new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
            if new.pointer("/metadata/generation").is_some() {
                new["metadata"]["generation"] = current["metadata"]["generation"].clone();
            }
            if *current == new {
                return Ok(Mutation::Unchanged);
            }
            *current = new;
        }
    }
    Ok(Mutation::Changed)
}

fn after_write(server: &Server, kind: Kind, object: Arc<Value>) -> Result<Response<Body>, ApiError> {
    let finalized = gc::finalize_if_done(&server.store, kind, &object);
    Ok(response::json(StatusCode::OK, finalized.as_deref().unwrap_or(&object)))
}

pub(super) fn update(
    server: &Server,
    target: &Target,
    _query: &Query,
    body: &Bytes,
) -> Result<Response<Body>, ApiError> {
    let new = parse_json(body)?;
    validation::check_types(target.kind, &new)?;
    let name = target.name.as_deref().unwrap_or_default();
    if new.pointer("/metadata/name").and_then(Value::as_str).is_some_and(|n| n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            new["metadata"]["name"].as_str().unwrap_or_default()
        )));
    }
    let sub = target.subresource.as_deref();
    let object = server.store.mutate(target.kind, &key(target), |current| {
        check_resource_version(target.kind, current, &new)?;
        replace(target.kind, sub, current, new)
    })?;
    after_write(server, target.kind, object)
}

pub(super) fn patch(
    server: &Server,
    target: &Target,
    _query: &Query,
    content_type: &str,
    body: &Bytes,
) -> Result<Response<Body>, ApiError> {
    let patch_doc = parse_json(body)?;
    let sub = target.subresource.as_deref();
    let object = server.store.mutate(target.kind, &key(target), |current| {
        let mut patched = current.clone();
        patch::apply(content_type, &mut patched, &patch_doc)?;
        check_resource_version(target.kind, current, &patch_doc)?;
        replace(target.kind, sub, current, patched)
    })?;
    after_write(server, target.kind, object)
}

/// The propagation policy and preconditions of a delete.
fn delete_options(target: &Target, query: &Query, body: &Bytes) -> Result<(Propagation, Value), ApiError> {
    let options = if body.iter().all(u8::is_ascii_whitespace) { json!({}) } else { parse_json(body)? };
    let named = query.get("propagationPolicy").or_else(|| options["propagationPolicy"].as_str());
    let propagation = match named {
        Some(p) => Propagation::parse(p).ok_or_else(|| {
            ApiError::bad_request(format!("propagationPolicy {p:?} is not one of Background, Foreground, Orphan"))
        })?,
        None if options["orphanDependents"] == json!(true) || query.get("orphanDependents") == Some("true") => {
            Propagation::Orphan
        }
        None if options["orphanDependents"] == json!(false) => Propagation::Background,
        None => target.kind.default_propagation(),
    };
    Ok((propagation, options["preconditions"].clone()))
}

pub(super) fn delete(
    server: &Server,
    target: &Target,
    query: &Query,
    body: &Bytes,
) -> Result<Response<Body>, ApiError> {
    if target.subresource.is_some() {
        return Err(ApiError::method_not_allowed("DELETE"));
    }
    let (propagation, preconditions) = delete_options(target, query, body)?;
    let key = key(target);
    let current = server.store.get(target.kind, &key).ok_or_else(|| ApiError::not_found(target.kind, &key.name))?;
    for (field, path) in [("UID", "/metadata/uid"), ("ResourceVersion", "/metadata/resourceVersion")] {
        let wanted = preconditions.get(if field == "UID" { "uid" } else { "resourceVersion" }).and_then(Value::as_str);
        let actual = current.pointer(path).and_then(Value::as_str).unwrap_or_default();
        if let Some(wanted) = wanted.filter(|w| *w != actual) {
            return Err(ApiError::conflict(
                target.kind,
                &key.name,
                &format!("Precondition failed: {field} in precondition: {wanted}, {field} in object meta: {actual}"),
            ));
        }
    }
    let object = gc::delete(&server.store, target.kind, &key, propagation)?;
    Ok(response::json(StatusCode::OK, &object))
}

pub(super) fn delete_collection(
    server: &Server,
    target: &Target,
    query: &Query,
    body: &Bytes,
) -> Result<Response<Body>, ApiError> {
    let (propagation, _) = delete_options(target, query, body)?;
    let labels = query.get("labelSelector").map(LabelSelector::parse).transpose()?;
    let fields = query.get("fieldSelector").map(|f| FieldSelector::parse(target.kind, f)).transpose()?;
    let filter =
        |o: &Value| labels.as_ref().is_none_or(|s| s.matches(o)) && fields.as_ref().is_none_or(|s| s.matches(o));
    let page = server.store.list(target.kind, target.namespace.as_deref(), None, None, Some(&filter), &[]);
    let mut deleted = Vec::new();
    for object in page.items {
        if let Ok(d) = gc::delete(&server.store, target.kind, &Key::of(&object), propagation) {
            deleted.push(d);
        }
    }
    let list = json!({
        "kind": format!("{}List", target.kind.kind()),
        "apiVersion": target.kind.api_version(),
        "metadata": {"resourceVersion": server.store.resource_version().to_string()},
        "items": deleted.iter().map(|o| (**o).clone()).collect::<Vec<_>>(),
    });
    Ok(response::json(StatusCode::OK, &list))
}
