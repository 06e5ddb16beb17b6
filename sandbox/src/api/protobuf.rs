//! Kubernetes protobuf request bodies, decoded to JSON.
//!
//! Since Kubernetes 1.31, client-go's typed clients (and so `kubectl create
//! job --from=...`, `kubectl create namespace`) send built-in objects as
//! `application/vnd.kubernetes.protobuf` and do not fall back to JSON. The
//! sandbox stores JSON, so it decodes the envelope (`k8s\0` + `Unknown`) and
//! the object with a schema table of the fields our resources use (field
//! numbers from the upstream `generated.proto` files). Fields not in the
//! table are skipped.

use serde_json::{Map, Value, json};

use crate::error::ApiError;

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Int,
    Bool,
    Msg(&'static [Field]),
    /// `map<string, string>`.
    StrMap,
    /// `map<string, Quantity>`.
    QtyMap,
    /// `meta.v1.Time` (seconds, nanos) → RFC 3339.
    Time,
}

#[derive(Clone, Copy)]
struct Field {
    num: u64,
    name: &'static str,
    ty: Ty,
    repeated: bool,
    /// Merge the message's fields into the parent (protobuf nests what JSON
    /// inlines, like `localObjectReference`).
    inline: bool,
}

const fn f(num: u64, name: &'static str, ty: Ty) -> Field {
    Field { num, name, ty, repeated: false, inline: false }
}
const fn r(num: u64, name: &'static str, ty: Ty) -> Field {
    Field { num, name, ty, repeated: true, inline: false }
}
const fn inline(num: u64, ty: Ty) -> Field {
    Field { num, name: "", ty, repeated: false, inline: true }
}

static OWNER_REFERENCE: &[Field] = &[
    f(1, "kind", Ty::Str),
    f(3, "name", Ty::Str),
    f(4, "uid", Ty::Str),
    f(5, "apiVersion", Ty::Str),
    f(6, "controller", Ty::Bool),
    f(7, "blockOwnerDeletion", Ty::Bool),
];

static OBJECT_META: &[Field] = &[
    f(1, "name", Ty::Str),
    f(2, "generateName", Ty::Str),
    f(3, "namespace", Ty::Str),
    f(5, "uid", Ty::Str),
    f(6, "resourceVersion", Ty::Str),
    f(7, "generation", Ty::Int),
    f(8, "creationTimestamp", Ty::Time),
    f(11, "labels", Ty::StrMap),
    f(12, "annotations", Ty::StrMap),
    r(13, "ownerReferences", Ty::Msg(OWNER_REFERENCE)),
    r(14, "finalizers", Ty::Str),
];

static REQUIREMENT: &[Field] = &[f(1, "key", Ty::Str), f(2, "operator", Ty::Str), r(3, "values", Ty::Str)];
static LABEL_SELECTOR: &[Field] = &[f(1, "matchLabels", Ty::StrMap), r(2, "matchExpressions", Ty::Msg(REQUIREMENT))];

static LOCAL_REF: &[Field] = &[f(1, "name", Ty::Str)];
static KEY_SELECTOR: &[Field] = &[inline(1, Ty::Msg(LOCAL_REF)), f(2, "key", Ty::Str), f(3, "optional", Ty::Bool)];
static FIELD_SELECTOR: &[Field] = &[f(1, "apiVersion", Ty::Str), f(2, "fieldPath", Ty::Str)];
static ENV_SOURCE: &[Field] = &[
    f(1, "fieldRef", Ty::Msg(FIELD_SELECTOR)),
    f(3, "configMapKeyRef", Ty::Msg(KEY_SELECTOR)),
    f(4, "secretKeyRef", Ty::Msg(KEY_SELECTOR)),
];
static ENV_VAR: &[Field] = &[f(1, "name", Ty::Str), f(2, "value", Ty::Str), f(3, "valueFrom", Ty::Msg(ENV_SOURCE))];
static ENV_REF: &[Field] = &[inline(1, Ty::Msg(LOCAL_REF)), f(2, "optional", Ty::Bool)];
static ENV_FROM: &[Field] =
    &[f(1, "prefix", Ty::Str), f(2, "configMapRef", Ty::Msg(ENV_REF)), f(3, "secretRef", Ty::Msg(ENV_REF))];
static RESOURCES: &[Field] = &[f(1, "limits", Ty::QtyMap), f(2, "requests", Ty::QtyMap)];
static PORT: &[Field] = &[f(1, "name", Ty::Str), f(3, "containerPort", Ty::Int), f(4, "protocol", Ty::Str)];
static VOLUME_MOUNT: &[Field] =
    &[f(1, "name", Ty::Str), f(2, "readOnly", Ty::Bool), f(3, "mountPath", Ty::Str), f(4, "subPath", Ty::Str)];

static CONTAINER: &[Field] = &[
    f(1, "name", Ty::Str),
    f(2, "image", Ty::Str),
    r(3, "command", Ty::Str),
    r(4, "args", Ty::Str),
    f(5, "workingDir", Ty::Str),
    r(6, "ports", Ty::Msg(PORT)),
    r(7, "env", Ty::Msg(ENV_VAR)),
    f(8, "resources", Ty::Msg(RESOURCES)),
    r(9, "volumeMounts", Ty::Msg(VOLUME_MOUNT)),
    f(13, "terminationMessagePath", Ty::Str),
    f(14, "imagePullPolicy", Ty::Str),
    f(16, "stdin", Ty::Bool),
    f(18, "tty", Ty::Bool),
    r(19, "envFrom", Ty::Msg(ENV_FROM)),
    f(20, "terminationMessagePolicy", Ty::Str),
];

static POD_SPEC: &[Field] = &[
    r(2, "containers", Ty::Msg(CONTAINER)),
    f(3, "restartPolicy", Ty::Str),
    f(4, "terminationGracePeriodSeconds", Ty::Int),
    f(5, "activeDeadlineSeconds", Ty::Int),
    f(6, "dnsPolicy", Ty::Str),
    f(7, "nodeSelector", Ty::StrMap),
    f(8, "serviceAccountName", Ty::Str),
    f(10, "nodeName", Ty::Str),
    f(16, "hostname", Ty::Str),
    f(19, "schedulerName", Ty::Str),
    r(20, "initContainers", Ty::Msg(CONTAINER)),
    f(21, "automountServiceAccountToken", Ty::Bool),
    f(24, "priorityClassName", Ty::Str),
];
static POD_TEMPLATE: &[Field] = &[f(1, "metadata", Ty::Msg(OBJECT_META)), f(2, "spec", Ty::Msg(POD_SPEC))];

static JOB_SPEC: &[Field] = &[
    f(1, "parallelism", Ty::Int),
    f(2, "completions", Ty::Int),
    f(3, "activeDeadlineSeconds", Ty::Int),
    f(4, "selector", Ty::Msg(LABEL_SELECTOR)),
    f(5, "manualSelector", Ty::Bool),
    f(6, "template", Ty::Msg(POD_TEMPLATE)),
    f(7, "backoffLimit", Ty::Int),
    f(8, "ttlSecondsAfterFinished", Ty::Int),
    f(9, "completionMode", Ty::Str),
    f(10, "suspend", Ty::Bool),
    f(12, "backoffLimitPerIndex", Ty::Int),
    f(13, "maxFailedIndexes", Ty::Int),
    f(14, "podReplacementPolicy", Ty::Str),
    f(15, "managedBy", Ty::Str),
];
static JOB: &[Field] = &[f(1, "metadata", Ty::Msg(OBJECT_META)), f(2, "spec", Ty::Msg(JOB_SPEC))];
static JOB_TEMPLATE: &[Field] = &[f(1, "metadata", Ty::Msg(OBJECT_META)), f(2, "spec", Ty::Msg(JOB_SPEC))];
static CRONJOB_SPEC: &[Field] = &[
    f(1, "schedule", Ty::Str),
    f(2, "startingDeadlineSeconds", Ty::Int),
    f(3, "concurrencyPolicy", Ty::Str),
    f(4, "suspend", Ty::Bool),
    f(5, "jobTemplate", Ty::Msg(JOB_TEMPLATE)),
    f(6, "successfulJobsHistoryLimit", Ty::Int),
    f(7, "failedJobsHistoryLimit", Ty::Int),
    f(8, "timeZone", Ty::Str),
];
static CRONJOB: &[Field] = &[f(1, "metadata", Ty::Msg(OBJECT_META)), f(2, "spec", Ty::Msg(CRONJOB_SPEC))];
static NAMESPACE: &[Field] = &[f(1, "metadata", Ty::Msg(OBJECT_META))];

static TYPE_META: &[Field] = &[f(1, "apiVersion", Ty::Str), f(2, "kind", Ty::Str)];
static QUANTITY: &[Field] = &[f(1, "string", Ty::Str)];
static TIME: &[Field] = &[f(1, "seconds", Ty::Int)];
static STR_ENTRY: &[Field] = &[f(1, "key", Ty::Str), f(2, "value", Ty::Str)];
static QTY_ENTRY: &[Field] = &[f(1, "key", Ty::Str), f(2, "value", Ty::Msg(QUANTITY))];

fn bad(what: &str) -> ApiError {
    ApiError::bad_request(format!("could not decode the protobuf body: {what}"))
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.buf.split_first().ok_or_else(|| bad("truncated varint"))?;
            self.buf = rest;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(bad("varint too long"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ApiError> {
        if self.buf.len() < n {
            return Err(bad("truncated field"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// The next (field number, wire value), `None` at the end.
    fn next(&mut self) -> Result<Option<(u64, Wire<'a>)>, ApiError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Fixed
            }
            2 => {
                let len = self.varint()? as usize;
                Wire::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed
            }
            t => return Err(bad(&format!("unsupported wire type {t}"))),
        };
        Ok(Some((key >> 3, wire)))
    }
}

enum Wire<'a> {
    Varint(u64),
    /// 32- or 64-bit values: no schema field uses them.
    Fixed,
    Bytes(&'a [u8]),
}

fn string(bytes: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| bad("a string is not UTF-8"))
}

/// Decode a message with `schema`.
fn message(bytes: &[u8], schema: &[Field]) -> Result<Value, ApiError> {
    let mut out = Map::new();
    let mut reader = Reader { buf: bytes };
    while let Some((num, wire)) = reader.next()? {
        let Some(field) = schema.iter().find(|f| f.num == num) else { continue };
        let value = match (field.ty, wire) {
            (Ty::Str, Wire::Bytes(b)) => json!(string(b)?),
            (Ty::Int, Wire::Varint(v)) => json!(v as i64),
            (Ty::Bool, Wire::Varint(v)) => json!(v != 0),
            (Ty::Msg(inner), Wire::Bytes(b)) => message(b, inner)?,
            (Ty::Time, Wire::Bytes(b)) => {
                let t = message(b, TIME)?;
                let secs = t["seconds"].as_i64().unwrap_or(0);
                let ts = jiff::Timestamp::from_second(secs).map_err(|_| bad("time out of range"))?;
                json!(crate::time::format_ts(ts))
            }
            (Ty::StrMap | Ty::QtyMap, Wire::Bytes(b)) => {
                let quantity = matches!(field.ty, Ty::QtyMap);
                let entry = message(b, if quantity { QTY_ENTRY } else { STR_ENTRY })?;
                let key = entry["key"].as_str().unwrap_or_default().to_owned();
                let val = if quantity { entry["value"]["string"].clone() } else { entry["value"].clone() };
                let map = out.entry(field.name).or_insert_with(|| json!({}));
                map[key] = if val.is_null() { json!("") } else { val };
                continue;
            }
            _ => return Err(bad(&format!("field {} has an unexpected wire type", field.name))),
        };
        if is_go_zero(field, &value) {
            continue;
        }
        if field.inline {
            if let Value::Object(m) = value {
                out.extend(m);
            }
        } else if field.repeated {
            out.entry(field.name).or_insert_with(|| json!([])).as_array_mut().expect("arrays stay arrays").push(value);
        } else {
            out.insert(field.name.to_owned(), value);
        }
    }
    Ok(Value::Object(out))
}

/// Go's protobuf encoding writes every non-pointer field, zero or not;
/// the server's JSON leaves such zeros out (`omitempty`). Empty strings,
/// the zero time and the zero values of the plain (non-pointer) numbers and
/// booleans are dropped, so a protobuf create reads back like a JSON one.
fn is_go_zero(field: &Field, value: &Value) -> bool {
    const PLAIN: [&str; 4] = ["generation", "stdin", "stdinOnce", "tty"];
    match value {
        Value::String(s) => s.is_empty() || (matches!(field.ty, Ty::Time) && s == "1970-01-01T00:00:00Z"),
        Value::Number(n) => PLAIN.contains(&field.name) && n.as_i64() == Some(0),
        Value::Bool(b) => PLAIN.contains(&field.name) && !b,
        _ => false,
    }
}

/// Decode a `k8s\0`-framed protobuf body into the object's JSON.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let payload = body.strip_prefix(b"k8s\0").ok_or_else(|| bad("missing the k8s envelope"))?;
    let mut reader = Reader { buf: payload };
    let (mut type_meta, mut raw) = (Value::Null, None);
    while let Some((num, wire)) = reader.next()? {
        match (num, wire) {
            (1, Wire::Bytes(b)) => type_meta = message(b, TYPE_META)?,
            (2, Wire::Bytes(b)) => raw = Some(b),
            _ => {}
        }
    }
    let kind = type_meta["kind"].as_str().unwrap_or_default();
    let schema = match kind {
        "Job" => JOB,
        "CronJob" => CRONJOB,
        "Namespace" => NAMESPACE,
        other => {
            return Err(ApiError::unsupported_media_type(&format!(
                "application/vnd.kubernetes.protobuf for {other} (the sandbox decodes Job, CronJob and Namespace)"
            )));
        }
    };
    let mut object = message(raw.unwrap_or_default(), schema)?;
    object["apiVersion"] = type_meta["apiVersion"].clone();
    object["kind"] = json!(kind);
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(num: u64, wire: u64, body: &[u8]) -> Vec<u8> {
        let mut out = vec![((num << 3) | wire) as u8];
        if wire == 2 {
            out.push(body.len() as u8);
        }
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn decodes_a_job_envelope() {
        let env = [field(1, 2, b"GREETING"), field(2, 2, b"hi")].concat();
        let container = [field(1, 2, b"main"), field(2, 2, b"busybox"), field(3, 2, b"sh"), field(7, 2, &env)].concat();
        let pod_spec = [field(2, 2, &container), field(3, 2, b"Never")].concat();
        let template = field(2, 2, &pod_spec);
        let spec = [field(6, 2, &template), field(7, 0, &[2])].concat();
        let label = [field(1, 2, b"app"), field(2, 2, b"x")].concat();
        let meta = [field(1, 2, b"manual-1"), field(11, 2, &label)].concat();
        let job = [field(1, 2, &meta), field(2, 2, &spec)].concat();
        let type_meta = [field(1, 2, b"batch/v1"), field(2, 2, b"Job")].concat();
        let body = [b"k8s\0".to_vec(), field(1, 2, &type_meta), field(2, 2, &job)].concat();
        let v = decode(&body).unwrap();
        assert_eq!(v["kind"], "Job");
        assert_eq!(v["metadata"]["name"], "manual-1");
        assert_eq!(v["metadata"]["labels"]["app"], "x");
        assert_eq!(v["spec"]["backoffLimit"], 2);
        let c = &v["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            (c["name"].as_str(), c["image"].as_str(), c["command"][0].as_str()),
            (Some("main"), Some("busybox"), Some("sh"))
        );
        assert_eq!(c["env"][0], json!({"name": "GREETING", "value": "hi"}));
        assert_eq!(v["spec"]["template"]["spec"]["restartPolicy"], "Never");
    }
}
