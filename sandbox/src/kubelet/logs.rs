//! Container logs as a kubelet serves them (`container`, `tailLines`,
//! `limitBytes`, `timestamps`, `follow`, `previous`), with the real errors
//! for a missing container name, a container that has not started and a
//! previous instance that does not exist. The sandbox's `pods/log` and the
//! node agent's `/containerLogs` both answer through [`container_log`].

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use super::{ContainerLog, LogStore};

/// What a log read asks for.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub container: Option<String>,
    pub tail_lines: Option<u64>,
    pub limit_bytes: Option<u64>,
    pub timestamps: bool,
    pub follow: bool,
    pub previous: bool,
}

/// A log read's answer: all of it now, or a stream that follows the container.
pub enum LogBody {
    Text(String),
    Follow(std::pin::Pin<Box<dyn futures::Stream<Item = Bytes> + Send + Sync>>),
}

impl std::fmt::Debug for LogBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Text(t) => f.debug_tuple("Text").field(t).finish(),
            Self::Follow(_) => f.write_str("Follow(..)"),
        }
    }
}

/// The log of one of `pod`'s containers, or the message of the 400 a
/// kubelet answers.
pub fn container_log(logs: &LogStore, pod: &Value, q: &LogQuery) -> Result<LogBody, String> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let names = |list: &str| -> Vec<String> {
        pod["spec"][list]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    };
    let (main, init) = (names("containers"), names("initContainers"));
    let container = match &q.container {
        Some(c) => {
            if !main.iter().chain(&init).any(|n| n == c) {
                return Err(format!("container {c} is not valid for pod {name}"));
            }
            c.to_owned()
        }
        None if main.len() == 1 => main[0].clone(),
        None => {
            let mut msg =
                format!("a container name must be specified for pod {name}, choose one of: [{}]", main.join(" "));
            if !init.is_empty() {
                msg.push_str(&format!(" or one of the init containers: [{}]", init.join(" ")));
            }
            return Err(msg);
        }
    };
    let Some(log) = logs.get(ns, name, &container) else {
        if q.previous {
            return Err(format!("previous terminated container \"{container}\" in pod \"{name}\" not found"));
        }
        let reason = ["containerStatuses", "initContainerStatuses"]
            .iter()
            .flat_map(|l| pod["status"][*l].as_array().cloned().unwrap_or_default())
            .find(|s| s["name"] == container.as_str())
            .and_then(|s| s["state"]["waiting"]["reason"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "ContainerCreating".to_owned());
        let detail = match reason.as_str() {
            "ErrImagePull" | "ImagePullBackOff" => "trying and failing to pull image".to_owned(),
            other => other.to_owned(),
        };
        return Err(format!("container \"{container}\" in pod \"{name}\" is waiting to start: {detail}"));
    };
    let Some(attempt) = log.attempt(q.previous) else {
        return Err(format!("previous terminated container \"{container}\" in pod \"{name}\" not found"));
    };
    let timestamps = q.timestamps;
    let format = move |(_, ts, text): &super::logstore::Line| -> String {
        if timestamps { format!("{ts} {text}") } else { text.clone() }
    };
    let (lines, sent) = log.read(attempt, 0);
    let skip = q.tail_lines.map_or(0, |t| lines.len().saturating_sub(t as usize));
    let mut first = String::new();
    for line in &lines[skip..] {
        first.push_str(&format(line));
    }
    let mut limit = q.limit_bytes;
    if let Some(l) = limit {
        first.truncate(floor_char_boundary(&first, l as usize));
        limit = Some(l.saturating_sub(first.len() as u64));
    }
    let pod_done = matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
    if !q.follow || q.previous || log.is_finished() && pod_done {
        return Ok(LogBody::Text(first));
    }
    Ok(LogBody::Follow(Box::pin(futures::StreamExt::chain(
        futures::stream::once(async move { Bytes::from(first) }),
        follow(log, attempt, sent, limit, format),
    ))))
}

/// Lines of `attempt` written after position `from`, until the container ends.
fn follow(
    log: Arc<ContainerLog>,
    attempt: usize,
    from: usize,
    limit: Option<u64>,
    format: impl Fn(&super::logstore::Line) -> String + Send + Sync + 'static,
) -> impl futures::Stream<Item = Bytes> + Send + Sync {
    let progress = log.subscribe();
    futures::stream::unfold(
        (log, from, limit, progress, format),
        move |(log, mut from, mut limit, mut progress, format)| async move {
            loop {
                if limit == Some(0) {
                    return None;
                }
                // Read after looking at `finished`, so lines written just before
                // the container ended are never lost.
                let finished = progress.borrow_and_update().1;
                let (new, next) = log.read(attempt, from);
                from = next;
                if !new.is_empty() {
                    let mut chunk: String = new.iter().map(&format).collect();
                    if let Some(l) = limit {
                        chunk.truncate(floor_char_boundary(&chunk, l as usize));
                        limit = Some(l.saturating_sub(chunk.len() as u64));
                    }
                    return Some((Bytes::from(chunk), (log, from, limit, progress, format)));
                }
                if finished {
                    return None;
                }
                if progress.changed().await.is_err() {
                    return None;
                }
            }
        },
    )
}

fn floor_char_boundary(s: &str, at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    (0..=at).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0)
}
