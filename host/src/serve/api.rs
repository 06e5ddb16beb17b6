//! The `/v1` handlers. Each parses its input, calls one workflow of
//! [`crate::runs`] (or one store query), and renders the typed outcome as
//! JSON, a stream, or a problem document. The OpenAPI document is
//! generated from these declarations ([`ApiDoc`]).

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use polysync_provider_api::{ClustersRequest, DiscoverRequest, EventsRequest, LogRequest};
use serde::Serialize;
use utoipa::OpenApi;

use super::AppState;
use super::problem::{ApiError, Problem};
use super::views::*;
use crate::runs::{self, Cancelled, RunLogs, StartRun};
use crate::store::{DeleteAfter, EntryFilter, EntryState, RunFilter, RunState, SpecSource, StoredRun, SyncStatus};

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
        Problem, ConnectionView, TestView, ClusterView, SyncView, SyncStatus, SyncLinks, EntryView, EntryLinks,
        ParameterView, EntryList, EntryState, CreateRun, RunView, RunLinks, RunState, SpecSource, DeleteAfter, RunList,
        CancelView, CancelResult, EventView, ContainerView, ServerSentEvent
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
                for (code, response) in op.responses.responses.iter_mut() {
                    if let utoipa::openapi::RefOr::T(r) = response
                        && r.description.is_empty()
                    {
                        r.description = described(code).to_owned();
                    }
                }
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

/// Whether an idempotency key as the document writes it: 1-255 visible
/// ASCII characters.
fn is_key(k: &[u8]) -> bool {
    (1..=255).contains(&k.len()) && k.iter().all(|b| (b'!'..=b'~').contains(b))
}

/// What an answer with this status means, where an operation says no more.
fn described(code: &str) -> &'static str {
    match code {
        "200" => "the answer",
        "400" => "a parameter is wrong (`detail` names it)",
        "401" => "no or an unknown bearer token, or the platform refused polysync's credentials",
        "403" => "the platform does not allow polysync this action",
        "404" => "no such connection, entry, sync or run",
        "409" => "collides with what exists",
        "413" => "the body is over 64 KiB",
        "415" => "the body is not `application/json`",
        "422" => "the request cannot be carried out as it is (`detail` says why)",
        "429" => "the platform throttles polysync; retry after `Retry-After`",
        "502" => "the platform failed",
        "503" => "the platform or the catalog is unavailable; retry after `Retry-After`",
        "504" => "the platform did not answer in time",
        _ => "see the problem document",
    }
}

// ---- helpers

fn run_view(host: &crate::Host, run: &StoredRun) -> RunView {
    RunView::of(host.config.secrets.run(run))
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

/// The query of `uri` as `T`: what the handler parses is the struct the
/// document declares, and a bad value is a problem document that names it.
fn query<T: serde::de::DeserializeOwned>(uri: &Uri) -> ApiResult<T> {
    Query::<T>::try_from_uri(uri)
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(format!("{}; the parameters are in /v1/openapi.json", e.body_text())))
}

fn limit_of(limit: Option<u16>) -> ApiResult<usize> {
    match limit {
        None => Ok(100),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(usize::from(n)),
        Some(n) => Err(ApiError::bad_request(format!("limit={n}: give a whole number from 1 to {MAX_LIMIT}"))),
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
        let page = match provider.list_clusters(request.clone()).await {
            Ok(page) => page,
            // A connection to one cluster has no list of clusters: there
            // is no such resource for it.
            Err(e) if e.kind() == polysync_provider_api::ErrorKind::Unsupported => {
                return Err(ApiError::new(StatusCode::NOT_FOUND, "unsupported", e.message().to_owned()));
            }
            Err(e) => return Err(crate::Error::from(e).into()),
        };
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

/// Start a discovery of the connection.
///
/// It runs on after the answer; `Location` is the sync, to poll. One sync
/// per connection at a time (409 while one runs).
#[utoipa::path(post, path = "/v1/connections/{name}/syncs", tag = "catalog",
    params(("name" = String, Path, description = "connection name")),
    responses((status = 202, body = SyncView, description = "started; poll `Location` (the sync) for progress",
               headers(("Location" = String, description = "the sync: `/v1/syncs/{id}`"))),
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
    let mut response = json(StatusCode::ACCEPTED, &SyncView::of(record));
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/syncs/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// A sync's progress and result.
#[utoipa::path(get, path = "/v1/syncs/{id}", tag = "catalog",
    params(("id" = i64, Path, minimum = 1, description = "sync number")),
    responses((status = 200, body = SyncView), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_sync(State(state): State<AppState>, Path(raw): Path<String>) -> ApiResult<Response> {
    let id: i64 = raw.parse().map_err(|_| ApiError::not_found(format!("no sync {raw:?}")))?;
    let record = state.host.store().await?.sync_record(id).await?;
    let record = record.ok_or_else(|| ApiError::not_found(format!("no sync {id}")))?;
    Ok(json(StatusCode::OK, &SyncView::of(record)))
}

/// Catalog entries, by connection and id, a page at a time.
#[utoipa::path(get, path = "/v1/entries", tag = "catalog", params(EntryQuery),
    responses((status = 200, body = EntryList), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn list_entries(State(state): State<AppState>, uri: Uri) -> ApiResult<Response> {
    let q: EntryQuery = query(&uri)?;
    let limit = limit_of(q.limit)?;
    let after = match &q.after {
        None => None,
        Some(a) => Some(
            a.split_once('/').filter(|(c, _)| !c.is_empty()).map(|(c, e)| (c.to_owned(), e.to_owned())).ok_or_else(
                || ApiError::bad_request(format!("after={a:?}: pass the next_after of the previous page")),
            )?,
        ),
    };
    let filter = EntryFilter { connection: q.connection, state: q.state, after, limit: Some(limit) };
    let entries = state.host.store().await?.entries(&filter).await?;
    let next_after = (entries.len() == limit)
        .then(|| entries.last().map(|e| format!("{}/{}", e.connection, e.entry.external_id)))
        .flatten();
    let entries = entries.iter().map(|e| EntryView::of(state.host.config.secrets.entry(e))).collect();
    Ok(json(StatusCode::OK, &EntryList { entries, next_after }))
}

/// One entry with its parameters.
#[utoipa::path(get, path = "/v1/connections/{name}/entries/{entry}", tag = "catalog",
    params(("name" = String, Path, description = "connection name"),
           ("entry" = String, Path, description = "the entry's id; one with a slash (`cronjob/x`) may be sent as it is or with the slash as `%2F`")),
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
    Ok(json(StatusCode::OK, &EntryView::of(state.host.config.secrets.entry(&found))))
}

// ---- runs

/// Create a run of a catalog entry.
///
/// With an `Idempotency-Key`, a retry returns the same run (201 the first
/// time, 200 after); the same key for a different request is 409. 202:
/// recorded, but the platform did not answer; a replica finishes the
/// submission with the same key. Follow the run with its `status_stream`
/// link.
#[utoipa::path(post, path = "/v1/runs", tag = "runs", request_body = CreateRun,
    params(("Idempotency-Key" = Option<String>, Header, pattern = r"^[!-~]{1,255}$",
            description = "1-255 visible ASCII characters; the same key returns the same run. A scheduler passes its own run's id (Airflow: dag, task, map index and run id) so a retry never starts a second run")),
    responses((status = 201, body = RunView, description = "created",
               headers(("Location" = String, description = "the run: `/v1/runs/{id}`"))),
              (status = 200, body = RunView, description = "the run this key created before",
               headers(("Location" = String, description = "the run: `/v1/runs/{id}`"))),
              (status = 202, body = RunView, description = "pending: recorded, but the platform did not answer; a replica finishes the submission",
               headers(("Location" = String, description = "the run: `/v1/runs/{id}`"))),
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
            let k = v.as_bytes();
            if !is_key(k) {
                return Err(ApiError::bad_request(
                    "Idempotency-Key must be 1-255 visible ASCII characters (no spaces); use your scheduler's run id",
                ));
            }
            Some(String::from_utf8_lossy(k).into_owned())
        }
    };
    let startup_timeout = match &request.startup_timeout {
        None => None,
        Some(t) if !is_startup_timeout(t) => {
            return Err(ApiError::bad_request(format!(
                "startup_timeout {t:?}: give 1-4 digits and a unit, ms, s, m or h (\"90s\", \"10m\")"
            )));
        }
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

/// Runs, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(RunQuery),
    responses((status = 200, body = RunList), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn list_runs(State(state): State<AppState>, uri: Uri) -> ApiResult<Response> {
    let q: RunQuery = query(&uri)?;
    let limit = limit_of(q.limit)?;
    if let Some(b) = q.before.filter(|b| *b < 1) {
        return Err(ApiError::bad_request(format!("before={b}: give a run number (1 or more)")));
    }
    if let Some(key) = &q.idempotency_key {
        if !is_key(key.as_bytes()) {
            return Err(ApiError::bad_request(format!(
                "idempotency_key={key:?}: a key is 1-255 visible ASCII characters (no spaces)"
            )));
        }
        let found = state.host.store().await?.run_by_key(key).await?;
        let runs = found
            .filter(|r| {
                q.connection.as_ref().is_none_or(|c| *c == r.connection)
                    && q.entry.as_ref().is_none_or(|e| *e == r.external_id)
                    && q.state.is_none_or(|s| s == r.state)
                    && q.before.is_none_or(|b| r.id < b)
            })
            .map(|r| run_view(&state.host, &r))
            .into_iter()
            .collect();
        return Ok(json(StatusCode::OK, &RunList { runs, next_before: None }));
    }
    let filter = RunFilter {
        connection: q.connection,
        external_id: q.entry,
        state: q.state,
        before: q.before,
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
    params(("id" = i64, Path, minimum = 1, description = "run number")),
    responses((status = 200, body = RunView), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_run(State(state): State<AppState>, Path(raw): Path<String>) -> ApiResult<Response> {
    let run = run_of(&state, &raw).await?;
    Ok(json(StatusCode::OK, &run_view(&state.host, &run)))
}

/// Cancel a run.
///
/// Withdrawn if it was never submitted, else stopped on the platform; a
/// run that already ended is left as it is (`AlreadyDone`). Cancelling
/// twice is harmless.
#[utoipa::path(post, path = "/v1/runs/{id}/cancel", tag = "runs",
    params(("id" = i64, Path, minimum = 1, description = "run number")),
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
        Cancelled::Withdrawn(run) => CancelView { outcome: CancelResult::Withdrawn, run: run_view(&state.host, &run) },
        Cancelled::OnPlatform { outcome, run } => {
            CancelView { outcome: CancelResult::of(outcome), run: run_view(&state.host, &run) }
        }
    };
    Ok(json(StatusCode::OK, &view))
}

/// A run's logs, as text.
///
/// Live from the platform (`follow=true` streams until the run ends), or
/// from polysync's archive once its pods are gone.
#[utoipa::path(get, path = "/v1/runs/{id}/logs", tag = "runs",
    params(("id" = i64, Path, minimum = 1, description = "run number"), LogQuery),
    responses((status = 200, body = String, content_type = "text/plain"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 502, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn run_logs(State(state): State<AppState>, Path(raw): Path<String>, uri: Uri) -> ApiResult<Response> {
    let q: LogQuery = query(&uri)?;
    let run = run_of(&state, &raw).await?;
    if let Some(c) = &q.container {
        // A query parameter outside its pattern: 400, as any other.
        runs::check_container_name(c).map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    if let Some(t) = q.tail.filter(|t| *t > 1_000_000) {
        return Err(ApiError::bad_request(format!("tail={t}: give at most 1000000 lines")));
    }
    let (follow, tail, container) = (q.follow.unwrap_or(false), q.tail, q.container);
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

/// A run's platform events, as Server-Sent Events.
///
/// The platform's events of a run (pods scheduled, images pulled,
/// containers started and ended, ...) as Server-Sent Events (`text/event-stream`), until the run
/// ends; a finished run's events are sent and the stream ends. Each event
/// is `event: event` with one `EventView` as JSON in `data`; a platform
/// that fails mid-stream sends `event: error` with a `Problem` as JSON in
/// `data`, and the stream ends. Lines starting with `:` keep the connection open.
#[utoipa::path(get, path = "/v1/runs/{id}/events", tag = "runs",
    params(("id" = i64, Path, minimum = 1, description = "run number")),
    responses((status = 200, body = ServerSentEvent, content_type = "text/event-stream", description = "a stream of Server-Sent Events (see above); `itemSchema` is one event"),
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
            Ok(e) => Event::default().event("event").json_data(EventView::of(e)).unwrap_or_default(),
            Err(e) => Event::default()
                .event("error")
                .json_data(ApiError::from(crate::Error::from(e)).problem())
                .unwrap_or_default(),
        })
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

/// A run's status changes, as Server-Sent Events.
///
/// A `text/event-stream`: it
/// starts with the run as it is, and ends after its final status. Each
/// event is `event: status` with the run (a `RunView`, as `GET
/// /v1/runs/{id}` answers) as JSON in `data`, and `id: <run>:<updated_at>`.
/// Lines starting with `:` keep the connection open. Any replica answers
/// for any run.
#[utoipa::path(get, path = "/v1/runs/{id}/status-stream", tag = "runs",
    params(("id" = i64, Path, minimum = 1, description = "run number"),
           ("Last-Event-ID" = Option<String>, Header, description = "a reconnecting client's last event `id`: only what came after it is sent")),
    responses((status = 200, body = ServerSentEvent, content_type = "text/event-stream", description = "a stream of Server-Sent Events (see above); `itemSchema` is one event"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn run_status_stream(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let run = run_of(&state, &raw).await?;
    Ok(super::sse::status(state, Some(run), resume_point(&headers)).into_response())
}

/// A reconnecting client's `Last-Event-ID`.
fn resume_point(headers: &HeaderMap) -> Option<(i64, crate::store::Stamp)> {
    super::sse::resume_point(headers.get("last-event-id").and_then(|v| v.to_str().ok()))
}

/// Every run's status changes, as Server-Sent Events.
///
/// A `text/event-stream`, from now on, until the client disconnects: `event: status` with a
/// `RunView` as JSON in `data`, as on a run's own stream.
#[utoipa::path(get, path = "/v1/status-stream", tag = "runs",
    params(("Last-Event-ID" = Option<String>, Header, description = "a reconnecting client's last event `id`: only what came after it is sent")),
    responses((status = 200, body = ServerSentEvent, content_type = "text/event-stream", description = "a stream of Server-Sent Events (see above); `itemSchema` is one event")))]
pub async fn status_stream(State(state): State<AppState>, headers: HeaderMap) -> Response {
    super::sse::status(state, None, resume_point(&headers)).into_response()
}
