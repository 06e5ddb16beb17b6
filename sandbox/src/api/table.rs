//! Server-side printing: `meta.k8s.io/v1` Tables for kubectl's default
//! output, with the columns a real cluster gives (jobs: STATUS, COMPLETIONS,
//! DURATION, AGE; pods: READY, STATUS, RESTARTS, AGE; ...). Clients that do
//! not ask for a Table (`Accept: ...;as=Table;g=meta.k8s.io`) get objects.

use serde_json::{Value, json};

use crate::resources::Kind;
use crate::time::parse_ts;

pub const CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// Whether the `Accept` header asks for a Table.
pub fn wanted(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.split(',').any(|part| part.contains("as=Table") && part.contains("g=meta.k8s.io")))
}

fn column(name: &str, kind: &str, format: &str) -> Value {
    json!({"name": name, "type": kind, "format": format, "description": "", "priority": 0})
}

pub fn columns(kind: Kind) -> Value {
    let name = column("Name", "string", "name");
    let age = column("Age", "string", "");
    json!(match kind {
        Kind::Job => vec![
            name,
            column("Status", "string", ""),
            column("Completions", "string", ""),
            column("Duration", "string", ""),
            age
        ],
        Kind::Pod => vec![
            name,
            column("Ready", "string", ""),
            column("Status", "string", ""),
            column("Restarts", "string", ""),
            age
        ],
        Kind::CronJob => vec![
            name,
            column("Schedule", "string", ""),
            column("Timezone", "string", ""),
            column("Suspend", "boolean", ""),
            column("Active", "integer", ""),
            column("Last Schedule", "string", ""),
            age,
        ],
        Kind::Namespace => vec![name, column("Status", "string", ""), age],
        Kind::Event => vec![
            column("Last Seen", "string", ""),
            column("Type", "string", ""),
            column("Reason", "string", ""),
            column("Object", "string", ""),
            column("Message", "string", ""),
        ],
    })
}

/// kubectl's human durations: 45s, 3m12s, 17m, 5h3m, 3d4h, 40d.
pub fn human(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..120 => format!("{s}s"),
        120..600 => format!("{}m{}s", s / 60, s % 60),
        600..10_800 => format!("{}m", s / 60),
        10_800..28_800 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        28_800..172_800 => format!("{}h", s / 3600),
        172_800..691_200 => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn since(ts: &Value) -> String {
    ts.as_str()
        .and_then(parse_ts)
        .map_or_else(|| "<unknown>".to_owned(), |t| human(jiff::Timestamp::now().duration_since(t).as_secs()))
}

fn true_condition(o: &Value, kind: &str) -> bool {
    o["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == kind && c["status"] == "True"))
}

fn cells(kind: Kind, o: &Value) -> Vec<Value> {
    let name = o["metadata"]["name"].clone();
    let age = since(&o["metadata"]["creationTimestamp"]);
    match kind {
        Kind::Job => {
            let status = if true_condition(o, "Failed") {
                "Failed"
            } else if true_condition(o, "Complete") {
                "Complete"
            } else if true_condition(o, "Suspended") {
                "Suspended"
            } else if true_condition(o, "FailureTarget") {
                "FailureTarget"
            } else if true_condition(o, "SuccessCriteriaMet") {
                "SuccessCriteriaMet"
            } else {
                "Running"
            };
            let completions = match o["spec"]["completions"].as_i64() {
                Some(c) => format!("{}/{c}", o["status"]["succeeded"].as_i64().unwrap_or(0)),
                None => format!(
                    "{}/1 of {}",
                    o["status"]["succeeded"].as_i64().unwrap_or(0),
                    o["spec"]["parallelism"].as_i64().unwrap_or(1)
                ),
            };
            let start = o["status"]["startTime"].as_str().and_then(parse_ts);
            let end = o["status"]["completionTime"].as_str().and_then(parse_ts).unwrap_or_else(jiff::Timestamp::now);
            let duration = start.map_or(String::new(), |s| human(end.duration_since(s).as_secs()));
            vec![name, json!(status), json!(completions), json!(duration), json!(age)]
        }
        Kind::Pod => {
            let statuses = o["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
            let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses.iter().filter(|s| s["ready"] == true).count();
            let restarts: i64 = statuses.iter().map(|s| s["restartCount"].as_i64().unwrap_or(0)).sum();
            let waiting = statuses.iter().find_map(|s| s["state"]["waiting"]["reason"].as_str());
            let terminated = statuses.iter().find_map(|s| s["state"]["terminated"]["reason"].as_str());
            let phase = o["status"]["phase"].as_str().unwrap_or("Pending");
            let status = if o["metadata"].get("deletionTimestamp").is_some() {
                "Terminating"
            } else if let Some(w) = waiting {
                w
            } else if phase == "Running" {
                "Running"
            } else if let Some(t) = terminated {
                t
            } else {
                phase
            };
            vec![name, json!(format!("{ready}/{total}")), json!(status), json!(restarts.to_string()), json!(age)]
        }
        Kind::CronJob => vec![
            name,
            o["spec"]["schedule"].clone(),
            json!(o["spec"]["timeZone"].as_str().unwrap_or("<none>")),
            json!(o["spec"]["suspend"] == true),
            json!(o["status"]["active"].as_array().map_or(0, Vec::len)),
            json!(
                o["status"]["lastScheduleTime"]
                    .as_str()
                    .map_or("<none>".to_owned(), |_| since(&o["status"]["lastScheduleTime"]))
            ),
            json!(age),
        ],
        Kind::Namespace => vec![name, json!(o["status"]["phase"].as_str().unwrap_or("Active")), json!(age)],
        Kind::Event => {
            let involved = &o["involvedObject"];
            vec![
                json!(since(&o["lastTimestamp"])),
                o["type"].clone(),
                o["reason"].clone(),
                json!(format!(
                    "{}/{}",
                    involved["kind"].as_str().unwrap_or_default().to_lowercase(),
                    involved["name"].as_str().unwrap_or_default()
                )),
                o["message"].clone(),
            ]
        }
    }
}

/// What a row carries besides its cells (`includeObject`): nothing, the
/// object's metadata (the default), or the whole object (`kubectl get
/// --sort-by` and custom columns need it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn from_query(value: Option<&str>) -> Result<Self, crate::error::ApiError> {
        match value {
            None | Some("Metadata") => Ok(Self::Metadata),
            Some("None") => Ok(Self::None),
            Some("Object") => Ok(Self::Object),
            Some(other) => Err(crate::error::ApiError::bad_request(format!(
                "includeObject: Unsupported value: \"{other}\": supported values: \"Metadata\", \"None\", \"Object\""
            ))),
        }
    }
}

/// One row: the cells and what `include` asks for.
pub fn row(kind: Kind, o: &Value, include: Include) -> Value {
    let object = match include {
        Include::None => Value::Null,
        Include::Metadata => {
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]})
        }
        Include::Object => {
            let mut full = o.clone();
            full["kind"] = json!(kind.kind());
            full["apiVersion"] = json!(kind.api_version());
            full
        }
    };
    json!({"cells": cells(kind, o), "object": object})
}

/// A Table of `items`; `with_columns` false for watch events after the first.
pub fn table(kind: Kind, items: &[&Value], metadata: Value, with_columns: bool, include: Include) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": if with_columns { columns(kind) } else { json!([]) },
        "rows": items.iter().map(|o| row(kind, o, include)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human(45), "45s");
        assert_eq!(human(192), "3m12s");
        assert_eq!(human(1020), "17m");
        assert_eq!(human(18_180), "5h3m");
        assert_eq!(human(90_000), "25h");
        assert_eq!(human(3 * 86_400 + 4 * 3600), "3d4h");
        assert_eq!(human(40 * 86_400), "40d");
    }

    #[test]
    fn accept_header() {
        assert!(wanted(Some("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")));
        assert!(!wanted(Some("application/json")));
        assert!(!wanted(None));
    }
}
