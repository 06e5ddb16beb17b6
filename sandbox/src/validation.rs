//! What the API server does to an object before storing it: names,
//! `generateName`, defaulting, and validation with the real field paths and
//! messages (`422 Invalid` with `details.causes`).
//!
//! Jobs follow the real registry strategy: the server generates
//! `spec.selector` and the `controller-uid` / `job-name` template labels
//! (both spellings) from the new uid; a request that brings its own selector
//! without `manualSelector: true`, or template labels naming another Job, is
//! rejected, which is exactly what happens when a Job copied from a live
//! cluster is submitted unchanged.

use rand::RngExt;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, Cause};
use crate::resources::Kind;

pub const CONTROLLER_UID: &str = "controller-uid";
pub const JOB_NAME: &str = "job-name";
pub const BATCH_CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
pub const BATCH_JOB_NAME: &str = "batch.kubernetes.io/job-name";

/// The longest `generateName` prefix the apiserver keeps (63 - 5).
const MAX_GENERATED_PREFIX: usize = 58;

/// The real `generateName` alphabet (no vowels, no look-alikes).
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

pub fn random_suffix(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len).map(|_| SUFFIX_ALPHABET[rng.random_range(0..SUFFIX_ALPHABET.len())] as char).collect()
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn name_rule(kind: Kind) -> (fn(&str) -> bool, &'static str, usize) {
    match kind {
        Kind::Namespace | Kind::Job => (
            is_dns_label,
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            63,
        ),
        Kind::CronJob => (
            is_dns_subdomain,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            52,
        ),
        Kind::Pod | Kind::Event => (
            is_dns_subdomain,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            253,
        ),
    }
}

fn validate_name(kind: Kind, name: &str, causes: &mut Vec<Cause>) {
    let (valid, rule, max) = name_rule(kind);
    if name.len() > max {
        causes.push(Cause::invalid("metadata.name", &json!(name), &format!("must be no more than {max} characters")));
    } else if !valid(name) {
        causes.push(Cause::invalid("metadata.name", &json!(name), rule));
    }
}

/// Environment variable names as current Kubernetes accepts them.
fn valid_env_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'=')
}

/// Prepare a new object for `store.create`: namespace, name, a fresh uid,
/// defaults and validation. `namespace` is the request path's namespace.
/// What the real server's JSON decoding refuses before any validation
/// (400, not 422): container `env` names and values that are not strings,
/// e.g. `value: 5` in YAML.
pub fn check_types(kind: Kind, object: &Value) -> Result<(), ApiError> {
    let (template, path) = match kind {
        Kind::Job => (object.pointer("/spec/template/spec"), "spec.template.spec"),
        Kind::CronJob => {
            (object.pointer("/spec/jobTemplate/spec/template/spec"), "spec.jobTemplate.spec.template.spec")
        }
        Kind::Pod => (object.get("spec"), "spec"),
        _ => (None, ""),
    };
    let Some(pod_spec) = template else { return Ok(()) };
    for list in ["initContainers", "containers"] {
        for c in pod_spec[list].as_array().into_iter().flatten() {
            for e in c["env"].as_array().into_iter().flatten() {
                for field in ["name", "value"] {
                    let Some(v) = e.get(field).filter(|v| !v.is_null()) else { continue };
                    if !v.is_string() {
                        let found = match v {
                            Value::Number(_) => "number",
                            Value::Bool(_) => "bool",
                            Value::Array(_) => "array",
                            _ => "object",
                        };
                        return Err(ApiError::bad_request(format!(
                            "{kind} in version \"{version}\" cannot be handled as a {kind}: json: cannot unmarshal {found} into Go struct field EnvVar.{path}.{list}.env.{field} of type string",
                            kind = kind.kind(),
                            version = kind.api_version().rsplit('/').next().unwrap_or("v1"),
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

pub fn prepare_create(kind: Kind, namespace: Option<&str>, object: &mut Value) -> Result<(), ApiError> {
    if !object.is_object() {
        return Err(ApiError::bad_request("the request body is not a JSON object"));
    }
    if let Some(body_kind) = object.get("kind").and_then(Value::as_str)
        && body_kind != kind.kind()
    {
        return Err(ApiError::bad_request(format!(
            "the kind of the object ({body_kind}) does not match the resource ({})",
            kind.plural()
        )));
    }
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    let meta = object["metadata"].as_object_mut().expect("set above");
    if let Some(ns) = namespace {
        match meta.get("namespace").and_then(Value::as_str) {
            Some(given) if !given.is_empty() && given != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                meta.insert("namespace".into(), json!(ns));
            }
        }
    } else {
        meta.remove("namespace");
    }
    // The name admission reports: a generated name does not exist yet.
    let requested = meta
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .or_else(|| meta.get("generateName").and_then(Value::as_str))
        .unwrap_or_default()
        .to_owned();
    let name = match (meta.get("name").and_then(Value::as_str), meta.get("generateName").and_then(Value::as_str)) {
        (Some(n), _) if !n.is_empty() => n.to_owned(),
        (_, Some(prefix)) if !prefix.is_empty() => {
            // The apiserver's name generator cuts every prefix to 58
            // characters, whatever the kind allows, so a generated name is
            // always a valid DNS label (a pod of a 60-character Job runs).
            let prefix: String = prefix.chars().take(MAX_GENERATED_PREFIX).collect();
            format!("{prefix}{}", random_suffix(5))
        }
        _ => {
            return Err(ApiError::invalid(
                kind,
                "",
                vec![Cause::required("metadata.name", "name or generateName is required")],
            ));
        }
    };
    meta.insert("name".into(), json!(name));
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    for server_owned in [
        "resourceVersion",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "managedFields",
        "selfLink",
    ] {
        meta.remove(server_owned);
    }
    let mut causes = Vec::new();
    validate_name(kind, &name, &mut causes);
    validate_labels(object, &mut causes);
    match kind {
        Kind::Job => {
            if let Some(o) = object.as_object_mut() {
                o.remove("status");
            }
            default_job_spec(&mut object["spec"]);
            generate_selector(object);
            // Like the real defaulting: a Job without labels takes its
            // template's (the generated ones included).
            let has_labels = object["metadata"]["labels"].as_object().is_some_and(|l| !l.is_empty());
            if !has_labels && let Some(l) = object.pointer("/spec/template/metadata/labels").cloned() {
                object["metadata"]["labels"] = l;
            }
            validate_job(object, &mut causes);
        }
        Kind::CronJob => {
            if let Some(o) = object.as_object_mut() {
                o.remove("status");
            }
            default_cronjob(object);
            validate_cronjob(object, &mut causes);
        }
        Kind::Pod => {
            admit_service_account(object, &requested)?;
            default_pod_spec(&mut object["spec"]);
            object["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
            validate_pod_spec(&object["spec"], "spec", &mut causes);
        }
        Kind::Namespace => {
            object["spec"] = json!({"finalizers": ["kubernetes"]});
            object["status"] = json!({"phase": "Active"});
            object["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
        }
        Kind::Event => {}
    }
    if causes.is_empty() { Ok(()) } else { Err(ApiError::invalid(kind, &name, causes)) }
}

/// The ServiceAccount admission plugin: a pod runs as an account that
/// exists. The sandbox serves no ServiceAccounts, so each namespace has only
/// its implicit `default`; any other is refused as a real API server
/// refuses a missing one (403, and the job controller's FailedCreate).
fn admit_service_account(pod: &Value, name: &str) -> Result<(), ApiError> {
    let spec = &pod["spec"];
    let account = spec["serviceAccountName"].as_str().or_else(|| spec["serviceAccount"].as_str()).unwrap_or_default();
    if account.is_empty() || account == "default" {
        return Ok(());
    }
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    Err(ApiError::forbidden_by_admission(
        Kind::Pod,
        name,
        &format!("error looking up service account {ns}/{account}: serviceaccount \"{account}\" not found"),
    ))
}

fn validate_labels(object: &Value, causes: &mut Vec<Cause>) {
    let Some(labels) = object.pointer("/metadata/labels").and_then(Value::as_object) else { return };
    for (k, v) in labels {
        let value = v.as_str().unwrap_or_default();
        let valid_value = value.len() <= 63
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && value.bytes().next().is_none_or(|b| b.is_ascii_alphanumeric())
            && value.bytes().last().is_none_or(|b| b.is_ascii_alphanumeric());
        if !valid_value {
            causes.push(Cause::invalid(
                "metadata.labels",
                v,
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character, at most 63 characters",
            ));
        }
        if k.is_empty() || k.len() > 316 {
            causes.push(Cause::invalid(
                "metadata.labels",
                &json!(k),
                "label keys must be 1 to 63 characters (plus an optional DNS prefix)",
            ));
        }
    }
}

/// Default a field that is missing, null, or (as Go's zero value arrives
/// from protobuf clients) an empty string.
fn set_default(map: &mut Value, key: &str, value: Value) {
    if map.get(key).is_none_or(|v| v.is_null() || v.as_str() == Some("")) {
        map[key] = value;
    }
}

/// Pod defaulting as the real API server does it (the parts clients see).
pub fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        *spec = json!({});
    }
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "securityContext", json!({}));
    for list in ["initContainers", "containers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in containers {
                set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
                set_default(c, "terminationMessagePolicy", json!("File"));
                set_default(c, "resources", json!({}));
                let image = c["image"].as_str().unwrap_or_default();
                let tagged = image.rsplit('/').next().is_some_and(|last| last.contains(':') || last.contains('@'));
                let policy = if !tagged || image.ends_with(":latest") { "Always" } else { "IfNotPresent" };
                set_default(c, "imagePullPolicy", json!(policy));
            }
        }
    }
}

fn default_job_spec(spec: &mut Value) {
    if !spec.is_object() {
        *spec = json!({});
    }
    let completions_set = spec.get("completions").is_some_and(|v| !v.is_null());
    let parallelism_set = spec.get("parallelism").is_some_and(|v| !v.is_null());
    if !completions_set && !parallelism_set {
        spec["completions"] = json!(1);
    }
    set_default(spec, "parallelism", json!(1));
    // As the real defaulting: per-index back-off leaves the Job's own
    // limit unbounded, and a pod failure policy replaces only failed pods.
    let per_index = spec.get("backoffLimitPerIndex").is_some_and(|v| !v.is_null());
    set_default(spec, "backoffLimit", json!(if per_index { i64::from(i32::MAX) } else { 6 }));
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    let failure_policy = spec.get("podFailurePolicy").is_some_and(|v| !v.is_null());
    set_default(spec, "podReplacementPolicy", json!(if failure_policy { "Failed" } else { "TerminatingOrFailed" }));
    set_default(spec, "manualSelector", json!(false));
    if !spec["template"].is_object() {
        spec["template"] = json!({});
    }
    default_pod_spec(&mut spec["template"]["spec"]);
}

/// The real `generateSelector`: fill in what is missing from the new uid and
/// name, never overwrite what the request brought (validation catches that).
fn generate_selector(job: &mut Value) {
    if job.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let uid = job["metadata"]["uid"].clone();
    let name = job["metadata"]["name"].clone();
    let template = &mut job["spec"]["template"];
    if !template["metadata"].is_object() {
        template["metadata"] = json!({});
    }
    if !template["metadata"]["labels"].is_object() {
        template["metadata"]["labels"] = json!({});
    }
    let labels = template["metadata"]["labels"].as_object_mut().expect("set above");
    for key in [JOB_NAME, BATCH_JOB_NAME] {
        labels.entry(key).or_insert_with(|| name.clone());
    }
    for key in [CONTROLLER_UID, BATCH_CONTROLLER_UID] {
        labels.entry(key).or_insert_with(|| uid.clone());
    }
    let spec = &mut job["spec"];
    if !spec["selector"].is_object() {
        spec["selector"] = json!({});
    }
    if !spec["selector"]["matchLabels"].is_object() {
        spec["selector"]["matchLabels"] = json!({});
    }
    spec["selector"]["matchLabels"].as_object_mut().expect("set above").entry(BATCH_CONTROLLER_UID).or_insert(uid);
}

fn validate_job(job: &Value, causes: &mut Vec<Cause>) {
    let spec = &job["spec"];
    for field in ["parallelism", "completions", "backoffLimit"] {
        if let Some(n) = spec.get(field).and_then(Value::as_i64)
            && n < 0
        {
            causes.push(Cause::invalid(&format!("spec.{field}"), &json!(n), "must be greater than or equal to 0"));
        }
    }
    if let Some(n) = spec.get("activeDeadlineSeconds").and_then(Value::as_i64)
        && n <= 0
    {
        causes.push(Cause::invalid("spec.activeDeadlineSeconds", &json!(n), "must be greater than 0"));
    }
    match spec["completionMode"].as_str() {
        Some("NonIndexed") => {}
        Some("Indexed") => {
            if spec.get("completions").is_none_or(Value::is_null) {
                causes.push(Cause::required("spec.completions", "when completion mode is Indexed"));
            }
            // Its pods are named `<name>-<index>` as hostnames: the last
            // index's must be a DNS label, or no pod could ever be made.
            if let Some(n) = spec["completions"].as_i64().filter(|n| *n > 0) {
                let name = job["metadata"]["name"].as_str().unwrap_or_default();
                let hostname = format!("{name}-{}", n - 1);
                if hostname.len() > 63 {
                    causes.push(Cause::invalid(
                        "metadata.name",
                        &json!(name),
                        &format!("will not able to create pod with invalid DNS label: {hostname}"),
                    ));
                }
            }
        }
        _ => {
            causes.push(Cause::unsupported("spec.completionMode", &spec["completionMode"], &["NonIndexed", "Indexed"]))
        }
    }
    validate_generated_selector(job, causes);
    let template = &spec["template"];
    let restart = &template["spec"]["restartPolicy"];
    if !matches!(restart.as_str(), Some("OnFailure" | "Never")) {
        causes.push(Cause::unsupported("spec.template.spec.restartPolicy", restart, &["OnFailure", "Never"]));
    }
    validate_pod_spec(&template["spec"], "spec.template.spec", causes);
}

/// The real `validateGeneratedSelector`.
fn validate_generated_selector(job: &Value, causes: &mut Vec<Cause>) {
    let spec = &job["spec"];
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        let selector = crate::store::selector::LabelSelector::from_object(&spec["selector"]);
        if selector.is_empty() {
            causes.push(Cause::required("spec.selector", ""));
        } else if !selector.matches(&spec["template"]) {
            causes.push(Cause::invalid(
                "spec.template.metadata.labels",
                &spec["template"]["metadata"]["labels"],
                "`selector` does not match template `labels`",
            ));
        }
        return;
    }
    let uid = &job["metadata"]["uid"];
    let name = &job["metadata"]["name"];
    let labels = &spec["template"]["metadata"]["labels"];
    for key in [JOB_NAME, BATCH_JOB_NAME] {
        if labels.get(key).is_some_and(|v| v != name) {
            causes.push(Cause::invalid(
                &format!("spec.template.metadata.labels[{key}]"),
                &labels[key],
                &format!("must be '{}'", name.as_str().unwrap_or_default()),
            ));
        }
    }
    for key in [CONTROLLER_UID, BATCH_CONTROLLER_UID] {
        if labels.get(key).is_some_and(|v| v != uid) {
            causes.push(Cause::invalid(
                &format!("spec.template.metadata.labels[{key}]"),
                &labels[key],
                &format!("must be '{}'", uid.as_str().unwrap_or_default()),
            ));
        }
    }
    let selector = &spec["selector"];
    let generated = json!({BATCH_CONTROLLER_UID: uid});
    let only_generated = selector.get("matchLabels") == Some(&generated)
        && selector.get("matchExpressions").is_none_or(|e| e.as_array().is_none_or(Vec::is_empty));
    if !only_generated {
        causes.push(Cause::invalid("spec.selector", selector, "`selector` not auto-generated"));
    }
}

fn validate_pod_spec(spec: &Value, path: &str, causes: &mut Vec<Cause>) {
    let containers = spec["containers"].as_array().map(Vec::as_slice).unwrap_or_default();
    if containers.is_empty() {
        causes.push(Cause::required(&format!("{path}.containers"), ""));
    }
    for (list, items) in [
        ("initContainers", spec["initContainers"].as_array().map(Vec::as_slice).unwrap_or_default()),
        ("containers", containers),
    ] {
        let mut names = std::collections::HashSet::new();
        for (i, c) in items.iter().enumerate() {
            let at = format!("{path}.{list}[{i}]");
            match c["name"].as_str() {
                None | Some("") => causes.push(Cause::required(&format!("{at}.name"), "")),
                Some(n) => {
                    if !is_dns_label(n) {
                        causes.push(Cause::invalid(
                            &format!("{at}.name"),
                            &c["name"],
                            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'",
                        ));
                    }
                    if !names.insert(n.to_owned()) {
                        causes.push(Cause {
                            reason: "FieldValueDuplicate",
                            field: format!("{at}.name"),
                            message: format!("Duplicate value: {:?}", n),
                        });
                    }
                }
            }
            if c["image"].as_str().is_none_or(|s| s.trim().is_empty()) {
                causes.push(Cause::required(&format!("{at}.image"), ""));
            }
            for (j, e) in c["env"].as_array().into_iter().flatten().enumerate() {
                let name = e["name"].as_str().unwrap_or_default();
                if !valid_env_name(name) {
                    causes.push(Cause::invalid(
                        &format!("{at}.env[{j}].name"),
                        &e["name"],
                        "a valid environment variable name must consist only of printable ASCII characters other than '='",
                    ));
                }
            }
        }
    }
}

fn default_cronjob(cronjob: &mut Value) {
    let spec = &mut cronjob["spec"];
    if !spec.is_object() {
        *spec = json!({});
    }
    set_default(spec, "concurrencyPolicy", json!("Allow"));
    set_default(spec, "suspend", json!(false));
    set_default(spec, "successfulJobsHistoryLimit", json!(3));
    set_default(spec, "failedJobsHistoryLimit", json!(1));
    if !spec["jobTemplate"].is_object() {
        spec["jobTemplate"] = json!({});
    }
    // The Job fields of the template are defaulted when a Job is made from
    // it, not here (as on a real server); only the pod spec is.
    let job_spec = &mut spec["jobTemplate"]["spec"];
    if !job_spec.is_object() {
        *job_spec = json!({});
    }
    if !job_spec["template"].is_object() {
        job_spec["template"] = json!({});
    }
    default_pod_spec(&mut job_spec["template"]["spec"]);
}

fn validate_cronjob(cronjob: &Value, causes: &mut Vec<Cause>) {
    let spec = &cronjob["spec"];
    match spec["schedule"].as_str() {
        None | Some("") => causes.push(Cause::required("spec.schedule", "")),
        Some(s) => {
            if parse_schedule(s).is_err() {
                causes.push(Cause::invalid("spec.schedule", &spec["schedule"], "unparseable cron expression"));
            }
        }
    }
    if !matches!(spec["concurrencyPolicy"].as_str(), Some("Allow" | "Forbid" | "Replace")) {
        causes.push(Cause::unsupported(
            "spec.concurrencyPolicy",
            &spec["concurrencyPolicy"],
            &["Allow", "Forbid", "Replace"],
        ));
    }
    let template = &spec["jobTemplate"]["spec"]["template"];
    if !matches!(template["spec"]["restartPolicy"].as_str(), Some("OnFailure" | "Never")) {
        causes.push(Cause::unsupported(
            "spec.jobTemplate.spec.template.spec.restartPolicy",
            &template["spec"]["restartPolicy"],
            &["OnFailure", "Never"],
        ));
    }
    validate_pod_spec(&template["spec"], "spec.jobTemplate.spec.template.spec", causes);
}

/// Validate an update of an existing object (`PUT`/`PATCH` of the main
/// resource). Jobs keep `selector`, `template` and `completionMode`.
pub fn validate_update(kind: Kind, old: &Value, new: &mut Value) -> Result<(), ApiError> {
    let name = old["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    let mut causes = Vec::new();
    validate_labels(new, &mut causes);
    if kind == Kind::Job {
        for field in ["selector", "template", "completionMode", "completions"] {
            let (before, after) = (old["spec"].get(field), new["spec"].get(field));
            if before != after {
                causes.push(Cause::invalid(
                    &format!("spec.{field}"),
                    after.unwrap_or(&Value::Null),
                    "field is immutable",
                ));
            }
        }
    }
    if kind == Kind::CronJob {
        default_cronjob(new);
        validate_cronjob(new, &mut causes);
    }
    if causes.is_empty() { Ok(()) } else { Err(ApiError::invalid(kind, &name, causes)) }
}

/// An owner reference to `owner` (controller, blocking deletion).
pub fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// `labels` of an object as a map (empty if none).
pub fn labels(object: &Value) -> Map<String, Value> {
    object.pointer("/metadata/labels").and_then(Value::as_object).cloned().unwrap_or_default()
}

/// Parse a standard 5-field schedule (or a `@hourly`-style macro).
pub fn parse_schedule(schedule: &str) -> Result<croner::Cron, String> {
    let expanded = match schedule.trim() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other => other,
    };
    if expanded.split_whitespace().count() != 5 {
        return Err(format!("expected 5 fields, got {expanded:?}"));
    }
    <croner::Cron as std::str::FromStr>::from_str(expanded).map_err(|e| e.to_string())
}
