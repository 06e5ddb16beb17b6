//! `/sandbox/*`: the switches a test or benchmark flips at run time.
//!
//! * `GET /sandbox/stats` — request counts by verb and resource;
//!   `DELETE /sandbox/stats` resets them.
//! * `GET /sandbox/faults`, `PUT /sandbox/faults` — the fault settings.

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde_json::json;

use super::Server;
use super::response::{self, Body};
use crate::error::ApiError;
use crate::faults::FaultSettings;

pub(super) fn handle(server: &Server, method: &Method, path: &str, body: &Bytes) -> Result<Response<Body>, ApiError> {
    match (method.as_str(), path.trim_end_matches('/')) {
        ("GET", "stats") => Ok(response::json(
            StatusCode::OK,
            &json!({"total": server.stats.total(), "requests": server.stats.snapshot()}),
        )),
        ("DELETE", "stats") => {
            server.stats.reset();
            Ok(response::json(StatusCode::OK, &json!({})))
        }
        ("GET", "faults") => {
            Ok(response::json(StatusCode::OK, &serde_json::to_value(server.faults.get()).unwrap_or_default()))
        }
        ("PUT", "faults") => {
            let settings: FaultSettings =
                serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("fault settings: {e}")))?;
            server.faults.set(settings.clone());
            Ok(response::json(StatusCode::OK, &serde_json::to_value(settings).unwrap_or_default()))
        }
        _ => Err(ApiError::not_found_path(&format!("/sandbox/{path}"))),
    }
}
