//! Response bodies: whole JSON documents, streams, and `Status` errors.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::Value;

use crate::error::ApiError;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = BoxBody<Bytes, BoxError>;

pub fn bytes(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()).map_err(|never| match never {}).boxed())
        .expect("static response parts are valid")
}

pub fn json(status: StatusCode, value: &Value) -> Response<Body> {
    bytes(status, "application/json", serde_json::to_vec(value).unwrap_or_default())
}

pub fn error(err: &ApiError) -> Response<Body> {
    let mut response =
        json(StatusCode::from_u16(err.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), &err.to_status());
    if let Some(after) = err.retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, after.into());
    }
    response
}

/// A streamed body; an `Err` item cuts the connection mid-response, as a
/// dropped connection would.
pub fn stream(
    content_type: &str,
    chunks: impl futures::Stream<Item = Result<Bytes, BoxError>> + Send + Sync + 'static,
) -> Response<Body> {
    use futures::StreamExt;
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(BodyExt::boxed(StreamBody::new(chunks.map(|c| c.map(Frame::data)))))
        .expect("static response parts are valid")
}
