//! `GET pods/{name}/log`: `container`, `tailLines`, `limitBytes`,
//! `timestamps` and `follow`, with the real errors for a missing container
//! name or a container that has not started.

use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::Value;

use crate::api::request::{Query, Target};
use crate::api::response::{self, Body, BoxError};
use crate::error::ApiError;
use crate::resources::Kind;
use crate::store::Key;

pub(crate) fn handle(
    server: &Arc<crate::api::Server>,
    target: &Target,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let ns = target.namespace.as_deref().unwrap_or_default();
    let name = target.name.as_deref().unwrap_or_default();
    let pod = server.store.get(Kind::Pod, &Key::new(ns, name)).ok_or_else(|| ApiError::not_found(Kind::Pod, name))?;
    let names = |list: &str| -> Vec<String> {
        pod["spec"][list]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    };
    let (main, init) = (names("containers"), names("initContainers"));
    let container = match query.get("container") {
        Some(c) => {
            if !main.iter().chain(&init).any(|n| n == c) {
                return Err(ApiError::bad_request(format!("container {c} is not valid for pod {name}")));
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
            return Err(ApiError::bad_request(msg));
        }
    };
    let Some(log) = server.logs.get(ns, name, &container) else {
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
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {detail}"
        )));
    };
    let tail = query.number("tailLines")?;
    let mut limit = query.number("limitBytes")?;
    let timestamps = query.flag("timestamps");
    let follow = query.flag("follow");
    let format = move |(ts, text): &(String, String)| -> String {
        if timestamps { format!("{ts} {text}") } else { text.clone() }
    };
    let lines = log.read(0);
    let skip = tail.map_or(0, |t| lines.len().saturating_sub(t as usize));
    let mut first = String::new();
    for line in &lines[skip..] {
        first.push_str(&format(line));
    }
    if let Some(l) = limit {
        first.truncate(floor_char_boundary(&first, l as usize));
        limit = Some(l.saturating_sub(first.len() as u64));
    }
    if !follow || log.is_finished() && pod_is_done(&pod) {
        return Ok(response::bytes(StatusCode::OK, "text/plain", first));
    }
    let progress = log.subscribe();
    let sent = lines.len();
    let head = futures::stream::once(async move { Ok::<_, BoxError>(Bytes::from(first)) });
    let rest = futures::stream::unfold(
        (log, sent, limit, progress),
        move |(log, mut from, mut limit, mut progress)| async move {
            loop {
                if limit == Some(0) {
                    return None;
                }
                // Read after looking at `finished`, so lines written just before
                // the container ended are never lost.
                let finished = progress.borrow_and_update().1;
                let new = log.read(from);
                if !new.is_empty() {
                    from += new.len();
                    let mut chunk: String = new.iter().map(format).collect();
                    if let Some(l) = limit {
                        chunk.truncate(floor_char_boundary(&chunk, l as usize));
                        limit = Some(l.saturating_sub(chunk.len() as u64));
                    }
                    return Some((Ok(Bytes::from(chunk)), (log, from, limit, progress)));
                }
                if finished {
                    return None;
                }
                if progress.changed().await.is_err() {
                    return None;
                }
            }
        },
    );
    Ok(response::stream("text/plain", futures::StreamExt::chain(head, rest)))
}

fn pod_is_done(pod: &Value) -> bool {
    matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

fn floor_char_boundary(s: &str, at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    (0..=at).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0)
}
