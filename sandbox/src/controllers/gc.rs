//! Deletion with the three propagation policies, finalizers, and the
//! garbage collector that deletes dependents whose owners are gone.
//!
//! * Background: the owner goes now; the collector then deletes every
//!   dependent that has no owner left.
//! * Foreground: the owner gets a `deletionTimestamp` and the
//!   `foregroundDeletion` finalizer; dependents go first; then the owner.
//! * Orphan: dependents lose their owner reference; the owner goes.
//!
//! An object with finalizers is only marked (`deletionTimestamp`) and goes
//! when its last finalizer is removed.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::error::ApiError;
use crate::resources::{Kind, Propagation};
use crate::store::{EventType, Key, Mutation, Object, Store};
use crate::time::now_rfc3339;

const FOREGROUND: &str = "foregroundDeletion";
const ORPHAN: &str = "orphan";

fn finalizers(object: &Value) -> Vec<String> {
    object["metadata"]["finalizers"]
        .as_array()
        .map(|f| f.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn uid(object: &Value) -> &str {
    object["metadata"]["uid"].as_str().unwrap_or_default()
}

/// Mark for deletion, adding `finalizer` if given.
fn mark(store: &Store, kind: Kind, key: &Key, finalizer: Option<&str>) -> Result<Object, ApiError> {
    store.mutate(kind, key, |o| {
        let mut changed = false;
        if o["metadata"].get("deletionTimestamp").is_none() {
            o["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            o["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            changed = true;
        }
        if let Some(f) = finalizer {
            let mut list = finalizers(o);
            if !list.iter().any(|x| x == f) {
                list.push(f.to_owned());
                o["metadata"]["finalizers"] = json!(list);
                changed = true;
            }
        }
        Ok(if changed { Mutation::Changed } else { Mutation::Unchanged })
    })
}

/// Delete `key` with `propagation`. Returns the object as the API answers
/// it: the last state, or the marked object when deletion is pending.
pub fn delete(store: &Store, kind: Kind, key: &Key, propagation: Propagation) -> Result<Object, ApiError> {
    let current = store.get(kind, key).ok_or_else(|| ApiError::not_found(kind, &key.name))?;
    if kind == Kind::Namespace {
        return delete_namespace(store, key);
    }
    let pending = !finalizers(&current).is_empty();
    match propagation {
        Propagation::Foreground => {
            let marked = mark(store, kind, key, Some(FOREGROUND))?;
            process(store, kind, &marked);
            Ok(store.get(kind, key).unwrap_or(marked))
        }
        Propagation::Orphan if pending => mark(store, kind, key, Some(ORPHAN)),
        Propagation::Orphan => {
            orphan_dependents(store, uid(&current));
            store.remove(kind, key).ok_or_else(|| ApiError::not_found(kind, &key.name))
        }
        Propagation::Background if pending => mark(store, kind, key, None),
        Propagation::Background => {
            let removed = store.remove(kind, key).ok_or_else(|| ApiError::not_found(kind, &key.name))?;
            collect_dependents_of(store, uid(&removed));
            Ok(removed)
        }
    }
}

/// A namespace takes everything in it along, then goes.
fn delete_namespace(store: &Store, key: &Key) -> Result<Object, ApiError> {
    for kind in Kind::ALL.into_iter().filter(|k| k.namespaced()) {
        for object in store.list(kind, Some(&key.name), None, None, None, &[]).items {
            let _ = store.remove(kind, &Key::of(&object));
        }
    }
    store.remove(Kind::Namespace, key).ok_or_else(|| ApiError::not_found(Kind::Namespace, &key.name))
}

fn orphan_dependents(store: &Store, owner_uid: &str) {
    for (kind, dependent) in store.dependents(owner_uid) {
        let _ = store.mutate(kind, &Key::of(&dependent), |o| {
            if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                refs.retain(|r| r["uid"] != owner_uid);
            }
            Ok(Mutation::Changed)
        });
    }
}

/// Dependents of a removed owner: drop the reference; delete the dependent
/// (in the background) once it has no owner left.
fn collect_dependents_of(store: &Store, owner_uid: &str) {
    for (kind, dependent) in store.dependents(owner_uid) {
        let key = Key::of(&dependent);
        let remaining = dependent["metadata"]["ownerReferences"]
            .as_array()
            .map(|refs| refs.iter().filter(|r| r["uid"] != owner_uid).count())
            .unwrap_or(0);
        if remaining == 0 {
            let _ = delete(store, kind, &key, Propagation::Background);
        } else {
            let _ = store.mutate(kind, &key, |o| {
                if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != owner_uid);
                }
                Ok(Mutation::Changed)
            });
        }
    }
}

/// After a write: an object marked for deletion whose finalizers are all
/// gone is removed now. Returns the removed object if so.
pub fn finalize_if_done(store: &Store, kind: Kind, object: &Value) -> Option<Object> {
    if object["metadata"].get("deletionTimestamp").is_none() || !finalizers(object).is_empty() {
        return None;
    }
    let removed = store.remove(kind, &Key::of(object))?;
    collect_dependents_of(store, uid(&removed));
    Some(removed)
}

/// Advance one object that is marked for deletion.
fn process(store: &Store, kind: Kind, object: &Value) {
    if object["metadata"].get("deletionTimestamp").is_none() {
        return;
    }
    let key = Key::of(object);
    let list = finalizers(object);
    if list.iter().any(|f| f == ORPHAN) {
        orphan_dependents(store, uid(object));
        remove_finalizer(store, kind, &key, ORPHAN);
    } else if list.iter().any(|f| f == FOREGROUND) {
        let dependents = store.dependents(uid(object));
        let blocking: Vec<_> = dependents
            .iter()
            .filter(|(_, d)| {
                d["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid(object) && r["blockOwnerDeletion"] == true))
            })
            .collect();
        for (dkind, dependent) in &dependents {
            if dependent["metadata"].get("deletionTimestamp").is_none() {
                let _ = delete(store, *dkind, &Key::of(dependent), Propagation::Foreground);
            }
        }
        let still_blocking = blocking.iter().any(|(k, d)| store.get(*k, &Key::of(d)).is_some());
        if !still_blocking {
            remove_finalizer(store, kind, &key, FOREGROUND);
        }
    }
    if let Some(current) = store.get(kind, &key) {
        finalize_if_done(store, kind, &current);
    }
}

fn remove_finalizer(store: &Store, kind: Kind, key: &Key, finalizer: &str) {
    let _ = store.mutate(kind, key, |o| {
        let list: Vec<String> = finalizers(o).into_iter().filter(|f| f != finalizer).collect();
        o["metadata"]["finalizers"] = json!(list);
        Ok(Mutation::Changed)
    });
}

/// Re-check everything marked for deletion (after a missed change).
fn resync(store: &Store) {
    for kind in Kind::ALL {
        let marked = store.list(
            kind,
            None,
            None,
            None,
            Some(&|o: &Value| o["metadata"].get("deletionTimestamp").is_some()),
            &[],
        );
        for object in marked.items {
            process(store, kind, &object);
        }
    }
}

/// An object all of whose owners are absent (no object of that kind, name
/// and uid) is deleted in the background, as the real collector does with
/// dangling owner references — e.g. a Job whose CronJob never existed or
/// is gone.
fn collect_if_dangling(store: &Store, kind: Kind, object: &Value) {
    let Some(refs) = object["metadata"]["ownerReferences"].as_array().filter(|r| !r.is_empty()) else { return };
    let ns = object["metadata"]["namespace"].as_str().unwrap_or_default();
    let present = refs.iter().any(|owner| {
        let Some(owner_kind) = Kind::ALL.into_iter().find(|k| owner["kind"] == k.kind()) else {
            // An owner of a kind the sandbox does not serve: assume it exists.
            return true;
        };
        let key = Key::new(if owner_kind.namespaced() { ns } else { "" }, owner["name"].as_str().unwrap_or_default());
        store.get(owner_kind, &key).is_some_and(|o| o["metadata"]["uid"] == owner["uid"])
    });
    if !present {
        let _ = delete(store, kind, &Key::of(object), Propagation::Background);
    }
}

/// The collector: reacts to every change that can move a deletion forward.
pub async fn run(store: Arc<Store>) {
    let mut changes = store.subscribe();
    for kind in Kind::ALL {
        for object in store.list(kind, None, None, None, None, &[]).items {
            collect_if_dangling(&store, kind, &object);
        }
    }
    loop {
        match changes.recv().await {
            Ok(change) => match change.event {
                EventType::Modified => process(&store, change.kind, &change.object),
                EventType::Deleted => {
                    // An owner waiting in the foreground may be free now.
                    for owner in change.object["metadata"]["ownerReferences"].as_array().into_iter().flatten() {
                        let Some(kind) = Kind::ALL.into_iter().find(|k| owner["kind"] == k.kind()) else { continue };
                        let ns = if kind.namespaced() {
                            change.object["metadata"]["namespace"].as_str().unwrap_or_default()
                        } else {
                            ""
                        };
                        let key = Key::new(ns, owner["name"].as_str().unwrap_or_default());
                        if let Some(o) = store.get(kind, &key) {
                            process(&store, kind, &o);
                        }
                    }
                }
                EventType::Added => collect_if_dangling(&store, change.kind, &change.object),
            },
            Err(RecvError::Lagged(_)) => resync(&store),
            Err(RecvError::Closed) => return,
        }
    }
}
