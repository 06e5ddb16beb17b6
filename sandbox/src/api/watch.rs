//! Watches: newline-delimited `{"type", "object"}` events from a
//! resourceVersion, with label/field selectors (an object that stops
//! matching is reported DELETED, one that starts matching ADDED), BOOKMARKs
//! on request, `timeoutSeconds`, `410 Expired` for versions older than the
//! kept history, and streaming lists (`sendInitialEvents=true`: the
//! objects, then a BOOKMARK marked `k8s.io/initial-events-end`), which
//! kubectl 1.34 and later and client-go informers use.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::Server;
use super::request::{Query, Target};
use super::response::{self, Body, BoxError};
use crate::error::{ApiError, Cause};
use crate::store::selector::{FieldSelector, LabelSelector};
use crate::store::{Change, EventType};

/// Default watch length when the client sets no `timeoutSeconds`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

struct Filter {
    kind: crate::resources::Kind,
    namespace: Option<String>,
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
}

impl Filter {
    fn matches(&self, object: &Value) -> bool {
        self.namespace.as_deref().is_none_or(|ns| object["metadata"]["namespace"] == ns)
            && self.labels.as_ref().is_none_or(|s| s.matches(object))
            && self.fields.as_ref().is_none_or(|s| s.matches(object))
    }

    /// What a change looks like to this watch, if anything.
    fn translate(&self, change: &Change) -> Option<&'static str> {
        if change.kind != self.kind {
            return None;
        }
        let now = self.matches(&change.object);
        match change.event {
            EventType::Added => now.then_some("ADDED"),
            EventType::Deleted => now.then_some("DELETED"),
            EventType::Modified => {
                let before = change.previous.as_deref().is_some_and(|p| self.matches(p));
                match (before, now) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => Some("ADDED"),
                    (true, false) => Some("DELETED"),
                    (false, false) => None,
                }
            }
        }
    }
}

fn line(event: &str, object: &Value) -> Bytes {
    line_of(event, &serde_json::to_vec(object).unwrap_or_default())
}

fn line_of(event: &str, object_json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(object_json.len() + 32);
    out.extend_from_slice(br#"{"type":""#);
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(br#"","object":"#);
    out.extend_from_slice(object_json);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

/// Renders object events as objects, or as one-row Tables (column
/// definitions only in the first, as the real server sends them).
struct Render {
    kind: crate::resources::Kind,
    table: Option<super::table::Include>,
    first: std::cell::Cell<bool>,
}

impl Render {
    /// A change's event: its object's JSON is shared by every watch.
    fn change(&self, event: &str, change: &Change) -> Bytes {
        match self.table {
            None => line_of(event, change.object_json()),
            Some(_) => self.event(event, &change.object),
        }
    }

    fn event(&self, event: &str, object: &Value) -> Bytes {
        let Some(include) = self.table else {
            return line(event, object);
        };
        let rv = object["metadata"]["resourceVersion"].clone();
        let t = super::table::table(
            self.kind,
            &[object],
            json!({"resourceVersion": rv}),
            self.first.replace(false),
            include,
        );
        line(event, &t)
    }
}

fn error_line(err: &ApiError) -> Bytes {
    line("ERROR", &err.to_status())
}

#[derive(Debug)]
struct Cut;

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("watch connection cut by fault injection")
    }
}

impl std::error::Error for Cut {}

pub(super) fn watch(
    server: &Arc<Server>,
    target: &Target,
    query: &Query,
    as_table: Option<super::table::Include>,
) -> Result<Response<Body>, ApiError> {
    let render = Render { kind: target.kind, table: as_table, first: std::cell::Cell::new(true) };
    let filter = Filter {
        kind: target.kind,
        namespace: target.namespace.clone(),
        labels: query.get("labelSelector").map(LabelSelector::parse).transpose()?,
        fields: query.get("fieldSelector").map(|f| FieldSelector::parse(target.kind, f)).transpose()?,
    };
    let timeout = query.number("timeoutSeconds")?.map_or(DEFAULT_TIMEOUT, Duration::from_secs);
    let bookmarks = query.flag("allowWatchBookmarks");
    let send_initial = match query.get("sendInitialEvents") {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => return Err(ApiError::bad_request(format!("invalid sendInitialEvents: {other:?}"))),
    };
    // The real server's rules for the two, in its words.
    let mut causes = Vec::new();
    let rv_match = query.get("resourceVersionMatch");
    if send_initial.is_some() && rv_match != Some("NotOlderThan") {
        causes.push(Cause::forbidden(
            "resourceVersionMatch",
            "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ));
    }
    if rv_match.is_some() && send_initial.is_none() {
        causes.push(Cause::forbidden(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        ));
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid_list_options(causes));
    }
    let cut_after = server.faults.get().watch_cut_after;
    let (tx, rx) = mpsc::channel::<Result<Bytes, BoxError>>(1024);

    // Decide the starting point now, so a 410 is the first thing sent.
    let (initial, start_rv, receiver) = match query.get("resourceVersion") {
        // A streaming list: the state now (never older than any version
        // asked for), then the mark that says it is complete.
        _ if send_initial == Some(true) => {
            let (objects, rv, receiver) = server.store.snapshot_and_subscribe(target.kind, target.namespace.as_deref());
            let mut lines: Vec<Bytes> =
                objects.iter().filter(|o| filter.matches(o)).map(|o| render.event("ADDED", o)).collect();
            if bookmarks {
                let mark = json!({
                    "kind": filter.kind.kind(),
                    "apiVersion": filter.kind.api_version(),
                    "metadata": {
                        "resourceVersion": rv.to_string(),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                });
                lines.push(line("BOOKMARK", &mark));
            }
            (lines, rv, Some(receiver))
        }
        None | Some("0") if send_initial == Some(false) => {
            let (_, rv, receiver) = server.store.snapshot_and_subscribe(target.kind, target.namespace.as_deref());
            (Vec::new(), rv, Some(receiver))
        }
        None | Some("0") => {
            let (objects, rv, receiver) = server.store.snapshot_and_subscribe(target.kind, target.namespace.as_deref());
            let lines: Vec<Bytes> =
                objects.iter().filter(|o| filter.matches(o)).map(|o| render.event("ADDED", o)).collect();
            (lines, rv, Some(receiver))
        }
        Some(rv) => {
            let rv: u64 = rv.parse().map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?;
            match server.store.watch_from(rv) {
                Ok((backlog, receiver)) => {
                    let lines = backlog
                        .iter()
                        .filter_map(|c| filter.translate(c).map(|t| render.event(t, &c.object)))
                        .collect();
                    let last = backlog.last().map_or(rv, |c| c.rv);
                    (lines, last, Some(receiver))
                }
                Err(oldest) => (vec![error_line(&ApiError::gone(rv, oldest))], rv, None),
            }
        }
    };

    let bookmark_interval = server.bookmark_interval;
    tokio::spawn(async move {
        let mut sent = 0u64;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let cut = |sent: u64| cut_after.is_some_and(|n| sent >= n);
        // Let the server flush what was sent, then drop the connection.
        let cut_now = |tx: mpsc::Sender<Result<Bytes, BoxError>>| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = tx.send(Err(Box::new(Cut))).await;
        };
        for l in initial {
            if tx.send(Ok(l)).await.is_err() {
                return;
            }
            sent += 1;
            if cut(sent) {
                cut_now(tx).await;
                return;
            }
        }
        let Some(mut receiver) = receiver else { return };
        let mut last_rv = start_rv;
        let mut tick = tokio::time::interval(bookmark_interval);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = tick.tick(), if bookmarks => {
                    let mark = json!({
                        "kind": filter.kind.kind(),
                        "apiVersion": filter.kind.api_version(),
                        "metadata": {"resourceVersion": last_rv.to_string()},
                    });
                    if tx.send(Ok(line("BOOKMARK", &mark))).await.is_err() {
                        return;
                    }
                }
                change = receiver.recv() => match change {
                    Ok(change) => {
                        if change.rv <= last_rv {
                            continue;
                        }
                        last_rv = change.rv;
                        if let Some(event) = filter.translate(&change) {
                            if tx.send(Ok(render.change(event, &change))).await.is_err() {
                                return;
                            }
                            sent += 1;
                            if cut(sent) {
                                cut_now(tx).await;
                                return;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx.send(Ok(error_line(&ApiError::gone(last_rv, last_rv + 1)))).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    Ok(response::stream(if as_table.is_some() { super::table::CONTENT_TYPE } else { "application/json" }, body))
}
