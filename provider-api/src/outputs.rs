//! Output parameters (API 1.3): how a run declares and reports them, shared
//! by every provider so they read the same formats the same way.
//!
//! * A source declares its outputs in one annotation, docker label or tag,
//!   [`DECLARE`]: `"ROWS, REPORT_URL"`.
//! * A Kubernetes container writes them to its termination message as a JSON
//!   object of strings or as `NAME=VALUE` lines ([`parse_message`]), at most
//!   [`MESSAGE_LIMIT`] bytes: that is all a kubelet keeps, and less in a pod
//!   of four or more containers ([`message_share`]).
//! * Any container (ECS, or a Kubernetes container that cannot write the
//!   file) prints `::polysync-output NAME=VALUE` lines ([`parse_markers`]);
//!   the lines stay in the log.
//!
//! Pure functions: no I/O.

use std::collections::BTreeMap;

/// The annotation / docker label / tag that lists a source's outputs.
pub const DECLARE: &str = "polysync.io/outputs";

/// The log line prefix that sets an output.
pub const MARKER: &str = "::polysync-output ";

/// The bytes of a termination message a kubelet keeps per container (it
/// keeps the file's last 4096 bytes).
pub const MESSAGE_LIMIT: usize = 4096;

/// The bytes of termination messages a kubelet keeps per pod. Its status
/// manager shares them evenly among the pod's containers, init containers
/// included, keeping the *first* share of each message.
pub const POD_MESSAGE_LIMIT: usize = 12 * 1024;

/// What a kubelet keeps of one container's termination message in a pod
/// of `containers` containers (init containers included): 4096 bytes for
/// up to three, then 12 KiB shared (3072 bytes each for four).
pub fn message_share(containers: usize) -> usize {
    (POD_MESSAGE_LIMIT / containers.max(1)).min(MESSAGE_LIMIT)
}

/// Whether `name` can name an output: what an environment variable may be
/// called (`[A-Za-z_][A-Za-z0-9_]*`), so an output can also be an input.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The names a declaration lists (comma or space separated), in order,
/// without repeats; and the ones that are not valid names.
pub fn declared(value: &str) -> (Vec<String>, Vec<String>) {
    let mut names: Vec<String> = Vec::new();
    let mut invalid = Vec::new();
    for name in value.split([',', ' ', '\n', '\t']).map(str::trim).filter(|n| !n.is_empty()) {
        if !valid_name(name) {
            invalid.push(name.to_owned());
        } else if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    (names, invalid)
}

/// Why a termination message could not be read as outputs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error(
        "the termination message is {0} bytes, the most a kubelet keeps is {MESSAGE_LIMIT}, so its start was cut off; write fewer or shorter outputs there, or print the long ones as `::polysync-output NAME=VALUE` log lines"
    )]
    TooLong(usize),
    #[error(
        "the termination message is {len} bytes, and a kubelet keeps only the first {share} bytes of each container's message in a pod of {containers} containers (12 KiB per pod, init containers included), so its end was cut off and its last line dropped; write fewer or shorter outputs there, or print them as `::polysync-output NAME=VALUE` log lines"
    )]
    CutAtEnd { len: usize, share: usize, containers: usize },
    #[error(
        "the termination message is not a JSON object of strings ({0}); write {{\"NAME\": \"value\"}} or NAME=VALUE lines"
    )]
    Json(String),
    #[error(
        "line {line} of the termination message is not NAME=VALUE ({text:?}); write one NAME=VALUE per line or a JSON object"
    )]
    Line { line: usize, text: String },
}

/// Outputs from a termination message: a JSON object whose values are
/// strings (numbers and booleans are taken as their text), or `NAME=VALUE`
/// lines (blank lines and `#` comments skipped). Empty → no outputs.
///
/// A message of [`MESSAGE_LIMIT`] bytes or more was cut by the kubelet:
/// its complete `NAME=VALUE` lines after the first are still returned,
/// with [`MessageError::TooLong`].
pub fn parse_message(text: &str) -> (BTreeMap<String, String>, Option<MessageError>) {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return (BTreeMap::new(), None);
    }
    if text.len() >= MESSAGE_LIMIT {
        // The kubelet kept the end: the first line may be a fragment.
        let rest = text.split_once('\n').map_or("", |(_, r)| r);
        let (outputs, _) = parse_lines(rest);
        return (outputs, Some(MessageError::TooLong(text.len())));
    }
    if trimmed.starts_with('{') {
        return match parse_json(trimmed) {
            Ok(o) => (o, None),
            Err(e) => (BTreeMap::new(), Some(e)),
        };
    }
    parse_lines(text)
}

/// [`parse_message`] for a container of a pod of `containers` containers
/// (init containers included). From four containers on, a kubelet keeps
/// only the first [`message_share`] bytes of each message: one that long
/// was cut at its end, so its last line (perhaps a fragment) is dropped,
/// its other `NAME=VALUE` lines are returned, with
/// [`MessageError::CutAtEnd`]. (A cut inside a multi-byte character can
/// leave the message up to 3 bytes short of the share.)
pub fn parse_pod_message(text: &str, containers: usize) -> (BTreeMap<String, String>, Option<MessageError>) {
    let share = message_share(containers);
    if share < MESSAGE_LIMIT && text.len() >= share.saturating_sub(3) {
        let kept = text.rsplit_once('\n').map_or("", |(kept, _)| kept);
        let (outputs, _) = parse_lines(kept);
        return (outputs, Some(MessageError::CutAtEnd { len: text.len(), share, containers }));
    }
    parse_message(text)
}

fn parse_json(text: &str) -> Result<BTreeMap<String, String>, MessageError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| MessageError::Json(e.to_string()))?;
    let serde_json::Value::Object(map) = value else { return Err(MessageError::Json("not an object".into())) };
    let mut outputs = BTreeMap::new();
    for (name, value) in map {
        let text = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => return Err(MessageError::Json(format!("the value of {name:?} is {other}, not a string"))),
        };
        if !valid_name(&name) {
            return Err(MessageError::Json(format!("{name:?} is not a valid output name")));
        }
        outputs.insert(name, text);
    }
    Ok(outputs)
}

fn parse_lines(text: &str) -> (BTreeMap<String, String>, Option<MessageError>) {
    let mut outputs = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((name, value)) if valid_name(name.trim()) => {
                outputs.insert(name.trim().to_owned(), value.to_owned());
            }
            _ => {
                let text: String = line.chars().take(80).collect();
                return (outputs, Some(MessageError::Line { line: i + 1, text }));
            }
        }
    }
    (outputs, None)
}

/// Outputs from `::polysync-output NAME=VALUE` log lines (leading blanks
/// allowed; a later line for the same name wins). Lines that look like a
/// marker but name nothing valid are skipped.
pub fn parse_markers(log: &str) -> BTreeMap<String, String> {
    let mut outputs = BTreeMap::new();
    for line in log.lines() {
        if let Some((name, value)) = marker(line) {
            outputs.insert(name.to_owned(), value.to_owned());
        }
    }
    outputs
}

/// The output a log line sets, if it is a marker.
pub fn marker(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim_start().strip_prefix(MARKER)?;
    let (name, value) = rest.split_once('=')?;
    let value = value.trim_end_matches(['\r', '\n']);
    valid_name(name.trim()).then(|| (name.trim(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn declarations() {
        assert_eq!(declared("ROWS, REPORT_URL ROWS,,"), (vec!["ROWS".into(), "REPORT_URL".into()], vec![]));
        assert_eq!(declared("ok, 9bad, a-b").1, ["9bad", "a-b"]);
    }

    #[test]
    fn json_and_lines() {
        assert_eq!(
            parse_message(r#"{"ROWS": "42", "N": 7, "OK": true}"#),
            (map(&[("N", "7"), ("OK", "true"), ("ROWS", "42")]), None)
        );
        assert_eq!(
            parse_message("ROWS=42\n\n# note\nURL=http://x/?a=b\n"),
            (map(&[("ROWS", "42"), ("URL", "http://x/?a=b")]), None)
        );
        assert_eq!(parse_message("  \n"), (BTreeMap::new(), None));
    }

    #[test]
    fn malformed_messages_say_where() {
        let (out, err) = parse_message("ROWS=1\nsomething went wrong\n");
        assert_eq!(out, map(&[("ROWS", "1")]));
        assert!(matches!(err, Some(MessageError::Line { line: 2, .. })), "{err:?}");
        assert!(matches!(parse_message("{\"A\": [1]}").1, Some(MessageError::Json(_))));
        assert!(matches!(parse_message("{not json").1, Some(MessageError::Json(_))));
    }

    #[test]
    fn a_cut_message_keeps_its_whole_lines() {
        let long = format!("{}\nLAST=1\n", "X=".to_owned() + &"y".repeat(MESSAGE_LIMIT));
        let cut = &long[long.len() - MESSAGE_LIMIT..];
        let (out, err) = parse_message(cut);
        assert_eq!(out, map(&[("LAST", "1")]));
        assert_eq!(err, Some(MessageError::TooLong(MESSAGE_LIMIT)));
        assert!(err.unwrap().to_string().contains("4096"));
    }

    #[test]
    fn markers() {
        let log = "start\n::polysync-output ROWS=1\n  ::polysync-output ROWS=2\n::polysync-output bad-name=3\n::polysync-output URL=a=b\n";
        assert_eq!(parse_markers(log), map(&[("ROWS", "2"), ("URL", "a=b")]));
    }

    #[test]
    fn a_pod_of_four_or_more_containers_keeps_less_and_cuts_the_end() {
        assert_eq!((message_share(1), message_share(3), message_share(4), message_share(6)), (4096, 4096, 3072, 2048));
        let full: String = (0..400).map(|i| format!("K{i}=value-{i}\n")).collect();
        let cut = &full[..message_share(4)];
        let (outputs, err) = parse_pod_message(cut, 4);
        assert!(matches!(err, Some(MessageError::CutAtEnd { share: 3072, containers: 4, .. })), "{err:?}");
        assert_eq!(outputs["K0"], "value-0");
        let last_whole = cut.trim_end_matches(|c| c != '\n').lines().last().unwrap();
        let (name, value) = last_whole.split_once('=').unwrap();
        assert_eq!(outputs[name], value, "every whole line is kept");
        assert_eq!(
            outputs.len(),
            last_whole.trim_start_matches('K').split('=').next().unwrap().parse::<usize>().unwrap() + 1
        );
        // Small messages, and pods of up to three containers, are read as before.
        assert_eq!(parse_pod_message("ROWS=1\n", 6), parse_message("ROWS=1\n"));
        assert_eq!(parse_pod_message(cut, 3), parse_message(cut));
    }
}
