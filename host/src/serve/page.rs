//! The status page an operator opens first: runs with their live state,
//! a run's parameters, its entry's parameters and its logs. Rendered on
//! the server (it reads without JavaScript); a few lines of script keep
//! states live through the status stream. No build step.

use std::fmt::Write;

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};

use super::AppState;
use super::problem::ApiError;
use crate::store::{RunFilter, StoredRun};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}\
td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}th{background:#f4f4f4}\
.Success{color:#176f2c;font-weight:600}.Failed,.Lost,.SubmitFailed{color:#b00020;font-weight:600}\
.Running,.Starting{color:#0b57d0;font-weight:600}.Cancelled,.Withdrawn{color:#777}\
pre{background:#111;color:#eee;padding:1em;max-height:30em;overflow:auto}a{color:#0b57d0}";

fn page(title: &str, body: &str, script: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} — polysync</title><style>{STYLE}</style></head><body><h1>{t}</h1>{body}<script>{script}</script></body></html>",
        t = esc(title)
    ))
}

fn row(run: &StoredRun, token_q: &str) -> String {
    format!(
        "<tr id=\"run-{id}\"><td><a href=\"/runs/{id}{q}\">#{id}</a></td><td>{c}</td><td>{e}</td><td>{rid}</td><td class=\"state {s}\">{s}</td><td class=\"reason\">{r}</td><td>{at}</td></tr>",
        id = run.id,
        q = esc(token_q),
        c = esc(&run.connection),
        e = esc(&run.external_id),
        rid = esc(run.run_id.as_deref().unwrap_or("-")),
        s = run.state.as_str(),
        r = esc(run.reason.as_deref().unwrap_or("")),
        at = run.created_at,
    )
}

/// The token query string to carry on links and streams (`?access_token=`).
fn token_query(q: &std::collections::HashMap<String, String>) -> String {
    q.get("access_token")
        .map(|t| format!("?access_token={}", form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>()))
        .unwrap_or_default()
}

/// `/`: the latest runs, live.
pub async fn index(
    State(state): State<AppState>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let runs = state.host.store().await?.runs(&RunFilter { limit: Some(50), ..RunFilter::default() }).await?;
    let tq = token_query(&q);
    let mut body = String::from(
        "<p id=\"live\">live: connecting…</p><table id=\"runs\"><thead><tr><th>Run</th><th>Connection</th><th>Entry</th><th>Run id</th><th>State</th><th>Reason</th><th>Created</th></tr></thead><tbody>",
    );
    for run in &runs {
        let view = state.host.config.secrets.run(run);
        body.push_str(&row(&view, &tq));
    }
    body.push_str("</tbody></table>");
    if runs.is_empty() {
        body.push_str("<p>No runs yet.</p>");
    }
    let script = format!(
        "const q={q};const es=new EventSource('/v1/status-stream'+q);\
es.onopen=()=>{{document.getElementById('live').textContent='live: connected';}};\
es.addEventListener('status',ev=>{{const r=JSON.parse(ev.data);let tr=document.getElementById('run-'+r.id);\
if(!tr){{tr=document.createElement('tr');tr.id='run-'+r.id;tr.innerHTML='<td><a href=\"/runs/'+r.id+q+'\">#'+r.id+'</a></td><td></td><td></td><td></td><td class=\"state\"></td><td class=\"reason\"></td><td></td>';\
document.querySelector('#runs tbody').prepend(tr);tr.children[1].textContent=r.connection;tr.children[2].textContent=r.entry;tr.children[6].textContent=r.created_at;}}\
tr.children[3].textContent=r.platform_id||'-';const s=tr.querySelector('.state');s.textContent=r.state;s.className='state '+r.state;\
tr.querySelector('.reason').textContent=r.reason||'';}});",
        q = serde_json::to_string(&tq).unwrap_or_default()
    );
    Ok(page("Runs", &body, &script).into_response())
}

/// `/runs/{id}`: one run, its parameters, its entry's parameters, its logs.
pub async fn run(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let id: i64 = raw.parse().map_err(|_| ApiError::not_found(format!("no run {raw:?}")))?;
    let store = state.host.store().await?;
    let run = store.run(id).await?.ok_or_else(|| ApiError::not_found(format!("no run #{id}")))?;
    let run = state.host.config.secrets.run(&run);
    let tq = token_query(&q);
    let mut body = String::new();
    let _ = write!(
        body,
        "<p><a href=\"/{q}\">all runs</a></p><table><tr><th>Entry</th><td>{c} / {e}</td></tr><tr><th>Run id</th><td>{rid}</td></tr>\
<tr><th>State</th><td id=\"state\" class=\"{s}\">{s}</td></tr><tr><th>Reason</th><td id=\"reason\">{r}</td></tr><tr><th>Message</th><td id=\"message\">{m}</td></tr>\
<tr><th>Created</th><td>{at}</td></tr><tr><th>Finished</th><td id=\"finished\">{f}</td></tr></table><h2>Parameters of this run</h2><table><tr><th>Name</th><th>Value</th></tr>",
        q = esc(&tq),
        c = esc(&run.connection),
        e = esc(&run.external_id),
        rid = esc(run.run_id.as_deref().unwrap_or("-")),
        s = run.state.as_str(),
        r = esc(run.reason.as_deref().unwrap_or("")),
        m = esc(run.message.as_deref().unwrap_or("")),
        at = run.created_at,
        f = run.finished_at.map(|t| t.to_string()).unwrap_or_default(),
    );
    for (k, v) in &run.parameters {
        let _ = write!(body, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(v));
    }
    body.push_str("</table>");
    if !run.outputs.is_empty() || run.output_error.is_some() {
        body.push_str("<h2>Outputs</h2><table id=\"outputs\"><tr><th>Name</th><th>Value</th></tr>");
        for (k, v) in &run.outputs {
            let _ = write!(body, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(v));
        }
        body.push_str("</table>");
        if let Some(e) = &run.output_error {
            let _ = write!(body, "<p class=\"Failed\">{}</p>", esc(e));
        }
    }
    if let Some(entry) = store.entry(&run.connection, &run.external_id).await? {
        let entry = state.host.config.secrets.entry(&entry);
        body.push_str(
            "<h2>Parameters of the entry</h2><table><tr><th>Name</th><th>Direction</th><th>Default</th></tr>",
        );
        for p in &entry.entry.parameters {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{:?}</td><td>{}</td></tr>",
                esc(&p.name),
                p.direction,
                esc(p.default.as_deref().unwrap_or(""))
            );
        }
        body.push_str("</table>");
    }
    body.push_str("<h2>Logs</h2><pre id=\"logs\">loading…</pre>");
    let script = format!(
        "const q={q};const id={id};\
function logs(){{fetch('/v1/runs/'+id+'/logs'+q).then(r=>r.text()).then(t=>{{document.getElementById('logs').textContent=t||'(no output yet)';}}).catch(()=>{{}});}}\
logs();const es=new EventSource('/v1/runs/'+id+'/status-stream'+q);\
es.addEventListener('status',ev=>{{const r=JSON.parse(ev.data);const s=document.getElementById('state');s.textContent=r.state;s.className=r.state;\
document.getElementById('reason').textContent=r.reason||'';document.getElementById('message').textContent=r.message||'';\
document.getElementById('finished').textContent=r.finished_at||'';logs();}});",
        q = serde_json::to_string(&tq).unwrap_or_default(),
    );
    Ok(page(&format!("Run #{id} — {}", run.external_id), &body, &script).into_response())
}
