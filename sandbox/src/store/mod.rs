//! The object store: every object as JSON, one global resourceVersion, and a
//! bounded history of changes for watches.
//!
//! Objects of a resource sit in a `BTreeMap` ordered by (namespace, name),
//! so a page of a list is a range read that costs the same on the first page
//! and the last, with 100,000 objects or 10. Every write takes the next
//! resourceVersion and publishes a [`Change`]; the last `history` changes
//! are kept, so a watch can resume from any version in that window and gets
//! `410 Expired` for anything older.
//!
//! Owner references are indexed (owner uid → dependents), so a job
//! controller finding a Job's pods and the garbage collector finding an
//! owner's dependents cost the same with 10 pods or 100,000, as with a real
//! controller's informer indexes. Scanning every pod per reconcile made the
//! sandbox, not the code under test, the bottleneck of the serve benchmark.
//! Labels are indexed too, so a list asking for objects by label value
//! (`polysync.io/run in (...)`) reads those objects only; the real server
//! scans its watch cache, which costs its own CPU, not the benchmark's.

pub mod selector;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::resources::Kind;
use crate::time::now_rfc3339;

/// An immutable stored object.
pub type Object = Arc<Value>;

/// A subscription to every change from some point on.
pub type Changes = broadcast::Receiver<Arc<Change>>;

/// (namespace, name); the namespace is "" for cluster-scoped objects.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(namespace: &str, name: &str) -> Self {
        Self { namespace: namespace.to_owned(), name: name.to_owned() }
    }

    pub fn of(object: &Value) -> Self {
        let meta = &object["metadata"];
        Self::new(meta["namespace"].as_str().unwrap_or_default(), meta["name"].as_str().unwrap_or_default())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One write, as watches see it.
#[derive(Debug)]
pub struct Change {
    pub kind: Kind,
    pub event: EventType,
    pub object: Object,
    /// The object before a MODIFIED (for label-selector watches).
    pub previous: Option<Object>,
    pub rv: u64,
    /// `object` as JSON, serialized by the first watch that sends it and
    /// kept while the change is in the history (10,000 changes of a few KB).
    json: std::sync::OnceLock<Vec<u8>>,
}

impl Change {
    fn new(kind: Kind, event: EventType, object: Object, previous: Option<Object>, rv: u64) -> Self {
        Self { kind, event, object, previous, rv, json: std::sync::OnceLock::new() }
    }

    /// The object as JSON, serialized once however many watches send it
    /// (every replica of a service watches the same namespace).
    pub fn object_json(&self) -> &[u8] {
        self.json.get_or_init(|| serde_json::to_vec(&*self.object).unwrap_or_default())
    }
}

/// A page of a list.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Object>,
    /// Where the next page starts (exclusive), if there is one.
    pub next: Option<Key>,
    /// Objects after this page, when it was cheap and meaningful to count.
    pub remaining: Option<usize>,
    pub rv: u64,
}

struct Inner {
    rv: u64,
    tables: HashMap<Kind, BTreeMap<Key, Object>>,
    /// Owner uid → the objects whose ownerReferences name it.
    owned: HashMap<String, BTreeSet<(Kind, Key)>>,
    /// (kind, label key, label value) → the objects carrying that label.
    labelled: HashMap<(Kind, String, String), BTreeSet<Key>>,
    history: VecDeque<Arc<Change>>,
    /// Every change with rv > `compacted` is in `history`.
    compacted: u64,
}

/// The store. Cheap to share (`Arc<Store>`).
pub struct Store {
    inner: RwLock<Inner>,
    changes: broadcast::Sender<Arc<Change>>,
    history: usize,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("rv", &self.read().rv).finish_non_exhaustive()
    }
}

/// What a write callback may return to skip the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    Changed,
    Unchanged,
}

impl Store {
    /// `history`: how many changes watches can resume across.
    pub fn new(history: usize) -> Self {
        let (changes, _) = broadcast::channel(65_536);
        let tables = Kind::ALL.into_iter().map(|k| (k, BTreeMap::new())).collect();
        Self {
            inner: RwLock::new(Inner {
                rv: 1,
                tables,
                owned: HashMap::new(),
                labelled: HashMap::new(),
                history: VecDeque::new(),
                compacted: 1,
            }),
            changes,
            history: history.max(1),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn resource_version(&self) -> u64 {
        self.read().rv
    }

    pub fn get(&self, kind: Kind, key: &Key) -> Option<Object> {
        self.read().tables[&kind].get(key).cloned()
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.read().tables[&kind].len()
    }

    /// One page of `kind` in `namespace` (all namespaces if `None`), starting
    /// after `after`, of at most `limit` objects that pass `filter`.
    /// `remaining` is only counted when there is no filter, like the real
    /// server's `remainingItemCount`.
    ///
    /// `narrow`: label requirements `filter` implies (key = one of the
    /// values). The fewest objects carrying one are read from the label
    /// index, unless that is a good part of the table anyway: a list of 50
    /// runs by name reads 50 objects, not the namespace. Same pages, same
    /// order.
    pub fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        after: Option<&Key>,
        limit: Option<usize>,
        filter: Option<&dyn Fn(&Value) -> bool>,
        narrow: &[(&str, Vec<&str>)],
    ) -> Page {
        let inner = self.read();
        let table = &inner.tables[&kind];
        let lower = match (after, namespace) {
            (Some(k), _) => Bound::Excluded(k.clone()),
            (None, Some(ns)) => Bound::Included(Key::new(ns, "")),
            (None, None) => Bound::Unbounded,
        };
        let in_scope = |k: &Key| namespace.is_none_or(|ns| k.namespace == ns);
        let sets = |(key, values): &(&str, Vec<&str>)| -> Vec<&BTreeSet<Key>> {
            values.iter().filter_map(|v| inner.labelled.get(&(kind, (*key).to_owned(), (*v).to_owned()))).collect()
        };
        let fewest = narrow
            .iter()
            .map(sets)
            .min_by_key(|s| s.iter().map(|k| k.len()).sum::<usize>())
            .filter(|s| s.iter().map(|k| k.len()).sum::<usize>() < table.len() / 4);
        let candidates: Option<BTreeSet<&Key>> =
            fewest.map(|s| s.into_iter().flat_map(|keys| keys.range((lower.clone(), Bound::Unbounded))).collect());
        let mut range: Box<dyn Iterator<Item = (&Key, &Object)> + '_> = match &candidates {
            Some(keys) => Box::new(
                keys.iter()
                    .copied()
                    .skip_while(move |k| !in_scope(k))
                    .take_while(move |k| in_scope(k))
                    .filter_map(|k| Some((k, table.get(k)?))),
            ),
            None => Box::new(table.range((lower, Bound::Unbounded)).take_while(move |(k, _)| in_scope(k))),
        };
        let limit = limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut last = None;
        for (key, object) in range.by_ref() {
            if filter.is_none_or(|f| f(object)) {
                items.push(object.clone());
                last = Some(key);
                if items.len() == limit {
                    break;
                }
            }
        }
        let (next, remaining) = if items.len() < limit {
            (None, None)
        } else if filter.is_some() {
            // More may match; the client finds out on the next page.
            let more = range.any(|(_, o)| filter.is_none_or(|f| f(o)));
            (more.then(|| last.cloned()).flatten(), None)
        } else {
            let rest = range.count();
            ((rest > 0).then(|| last.cloned()).flatten(), Some(rest))
        };
        Page { items, next, remaining, rv: inner.rv }
    }

    /// Store a new object. The caller has defaulted and validated it; this
    /// sets uid, resourceVersion, creationTimestamp and generation.
    pub fn create(&self, kind: Kind, mut object: Value) -> Result<Object, ApiError> {
        let key = Key::of(&object);
        let mut inner = self.write();
        if kind.namespaced() && !inner.tables[&Kind::Namespace].contains_key(&Key::new("", &key.namespace)) {
            return Err(ApiError::namespace_not_found(&key.namespace));
        }
        if inner.tables[&kind].contains_key(&key) {
            return Err(ApiError::already_exists(kind, &key.name));
        }
        inner.rv += 1;
        let rv = inner.rv;
        let meta = object["metadata"].as_object_mut().expect("validated objects have metadata");
        // `prepare_create` set a fresh uid (selectors are built from it).
        meta.entry("uid").or_insert_with(|| json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        if kind.has_generation() {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        meta.remove("deletionTimestamp");
        object["kind"] = json!(kind.kind());
        object["apiVersion"] = json!(kind.api_version());
        let object = Arc::new(object);
        inner.index(kind, &key, &object);
        inner.tables.get_mut(&kind).expect("all kinds have tables").insert(key, object.clone());
        self.publish(&mut inner, Change::new(kind, EventType::Added, object.clone(), None, rv));
        Ok(object)
    }

    /// Insert many objects at once without history (seeding). Objects must
    /// be complete; the store sets uid/resourceVersion/creationTimestamp if
    /// missing.
    pub fn bulk_insert(&self, kind: Kind, objects: impl IntoIterator<Item = Value>) -> usize {
        let mut inner = self.write();
        let mut n = 0;
        let created = now_rfc3339();
        for mut object in objects {
            inner.rv += 1;
            let rv = inner.rv;
            let meta = object["metadata"].as_object_mut().expect("seed objects have metadata");
            meta.entry("uid").or_insert_with(|| json!(uuid::Uuid::new_v4().to_string()));
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
            meta.entry("creationTimestamp").or_insert_with(|| json!(created.clone()));
            if kind.has_generation() {
                meta.entry("generation").or_insert(json!(1));
            }
            object["kind"] = json!(kind.kind());
            object["apiVersion"] = json!(kind.api_version());
            let key = Key::of(&object);
            let object = Arc::new(object);
            if let Some(old) =
                inner.tables.get_mut(&kind).expect("all kinds have tables").insert(key.clone(), object.clone())
            {
                inner.unindex(kind, &key, &old);
            }
            inner.index(kind, &key, &object);
            n += 1;
        }
        // Nothing before now can be replayed.
        inner.compacted = inner.rv;
        inner.history.clear();
        n
    }

    /// Read-modify-write one object under the store lock. `f` gets the
    /// current object and returns whether it changed; the store bumps the
    /// resourceVersion (and generation, when `spec` changed) and publishes.
    pub fn mutate(
        &self,
        kind: Kind,
        key: &Key,
        f: impl FnOnce(&mut Value) -> Result<Mutation, ApiError>,
    ) -> Result<Object, ApiError> {
        let mut inner = self.write();
        let current = inner.tables[&kind].get(key).cloned().ok_or_else(|| ApiError::not_found(kind, &key.name))?;
        let mut next = (*current).clone();
        if let Mutation::Unchanged = f(&mut next)? {
            return Ok(current);
        }
        // Identity and server-owned metadata never change through a write.
        for field in ["uid", "creationTimestamp", "name", "namespace"] {
            match current["metadata"].get(field) {
                Some(v) => next["metadata"][field] = v.clone(),
                None => {
                    if let Some(m) = next["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        if current["metadata"].get("deletionTimestamp").is_some() {
            next["metadata"]["deletionTimestamp"] = current["metadata"]["deletionTimestamp"].clone();
        }
        if kind.has_generation() {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
            let bumped = if current.get("spec") != next.get("spec") { generation + 1 } else { generation };
            next["metadata"]["generation"] = json!(bumped);
        }
        next["kind"] = json!(kind.kind());
        next["apiVersion"] = json!(kind.api_version());
        inner.rv += 1;
        let rv = inner.rv;
        next["metadata"]["resourceVersion"] = json!(rv.to_string());
        let next = Arc::new(next);
        if current["metadata"].get("ownerReferences") != next["metadata"].get("ownerReferences")
            || current["metadata"].get("labels") != next["metadata"].get("labels")
        {
            inner.unindex(kind, key, &current);
            inner.index(kind, key, &next);
        }
        inner.tables.get_mut(&kind).expect("all kinds have tables").insert(key.clone(), next.clone());
        self.publish(&mut inner, Change::new(kind, EventType::Modified, next.clone(), Some(current), rv));
        Ok(next)
    }

    /// Remove an object now (finalizers and propagation are the caller's).
    pub fn remove(&self, kind: Kind, key: &Key) -> Option<Object> {
        let mut inner = self.write();
        let removed = inner.tables.get_mut(&kind).expect("all kinds have tables").remove(key)?;
        inner.unindex(kind, key, &removed);
        inner.rv += 1;
        let rv = inner.rv;
        let mut last = (*removed).clone();
        last["metadata"]["resourceVersion"] = json!(rv.to_string());
        let last = Arc::new(last);
        self.publish(&mut inner, Change::new(kind, EventType::Deleted, last.clone(), None, rv));
        Some(last)
    }

    fn publish(&self, inner: &mut Inner, change: Change) {
        let change = Arc::new(change);
        inner.history.push_back(change.clone());
        while inner.history.len() > self.history {
            if let Some(old) = inner.history.pop_front() {
                inner.compacted = old.rv;
            }
        }
        let _ = self.changes.send(change);
    }

    /// Subscribe to changes after `rv`: the kept changes since then, and a
    /// receiver for every later one (no gap, no overlap). `Err` with the
    /// oldest replayable version when `rv` is older than the history.
    pub fn watch_from(&self, rv: u64) -> Result<(Vec<Arc<Change>>, Changes), u64> {
        let inner = self.read();
        if rv < inner.compacted {
            return Err(inner.compacted);
        }
        let backlog = inner.history.iter().filter(|c| c.rv > rv).cloned().collect();
        Ok((backlog, self.changes.subscribe()))
    }

    /// A snapshot of every object of `kind` (for initial watch events), with
    /// a receiver for everything after it.
    pub fn snapshot_and_subscribe(
        &self,
        kind: Kind,
        namespace: Option<&str>,
    ) -> (Vec<Object>, u64, broadcast::Receiver<Arc<Change>>) {
        let inner = self.read();
        let items = inner.tables[&kind]
            .iter()
            .filter(|(k, _)| namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(_, o)| o.clone())
            .collect();
        (items, inner.rv, self.changes.subscribe())
    }

    /// A receiver of every change from now on (controllers).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.changes.subscribe()
    }

    /// Objects whose ownerReferences name `uid`.
    pub fn dependents(&self, owner_uid: &str) -> Vec<(Kind, Object)> {
        let inner = self.read();
        let Some(keys) = inner.owned.get(owner_uid) else { return Vec::new() };
        keys.iter().filter_map(|(kind, key)| Some((*kind, inner.tables[kind].get(key)?.clone()))).collect()
    }

    /// Objects of `kind` whose ownerReferences name `uid`.
    pub fn owned_by(&self, kind: Kind, owner_uid: &str) -> Vec<Object> {
        let inner = self.read();
        let Some(keys) = inner.owned.get(owner_uid) else { return Vec::new() };
        keys.range((kind, Key::new("", ""))..)
            .take_while(|(k, _)| *k == kind)
            .filter_map(|(_, key)| inner.tables[&kind].get(key).cloned())
            .collect()
    }
}

fn owner_uids(object: &Value) -> impl Iterator<Item = &str> {
    object["metadata"]["ownerReferences"].as_array().into_iter().flatten().filter_map(|r| r["uid"].as_str())
}

fn labels(object: &Value) -> impl Iterator<Item = (&String, &str)> {
    object
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k, v.as_str()?)))
}

impl Inner {
    fn index(&mut self, kind: Kind, key: &Key, object: &Value) {
        for uid in owner_uids(object) {
            self.owned.entry(uid.to_owned()).or_default().insert((kind, key.clone()));
        }
        for (k, v) in labels(object) {
            self.labelled.entry((kind, k.clone(), v.to_owned())).or_default().insert(key.clone());
        }
    }

    fn unindex(&mut self, kind: Kind, key: &Key, object: &Value) {
        for uid in owner_uids(object) {
            if let Some(keys) = self.owned.get_mut(uid) {
                keys.remove(&(kind, key.clone()));
                if keys.is_empty() {
                    self.owned.remove(uid);
                }
            }
        }
        for (k, v) in labels(object) {
            let entry = (kind, k.clone(), v.to_owned());
            if let Some(keys) = self.labelled.get_mut(&entry) {
                keys.remove(key);
                if keys.is_empty() {
                    self.labelled.remove(&entry);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, owners: &[&str]) -> Value {
        let refs: Vec<Value> = owners.iter().map(|uid| json!({"kind": "Job", "name": "j", "uid": uid})).collect();
        json!({"metadata": {"namespace": "ns", "name": name, "ownerReferences": refs}})
    }

    fn names(objects: &[Object]) -> Vec<&str> {
        objects.iter().map(|o| o["metadata"]["name"].as_str().unwrap()).collect()
    }

    #[test]
    fn the_owner_index_follows_creates_writes_and_removes() {
        let store = Store::new(100);
        store.create(Kind::Namespace, json!({"metadata": {"name": "ns"}})).unwrap();
        store.create(Kind::Pod, pod("b", &["u1"])).unwrap();
        store.create(Kind::Pod, pod("a", &["u1", "u2"])).unwrap();
        store.create(Kind::Pod, pod("c", &[])).unwrap();
        store
            .create(
                Kind::Job,
                json!({"metadata": {"namespace": "ns", "name": "j", "ownerReferences": [{"uid": "u1"}]}}),
            )
            .unwrap();
        assert_eq!(names(&store.owned_by(Kind::Pod, "u1")), ["a", "b"], "in key order, pods only");
        assert_eq!(store.dependents("u1").len(), 3);
        assert_eq!(names(&store.owned_by(Kind::Pod, "u2")), ["a"]);

        // Orphaning (a write that drops the reference) leaves the index.
        store
            .mutate(Kind::Pod, &Key::new("ns", "a"), |p| {
                p["metadata"]["ownerReferences"] = json!([{"uid": "u2"}]);
                Ok(Mutation::Changed)
            })
            .unwrap();
        assert_eq!(names(&store.owned_by(Kind::Pod, "u1")), ["b"]);
        assert_eq!(names(&store.owned_by(Kind::Pod, "u2")), ["a"], "the stored object is the new one");

        store.remove(Kind::Pod, &Key::new("ns", "b"));
        store.remove(Kind::Job, &Key::new("ns", "j"));
        assert!(store.dependents("u1").is_empty());
        assert!(!store.read().owned.contains_key("u1"), "emptied owners are dropped");
    }

    #[test]
    fn a_list_narrowed_by_label_pages_like_a_scan_and_follows_relabels() {
        let store = Store::new(100);
        store.create(Kind::Namespace, json!({"metadata": {"name": "ns"}})).unwrap();
        store.create(Kind::Namespace, json!({"metadata": {"name": "other"}})).unwrap();
        for i in 0..40 {
            let ns = if i % 5 == 0 { "other" } else { "ns" };
            let labels = json!({"run": format!("r{}", i % 10), "all": "yes"});
            store
                .create(Kind::Pod, json!({"metadata": {"namespace": ns, "name": format!("p{i:02}"), "labels": labels}}))
                .unwrap();
        }
        // 8 of 40 objects: under a quarter, so read from the index.
        let wanted = ["r1", "r7"];
        let filter = |o: &Value| {
            o["metadata"]["labels"]["run"].as_str().is_some_and(|r| wanted.contains(&r))
                && o["metadata"]["labels"]["all"] == "yes"
        };
        let narrow = [("all", vec!["yes"]), ("run", wanted.to_vec())];
        // Page through both ways, two at a time.
        let pages = |narrowed: bool| {
            let (mut all, mut after) = (Vec::new(), None);
            loop {
                let page = if narrowed {
                    store.list(Kind::Pod, Some("ns"), after.as_ref(), Some(2), Some(&filter), &narrow)
                } else {
                    store.list(Kind::Pod, Some("ns"), after.as_ref(), Some(2), Some(&filter), &[])
                };
                all.extend(names(&page.items).into_iter().map(str::to_owned));
                match page.next {
                    Some(k) => after = Some(k),
                    None => return all,
                }
            }
        };
        let scanned = pages(false);
        assert_eq!(scanned.len(), 8, "{scanned:?}");
        assert_eq!(pages(true), scanned);

        // A relabel moves an object in the index; a remove drops it.
        store
            .mutate(Kind::Pod, &Key::new("ns", "p01"), |p| {
                p["metadata"]["labels"]["run"] = json!("r9");
                Ok(Mutation::Changed)
            })
            .unwrap();
        store.remove(Kind::Pod, &Key::new("ns", "p11"));
        let after = pages(true);
        assert_eq!(after, pages(false));
        assert!(!after.contains(&"p01".to_owned()) && !after.contains(&"p11".to_owned()));
        assert_eq!(after.len(), 6);
        assert_eq!(store.read().labelled[&(Kind::Pod, "run".into(), "r9".into())].len(), 5, "p01 joined r9");
    }
}
