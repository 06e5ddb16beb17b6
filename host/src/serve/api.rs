//! The `/v1` handlers. Each parses its input, calls one workflow of
//! [`crate::runs`] (or one store query), and renders the typed outcome as
//! JSON, a stream, or a problem document. The OpenAPI document is
//! generated from these declarations ([`ApiDoc`]).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use polysync_provider_api::{ClustersRequest, DiscoverRequest, EventsRequest, LogRequest};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::AppState;
use super::problem::{ApiError, Problem};
use crate::runs::{self, Cancelled, RunLogs, StartRun};
use crate::store::{DeleteAfter, EntryFilter, EntryState, RunFilter, RunState, StoredEntry, StoredRun, SyncRecord};

type ApiResult<T> = Result<T, ApiError>;

/// The OpenAPI 3.1 document of `/v1`.
#[derive(OpenApi, Debug)]
#[openapi(
    info(title = "polysync", description = "Import the batch jobs that exist on AKS, EKS, ECS and Kubernetes as catalog entries, and run parameterized reruns of them."),
    paths(
        list_connections, test_connection, list_clusters, start_sync, get_sync, list_entries, get_entry,
        create_run, list_runs, get_run, cancel_run, run_logs, run_events, run_status_stream, status_stream
    ),
    components(schemas(
        Problem, ConnectionView, TestView, ClusterView, SyncRecord, EntryView, ParameterView, EntryList, EntryState,
        CreateRun, StoredRun, RunState, DeleteAfter, RunList, CancelView, ServerSentEvent
    )),
    modifiers(&Security),
    security(("bearer" = [])),
    tags(
        (name = "connections", description = "Configured connections and their clusters"),
        (name = "catalog", description = "Discovery and the entries it found"),
        (name = "runs", description = "Parameterized reruns, their logs, events and status")
    )
)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // What any operation may answer: no or a wrong token (401), a
        // catalog that cannot be reached (503).
        let problem = |what: &str| {
            ResponseBuilder::new()
                .description(what)
                .content(
                    "application/problem+json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                op.responses
                    .responses
                    .entry("401".into())
                    .or_insert_with(|| problem("no or an unknown bearer token").into());
                op.responses
                    .responses
                    .entry("503".into())
                    .or_insert_with(|| problem("the catalog cannot be reached; retry").into());
            }
        }
    }
}

// ---- views

/// A configured connection: a name and its provider (never its settings).
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    pub name: String,
    pub provider: String,
}

/// A connection test: connected, and the first entries it found.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestView {
    pub connection: String,
    pub ok: bool,
    pub sample: Vec<String>,
}

/// A cluster a cloud connection's credentials reach.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterView {
    pub name: String,
    pub location: String,
    pub id: Option<String>,
}

/// One parameter of an entry (secret defaults redacted).
#[derive(Debug, Serialize, ToSchema)]
pub struct ParameterView {
    pub name: String,
    pub default: Option<String>,
    pub direction: String,
    pub data_type: String,
    pub description: String,
}

/// A catalog entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryView {
    pub connection: String,
    pub external_id: String,
    pub kind: String,
    pub display_name: String,
    pub namespace: Option<String>,
    pub cluster: Option<String>,
    pub parameters: Vec<ParameterView>,
    pub labels: BTreeMap<String, String>,
    pub state: EntryState,
    pub first_seen: String,
    pub last_seen: String,
}

/// A page of entries; `next_after` continues it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryList {
    pub entries: Vec<EntryView>,
    pub next_after: Option<String>,
}

/// A page of runs, newest first; `next_before` continues it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<StoredRun>,
    pub next_before: Option<i64>,
}

/// What cancelling did: `Withdrawn` (never submitted), or the platform's
/// answer (`Cancelled`, `AlreadyFinished`, ...).
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelView {
    pub outcome: String,
    pub run: StoredRun,
}

/// One Server-Sent Event as a stream carries it: `event` names it
/// (`status`, `event`, `error`), `data` is one JSON document (a run, or a
/// platform event), `id` resumes a stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerSentEvent {
    pub event: String,
    /// A JSON document, as text.
    pub data: String,
    pub id: Option<String>,
    pub retry: Option<u32>,
}

/// A run to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    pub connection: String,
    pub entry: String,
    /// Values for the entry's parameters, by name.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    #[serde(default)]
    pub delete_after: Option<DeleteAfter>,
    /// Fail the run if it has not started this long after submission
    /// (`"10m"`, `"90s"`).
    #[serde(default)]
    pub startup_timeout: Option<String>,
    /// Where the run's final status is POSTed, signed (see the README).
    #[serde(default)]
    pub callback_url: Option<String>,
}

// ---- helpers

fn entry_view(host: &crate::Host, e: &StoredEntry) -> EntryView {
    let e = host.config.secrets.entry(e);
    let word = |v: serde_json::Value| v.as_str().map(str::to_owned).unwrap_or_default();
    EntryView {
        connection: e.connection,
        external_id: e.entry.external_id,
        kind: word(serde_json::to_value(e.entry.kind).unwrap_or_default()),
        display_name: e.entry.display_name,
        namespace: e.entry.namespace,
        cluster: e.entry.cluster,
        parameters: e
            .entry
            .parameters
            .into_iter()
            .map(|p| ParameterView {
                name: p.name,
                default: p.default,
                direction: word(serde_json::to_value(p.direction).unwrap_or_default()),
                data_type: word(serde_json::to_value(p.data_type).unwrap_or_default()),
                description: p.description,
            })
            .collect(),
        labels: e.entry.labels,
        state: e.state,
        first_seen: e.first_seen,
        last_seen: e.last_seen,
    }
}

fn run_view(host: &crate::Host, run: &StoredRun) -> StoredRun {
    host.config.secrets.run(run)
}

fn run_id(raw: &str) -> ApiResult<i64> {
    raw.trim_start_matches('#')
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::not_found(format!("no run {raw:?}: runs are numbered 1, 2, ...")))
}

async fn run_of(state: &AppState, raw: &str) -> ApiResult<StoredRun> {
    let id = run_id(raw)?;
    state
        .host
        .store()
        .await?
        .run(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run #{id}; list them with GET /v1/runs")))
}

fn limit_of(q: &HashMap<String, String>, default: usize) -> ApiResult<usize> {
    match q.get("limit") {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad_request(format!("limit={v:?}: give a whole number from 1 to 1000"))),
    }
}

fn flag_of(q: &HashMap<String, String>, key: &str) -> ApiResult<bool> {
    match q.get(key).map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(v) => Err(ApiError::bad_request(format!("{key}={v:?}: give true or false"))),
    }
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    (status, axum::Json(value)).into_response()
}

// ---- connections

/// The configured connections (names and providers only).
#[utoipa::path(get, path = "/v1/connections", tag = "connections",
    responses((status = 200, body = Vec<ConnectionView>), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn list_connections(State(state): State<AppState>) -> Response {
    let list: Vec<ConnectionView> = state
        .host
        .config
        .connections
        .values()
        .map(|c| ConnectionView { name: c.name.clone(), provider: c.provider.clone() })
        .collect();
    json(StatusCode::OK, &list)
}

/// Connect and read the first page of entries.
#[utoipa::path(post, path = "/v1/connections/{name}/test", tag = "connections",
    params(("name" = String, Path, description = "connection name")),
    responses((status = 200, body = TestView), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 502, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn test_connection(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    let provider = provider_of(&state, &name)?;
    let started = Instant::now();
    let page = provider.discover(DiscoverRequest { page_token: None, page_size: Some(5) }).await;
    state.metrics.observe("discover", started.elapsed().as_secs_f64());
    let page = page.map_err(crate::Error::from)?;
    let sample = page.entries.iter().map(|e| e.external_id.clone()).collect();
    Ok(json(StatusCode::OK, &TestView { connection: name, ok: true, sample }))
}

fn provider_of(state: &AppState, name: &str) -> ApiResult<std::sync::Arc<dyn polysync_provider_api::Provider>> {
    if state.host.config.connection(name).is_err() {
        return Err(ApiError::not_found(format!("no connection {name:?}; list them with GET /v1/connections")));
    }
    Ok(state.host.provider(name)?)
}

/// The clusters a cloud connection's credentials reach.
#[utoipa::path(get, path = "/v1/connections/{name}/clusters", tag = "connections",
    params(("name" = String, Path, description = "connection name")),
    responses((status = 200, body = Vec<ClusterView>), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 502, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn list_clusters(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    let provider = provider_of(&state, &name)?;
    let mut clusters = Vec::new();
    let mut request = ClustersRequest::default();
    loop {
        let page = provider.list_clusters(request.clone()).await.map_err(crate::Error::from)?;
        clusters.extend(page.clusters.into_iter().map(|c| ClusterView {
            name: c.name,
            location: c.location,
            id: c.id,
        }));
        match page.next_page_token {
            Some(token) => request.page_token = Some(token),
            None => break,
        }
    }
    Ok(json(StatusCode::OK, &clusters))
}

// ---- catalog

/// Start a discovery of the connection; it runs on after the answer.
/// One sync per connection at a time (409 while one runs).
#[utoipa::path(post, path = "/v1/connections/{name}/syncs", tag = "catalog",
    params(("name" = String, Path, description = "connection name")),
    responses((status = 202, body = SyncRecord, description = "started; poll Location for progress"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn start_sync(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    if state.host.config.connection(&name).is_err() {
        return Err(ApiError::not_found(format!("no connection {name:?}; list them with GET /v1/connections")));
    }
    let id = runs::start_sync(&state.host, &name).await?;
    let host = state.host.clone();
    tokio::spawn(async move {
        if let Err(e) = runs::continue_sync(&host, &name, id, None, |_, _| {}).await {
            tracing::warn!(sync = id, "sync of {name} failed: {e}");
        }
    });
    let record = state.host.store().await?.sync_record(id).await?.unwrap_or_default();
    let mut response = json(StatusCode::ACCEPTED, &record);
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/syncs/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// A sync's progress and result.
#[utoipa::path(get, path = "/v1/syncs/{id}", tag = "catalog",
    params(("id" = i64, Path, description = "sync number")),
    responses((status = 200, body = SyncRecord), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_sync(State(state): State<AppState>, Path(raw): Path<String>) -> ApiResult<Response> {
    let id: i64 = raw.parse().map_err(|_| ApiError::not_found(format!("no sync {raw:?}")))?;
    let record = state.host.store().await?.sync_record(id).await?;
    let record = record.ok_or_else(|| ApiError::not_found(format!("no sync {id}")))?;
    Ok(json(StatusCode::OK, &record))
}

/// Filters of the entry list, for the OpenAPI document only: the handler
/// reads the query itself, so a bad value is a problem document (axum's own
/// rejection would be plain text).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct EntryQuery {
    /// Only this connection's entries.
    connection: Option<String>,
    /// `active` or `missing`.
    state: Option<String>,
    /// At most this many (1-1000, default 100).
    limit: Option<usize>,
    /// Continue after this `next_after`.
    after: Option<String>,
}

/// Catalog entries, by connection and id, a page at a time.
#[utoipa::path(get, path = "/v1/entries", tag = "catalog", params(EntryQuery),
    responses((status = 200, body = EntryList), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn list_entries(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let limit = limit_of(&q, 100)?;
    let entry_state = match q.get("state").map(String::as_str) {
        None => None,
        Some("active") => Some(EntryState::Active),
        Some("missing") => Some(EntryState::Missing),
        Some(v) => return Err(ApiError::bad_request(format!("state={v:?}: give active or missing"))),
    };
    let after =
        match q.get("after") {
            None => None,
            Some(a) => Some(a.split_once('/').map(|(c, e)| (c.to_owned(), e.to_owned())).ok_or_else(|| {
                ApiError::bad_request(format!("after={a:?}: pass the next_after of the previous page"))
            })?),
        };
    let filter =
        EntryFilter { connection: q.get("connection").cloned(), state: entry_state, after, limit: Some(limit) };
    let entries = state.host.store().await?.entries(&filter).await?;
    let next_after = (entries.len() == limit)
        .then(|| entries.last().map(|e| format!("{}/{}", e.connection, e.entry.external_id)))
        .flatten();
    let entries = entries.iter().map(|e| entry_view(&state.host, e)).collect();
    Ok(json(StatusCode::OK, &EntryList { entries, next_after }))
}

/// One entry with its parameters.
#[utoipa::path(get, path = "/v1/connections/{name}/entries/{entry}", tag = "catalog",
    params(("name" = String, Path, description = "connection name"), ("entry" = String, Path, description = "entry id")),
    responses((status = 200, body = EntryView), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_entry(
    State(state): State<AppState>,
    Path((name, entry)): Path<(String, String)>,
) -> ApiResult<Response> {
    let found = state.host.store().await?.entry(&name, &entry).await?;
    let found = found.ok_or_else(|| {
        ApiError::not_found(format!(
            "no entry {entry:?} in the catalog of {name}; start a sync with POST /v1/connections/{name}/syncs"
        ))
    })?;
    Ok(json(StatusCode::OK, &entry_view(&state.host, &found)))
}

// ---- runs

/// Create a run. With an `Idempotency-Key`, a retry returns the same run
/// (201 the first time, 200 after); the same key for a different request
/// is 409. 202: recorded, but the platform did not answer; a replica
/// finishes the submission with the same key.
#[utoipa::path(post, path = "/v1/runs", tag = "runs", request_body = CreateRun,
    params(("Idempotency-Key" = Option<String>, Header, description = "the same key returns the same run")),
    responses((status = 201, body = StoredRun, description = "created"), (status = 200, body = StoredRun, description = "the run this key created before"),
              (status = 202, body = StoredRun, description = "pending: the platform did not answer"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 413, body = Problem, content_type = "application/problem+json"),
              (status = 415, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json"),
              (status = 502, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json"),
              (status = 504, body = Problem, content_type = "application/problem+json")))]
pub async fn create_run(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_input",
            "send the run as JSON with Content-Type: application/json",
        ));
    }
    let request: CreateRun = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a run request: {e}")))?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let k = v
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .ok_or_else(|| ApiError::bad_request("Idempotency-Key must be 1-255 visible ASCII characters"))?;
            Some(k.to_owned())
        }
    };
    let startup_timeout = match &request.startup_timeout {
        None => None,
        Some(t) => {
            Some(crate::config::parse_duration(t).map_err(|e| ApiError::bad_request(format!("startup_timeout: {e}")))?)
        }
    };
    if let Some(url) = &request.callback_url {
        runs::check_callback_url(url)?;
        if state.host.config.callback_secret.is_none() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                "this server has no callback secret (callback_secret_env or callback_secret_file), so it cannot sign callbacks; configure one",
            ));
        }
    }
    if state.host.config.connection(&request.connection).is_err() {
        return Err(ApiError::not_found(format!(
            "no connection {:?}; list them with GET /v1/connections",
            request.connection
        )));
    }
    let started_at = Instant::now();
    let started = runs::start_run(
        &state.host,
        StartRun {
            connection: request.connection,
            entry: request.entry,
            parameters: request.parameters,
            idempotency_key: key,
            delete_after: request.delete_after.unwrap_or_default(),
            startup_timeout,
            callback_url: request.callback_url,
        },
    )
    .await;
    state.metrics.observe("run", started_at.elapsed().as_secs_f64());
    let started = match started {
        Ok(s) => s,
        Err(e) => {
            state.metrics.submission("refused");
            return Err(e.into());
        }
    };
    // This replica follows what it created, at once.
    if !started.run.is_final() {
        let _ = state.adopt.send(started.run.clone());
    }
    let (status, outcome) = match (&started.pending, started.created) {
        (Some(_), _) => (StatusCode::ACCEPTED, "pending"),
        (None, true) => (StatusCode::CREATED, "created"),
        (None, false) => (StatusCode::OK, "existing"),
    };
    state.metrics.submission(outcome);
    let mut response = json(status, &run_view(&state.host, &started.run));
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/runs/{}", started.run.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Filters of the run list, for the OpenAPI document only (see
/// [`EntryQuery`]).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct RunQuery {
    connection: Option<String>,
    entry: Option<String>,
    /// A run state (`Running`, `Failed`, ...).
    state: Option<String>,
    /// At most this many (1-1000, default 100).
    limit: Option<usize>,
    /// Only runs numbered below this: pass `next_before`.
    before: Option<i64>,
}

/// Runs, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(RunQuery),
    responses((status = 200, body = RunList), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn list_runs(State(state): State<AppState>, Query(q): Query<HashMap<String, String>>) -> ApiResult<Response> {
    let limit = limit_of(&q, 100)?;
    let run_state = match q.get("state") {
        None => None,
        Some(s) => Some(RunState::parse(s).ok_or_else(|| {
            let all: Vec<&str> = RunState::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::bad_request(format!("state={s:?} is not a run state; use one of {}", all.join(", ")))
        })?),
    };
    let before = match q.get("before") {
        None => None,
        Some(b) => {
            Some(b.parse::<i64>().map_err(|_| ApiError::bad_request(format!("before={b:?}: give a run number")))?)
        }
    };
    let filter = RunFilter {
        connection: q.get("connection").cloned(),
        external_id: q.get("entry").cloned(),
        state: run_state,
        before,
        limit: Some(limit),
        ..RunFilter::default()
    };
    let runs = state.host.store().await?.runs(&filter).await?;
    let next_before = (runs.len() == limit).then(|| runs.last().map(|r| r.id)).flatten();
    let runs = runs.iter().map(|r| run_view(&state.host, r)).collect();
    Ok(json(StatusCode::OK, &RunList { runs, next_before }))
}

/// One run.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs",
    params(("id" = i64, Path, description = "run number")),
    responses((status = 200, body = StoredRun), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_run(State(state): State<AppState>, Path(raw): Path<String>) -> ApiResult<Response> {
    let run = run_of(&state, &raw).await?;
    Ok(json(StatusCode::OK, &run_view(&state.host, &run)))
}

/// Cancel a run: withdrawn if it was never submitted, else stopped on the
/// platform.
#[utoipa::path(post, path = "/v1/runs/{id}/cancel", tag = "runs",
    params(("id" = i64, Path, description = "run number")),
    responses((status = 200, body = CancelView), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 502, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn cancel_run(State(state): State<AppState>, Path(raw): Path<String>) -> ApiResult<Response> {
    let run = run_of(&state, &raw).await?;
    let started = Instant::now();
    let outcome = runs::cancel(&state.host, &run.id.to_string(), "cancelled through the polysync API").await;
    state.metrics.observe("cancel", started.elapsed().as_secs_f64());
    let view = match outcome? {
        Cancelled::Withdrawn(run) => CancelView { outcome: "Withdrawn".into(), run: run_view(&state.host, &run) },
        Cancelled::OnPlatform { outcome, run } => CancelView {
            outcome: serde_json::to_value(outcome).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
            run: run_view(&state.host, &run),
        },
    };
    Ok(json(StatusCode::OK, &view))
}

/// A run's logs as text: live from the platform (`follow=true` streams
/// until the run ends), or from the archive once its pods are gone.
#[utoipa::path(get, path = "/v1/runs/{id}/logs", tag = "runs",
    params(("id" = i64, Path, description = "run number"),
           ("follow" = Option<bool>, Query, description = "stream until the run ends"),
           ("container" = Option<String>, Query, description = "one container"),
           ("tail" = Option<u64>, Query, description = "only the last lines")),
    responses((status = 200, body = String, content_type = "text/plain"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 502, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn run_logs(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let run = run_of(&state, &raw).await?;
    let follow = flag_of(&q, "follow")?;
    let tail = match q.get("tail") {
        None => None,
        Some(t) => {
            Some(t.parse::<u64>().map_err(|_| ApiError::bad_request(format!("tail={t:?}: give a number of lines")))?)
        }
    };
    let container = q.get("container").cloned();
    let run_id = runs::submitted_id(&run)?;
    let provider = state.host.provider(&run.connection)?;
    let request = LogRequest { run_id, container: container.clone(), tail_lines: tail, limit_bytes: None, follow };
    let logs = runs::open_logs(state.host.store().await?.as_ref(), provider.as_ref(), &run, request).await?;
    let body = match logs {
        RunLogs::Archived(list) => {
            let mut text = String::new();
            for log in list.iter().filter(|l| container.as_deref().is_none_or(|c| c == l.container)) {
                text.push_str(&log.tail(tail));
            }
            Body::from(text)
        }
        RunLogs::Live(stream) => Body::from_stream(stream.map(|chunk| {
            chunk.map(|c| Bytes::from(c.text)).map_err(|e| std::io::Error::other(e.message().to_owned()))
        })),
    };
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response())
}

/// The platform's events of a run (pods scheduled, pulled, started, ...),
/// as Server-Sent Events until the run ends.
#[utoipa::path(get, path = "/v1/runs/{id}/events", tag = "runs",
    params(("id" = i64, Path, description = "run number")),
    responses((status = 200, body = ServerSentEvent, content_type = "text/event-stream"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 502, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn run_events(State(state): State<AppState>, Path(raw): Path<String>) -> ApiResult<Response> {
    let run = run_of(&state, &raw).await?;
    let run_id = runs::submitted_id(&run)?;
    let provider = state.host.provider(&run.connection)?;
    let follow = !run.is_final();
    let stream = provider.events(EventsRequest { run_id, follow }).await.map_err(crate::Error::from)?;
    let events = stream.map(|e| {
        Ok::<_, std::convert::Infallible>(match e {
            Ok(e) => Event::default().event("event").json_data(&e).unwrap_or_default(),
            Err(e) => Event::default().event("error").data(e.message()),
        })
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

/// A run's status changes as Server-Sent Events (`status`), starting with
/// its current status and ending after its final one. Any replica answers
/// for any run.
#[utoipa::path(get, path = "/v1/runs/{id}/status-stream", tag = "runs",
    params(("id" = i64, Path, description = "run number")),
    responses((status = 200, body = ServerSentEvent, content_type = "text/event-stream"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn run_status_stream(State(state): State<AppState>, Path(raw): Path<String>) -> ApiResult<Response> {
    let run = run_of(&state, &raw).await?;
    Ok(super::sse::status(state, Some(run)).into_response())
}

/// Every run's status changes as Server-Sent Events (`status`), from now on.
#[utoipa::path(get, path = "/v1/status-stream", tag = "runs",
    responses((status = 200, body = ServerSentEvent, content_type = "text/event-stream")))]
pub async fn status_stream(State(state): State<AppState>) -> Response {
    super::sse::status(state, None).into_response()
}
