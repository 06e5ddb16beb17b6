//! `GET pods/{name}/log`: the query parsed here, the log read by the
//! kubelet's [`container_log`] (which the node agent serves too).

use std::sync::Arc;

use http::{Response, StatusCode};

use super::request::{Query, Target};
use super::response::{self, Body, BoxError};
use crate::error::ApiError;
use crate::kubelet::logs::{LogBody, LogQuery, container_log};
use crate::resources::Kind;
use crate::store::Key;

/// From `pods/log` query parameters.
fn parse(query: &Query) -> Result<LogQuery, ApiError> {
    Ok(LogQuery {
        container: query.get("container").map(str::to_owned),
        tail_lines: query.number("tailLines")?,
        limit_bytes: query.number("limitBytes")?,
        timestamps: query.flag("timestamps"),
        follow: query.flag("follow"),
        previous: query.flag("previous"),
    })
}

/// `GET pods/{name}/log` of the sandbox.
pub(crate) fn handle(server: &Arc<super::Server>, target: &Target, query: &Query) -> Result<Response<Body>, ApiError> {
    let ns = target.namespace.as_deref().unwrap_or_default();
    let name = target.name.as_deref().unwrap_or_default();
    let pod = server.store.get(Kind::Pod, &Key::new(ns, name)).ok_or_else(|| ApiError::not_found(Kind::Pod, name))?;
    match container_log(&server.logs, &pod, &parse(query)?).map_err(ApiError::bad_request)? {
        LogBody::Text(text) => Ok(response::bytes(StatusCode::OK, "text/plain", text)),
        LogBody::Follow(stream) => {
            Ok(response::stream("text/plain", futures::StreamExt::map(stream, Ok::<_, BoxError>)))
        }
    }
}
