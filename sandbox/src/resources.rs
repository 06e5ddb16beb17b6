//! The resources the sandbox serves and what is fixed about each: its API
//! group, scope, names, and how deleting it treats its dependents by default.

use serde_json::{Value, json};

/// A served resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Namespace,
    Pod,
    Event,
    Job,
    CronJob,
}

/// What deleting an owner does to its dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Delete the owner now; the garbage collector deletes dependents after.
    Background,
    /// Delete dependents first (blockOwnerDeletion), then the owner.
    Foreground,
    /// Delete the owner; remove the owner reference from dependents.
    Orphan,
}

impl Propagation {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Background" => Some(Self::Background),
            "Foreground" => Some(Self::Foreground),
            "Orphan" => Some(Self::Orphan),
            _ => None,
        }
    }
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Namespace, Kind::Pod, Kind::Event, Kind::Job, Kind::CronJob];

    pub fn kind(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Pod => "Pod",
            Kind::Event => "Event",
            Kind::Job => "Job",
            Kind::CronJob => "CronJob",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Pod => "pods",
            Kind::Event => "events",
            Kind::Job => "jobs",
            Kind::CronJob => "cronjobs",
        }
    }

    /// "" for the core group.
    pub fn group(self) -> &'static str {
        match self {
            Kind::Job | Kind::CronJob => "batch",
            _ => "",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Job | Kind::CronJob => "batch/v1",
            _ => "v1",
        }
    }

    pub fn namespaced(self) -> bool {
        self != Kind::Namespace
    }

    /// `jobs.batch`, `pods`: how the real server names a resource in messages.
    pub fn qualified(self) -> String {
        if self.group().is_empty() { self.plural().to_owned() } else { format!("{}.{}", self.plural(), self.group()) }
    }

    /// `Job.batch`, `Pod`: the qualified kind used in Invalid messages.
    pub fn qualified_kind(self) -> String {
        if self.group().is_empty() { self.kind().to_owned() } else { format!("{}.{}", self.kind(), self.group()) }
    }

    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            Kind::Namespace => &["ns"],
            Kind::Pod => &["po"],
            Kind::Event => &["ev"],
            Kind::Job => &[],
            Kind::CronJob => &["cj"],
        }
    }

    pub fn subresources(self) -> &'static [&'static str] {
        match self {
            Kind::Pod => &["status", "log"],
            Kind::Job | Kind::CronJob | Kind::Namespace => &["status"],
            Kind::Event => &[],
        }
    }

    /// Default propagation when a DELETE names none. `batch/v1` Jobs keep
    /// the historical orphan default through the API (kubectl asks for
    /// Background explicitly).
    pub fn default_propagation(self) -> Propagation {
        match self {
            Kind::Job => Propagation::Orphan,
            _ => Propagation::Background,
        }
    }

    /// Whether writes bump `metadata.generation` on spec changes.
    pub fn has_generation(self) -> bool {
        matches!(self, Kind::Job | Kind::CronJob)
    }

    pub fn from_group_plural(group: &str, plural: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.group() == group && k.plural() == plural)
    }

    /// The APIResource entry of discovery.
    pub fn api_resource(self) -> Vec<Value> {
        let verbs = if self == Kind::Namespace {
            json!(["create", "delete", "get", "list", "patch", "update", "watch"])
        } else {
            json!(["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"])
        };
        let mut out = vec![json!({
            "name": self.plural(),
            "singularName": self.kind().to_lowercase(),
            "namespaced": self.namespaced(),
            "kind": self.kind(),
            "verbs": verbs,
            "shortNames": self.short_names(),
            "categories": if matches!(self, Kind::Job | Kind::CronJob | Kind::Pod) { json!(["all"]) } else { json!([]) },
            "storageVersionHash": "",
        })];
        for sub in self.subresources() {
            let (kind, verbs) = match *sub {
                "log" => ("Pod", json!(["get"])),
                _ => (self.kind(), json!(["get", "patch", "update"])),
            };
            out.push(json!({
                "name": format!("{}/{sub}", self.plural()),
                "singularName": "",
                "namespaced": self.namespaced(),
                "kind": kind,
                "verbs": verbs,
            }));
        }
        out
    }
}
