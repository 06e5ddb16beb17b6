//! How typed outcomes read, in tables or JSON: shared by the commands and
//! the demo, so both print exactly the same.

use futures::StreamExt;
use polysync::Result;
use polysync::runs::{Cancelled, RunLogs};
use polysync::secrets::SecretNames;
use polysync::store::{ARCHIVE_LIMIT, ArchivedLog, StoredEntry, StoredRun, SyncRecord};
use serde_json::json;

use super::output::{Out, emit};

pub fn run(out: Out, names: &SecretNames, run: &StoredRun) {
    let redacted = if out.show_secrets { run.clone() } else { names.run(run) };
    let run = &redacted;
    if out.json {
        out.json(run);
        return;
    }
    let id = run.run_id.as_deref().unwrap_or("-");
    let why = run.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
    out.say(format!("#{} {} {} {}{why}", run.id, run.external_id, id, out.state(run.state.as_str())));
    if let Some(m) = &run.message {
        out.say(format!("  {m}"));
    }
    for (name, value) in &run.outputs {
        out.say(format!("  output {name}={value}"));
    }
    if let Some(e) = &run.output_error {
        out.say(format!("  output error: {e}"));
    }
}

/// A run's outputs on one line, for tables.
fn outputs_cell(run: &StoredRun) -> String {
    let mut cell: Vec<String> = run.outputs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if run.output_error.is_some() {
        cell.push("(output error)".into());
    }
    cell.join(" ")
}

/// `outputs` adds a column with each run's outputs.
pub fn runs(out: Out, names: &SecretNames, runs: Vec<StoredRun>, outputs: bool) {
    let runs: Vec<StoredRun> = if out.show_secrets { runs } else { runs.iter().map(|r| names.run(r)).collect() };
    if out.json {
        out.json(&runs);
        return;
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let mut row = vec![
                format!("#{}", r.id),
                r.connection.clone(),
                r.external_id.clone(),
                r.run_id.clone().unwrap_or_else(|| "-".into()),
                out.state(r.state.as_str()),
                r.reason.clone().unwrap_or_default(),
                r.created_at.to_string(),
            ];
            if outputs {
                row.push(outputs_cell(r));
            }
            row
        })
        .collect();
    let mut header = vec!["RUN", "CONNECTION", "ENTRY", "RUN ID", "STATE", "REASON", "CREATED"];
    if outputs {
        header.push("OUTPUTS");
    }
    out.table(&header, &rows);
}

pub fn sync(out: Out, connection: &str, report: &SyncRecord) {
    if out.json {
        out.json(report);
    } else {
        out.say(format!(
            "{connection}: {} entries in {} pages — {} added, {} updated, {} unchanged, {} missing",
            report.seen, report.pages, report.added, report.updated, report.unchanged, report.missing
        ));
    }
}

pub fn entry(out: Out, names: &SecretNames, e: &StoredEntry) {
    let e = if out.show_secrets { e.clone() } else { names.entry(e) };
    if out.json {
        out.json(&e);
        return;
    }
    out.say(format!("{} ({:?}, {:?}) in {}", e.entry.external_id, e.entry.kind, e.state, e.connection));
    let rows: Vec<Vec<String>> = e
        .entry
        .parameters
        .iter()
        .map(|p| vec![p.name.clone(), format!("{:?}", p.direction), p.default.clone().unwrap_or_default()])
        .collect();
    out.table(&["PARAMETER", "DIRECTION", "DEFAULT"], &rows);
}

pub fn entries(out: Out, names: &SecretNames, entries: Vec<StoredEntry>) {
    let entries: Vec<_> = if out.show_secrets { entries } else { entries.iter().map(|e| names.entry(e)).collect() };
    if out.json {
        out.json(&entries);
        return;
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let params: Vec<&str> = e.entry.parameters.iter().map(|p| p.name.as_str()).collect();
            vec![
                e.connection.clone(),
                e.entry.external_id.clone(),
                format!("{:?}", e.entry.kind),
                format!("{:?}", e.state).to_lowercase(),
                params.join(","),
            ]
        })
        .collect();
    out.table(&["CONNECTION", "ENTRY", "KIND", "STATE", "PARAMETERS"], &rows);
}

pub fn cancelled(out: Out, names: &SecretNames, outcome: &Cancelled) {
    match outcome {
        Cancelled::Withdrawn(run) => {
            if out.json {
                out.json(&json!({"outcome": "Withdrawn", "run": run}));
            } else {
                out.say(format!(
                    "#{}: withdrawn before it was submitted; `polysync watch` will leave it alone",
                    run.id
                ));
            }
        }
        Cancelled::OnPlatform { outcome, run } => {
            let run = if out.show_secrets { run.clone() } else { names.run(run) };
            if out.json {
                out.json(&json!({"outcome": outcome, "run": run}));
            } else {
                out.say(format!("#{} {}: {outcome:?}", run.id, run.run_id.as_deref().unwrap_or("-")));
            }
        }
    }
}

pub fn plugins(out: Out, plugin_dir: &std::path::Path, registry: &polysync::plugins::Registry) {
    if out.json {
        let loaded: Vec<_> =
            registry.plugins().map(|p| json!({"path": p.path, "manifest": p.library.manifest()})).collect();
        out.json(&json!({"plugin_dir": plugin_dir, "plugins": loaded, "refused": registry.refused()}));
        return;
    }
    let rows: Vec<Vec<String>> = registry
        .plugins()
        .map(|p| {
            let m = p.library.manifest();
            vec![m.name.clone(), m.version.clone(), m.api_version.clone(), m.description.clone()]
        })
        .collect();
    out.table(&["NAME", "VERSION", "API", "DESCRIPTION"], &rows);
    for r in registry.refused() {
        out.say(format!("refused {}: {}", r.path.display(), r.reason));
    }
    if rows.is_empty() {
        out.say(format!("no plugins in {}", plugin_dir.display()));
    }
}

/// Print logs as they come (live) or from the archive.
pub async fn logs(out: Out, logs: RunLogs, container: Option<&str>, tail: Option<u64>) -> Result<()> {
    match logs {
        RunLogs::Archived(list) => {
            archived(out, &list, container, tail);
            Ok(())
        }
        RunLogs::Live(mut stream) => {
            let mut last = None::<String>;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                if out.json {
                    emit(&format!("{}\n", serde_json::to_string(&chunk).unwrap_or_default()));
                    continue;
                }
                let source = format!("{}/{}", chunk.unit, chunk.container);
                if last.as_deref() != Some(source.as_str()) && !out.quiet {
                    emit(&format!("==> {source} <==\n"));
                }
                last = Some(source);
                emit(&chunk.text);
            }
            Ok(())
        }
    }
}

fn archived(out: Out, logs: &[ArchivedLog], container: Option<&str>, tail: Option<u64>) {
    let multi = logs.len() > 1;
    for log in logs.iter().filter(|l| container.is_none_or(|c| c == l.container)) {
        let text = log.tail(tail);
        if out.json {
            emit(&format!(
                "{}\n",
                json!({"unit": log.unit, "container": log.container, "text": text, "archived": true, "truncated": log.truncated})
            ));
            continue;
        }
        if multi && !out.quiet {
            emit(&format!("==> {}/{} <==\n", log.unit, log.container));
        }
        if log.truncated && !out.quiet {
            emit(&format!("[archived log: only its last {} KiB were kept]\n", ARCHIVE_LIMIT / 1024));
        }
        emit(&text);
    }
}

/// Status lines for people: one per change of state or reason, not per pod
/// update.
#[derive(Debug, Default)]
pub struct Changes(std::collections::HashMap<String, (polysync_provider_api::RunState, Option<String>)>);

impl Changes {
    pub fn changed(&mut self, s: &polysync_provider_api::RunStatus) -> bool {
        let now = (s.state, s.reason.clone());
        self.0.insert(s.run_id.clone(), now.clone()).as_ref() != Some(&now)
    }
}

/// How `run --wait` shows a run.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    pub events: bool,
    pub logs: bool,
    pub timeout: Option<std::time::Duration>,
}

/// Follow a started run to its end through the library, showing its
/// state changes (and pod events, and its logs at the end, if asked).
/// Returns the run as it ended.
pub async fn wait(host: &polysync::Host, out: Out, run: &StoredRun, args: Wait) -> Result<StoredRun> {
    use polysync::Error;
    use polysync_provider_api::{EventsRequest, LogRequest};
    out.say(format!("#{} {} started as {}", run.id, run.external_id, run.run_id.as_deref().unwrap_or("-")));
    let run_id = run.run_id.clone().unwrap_or_default();
    let event_task = match args.events {
        true => {
            let provider = host.provider(&run.connection)?;
            let run_id = run_id.clone();
            Some(tokio::spawn(async move {
                if let Ok(mut events) = provider.events(EventsRequest { run_id, follow: true }).await {
                    while let Some(Ok(e)) = events.next().await {
                        if !out.json && !out.quiet {
                            let why = e.reason.map(|r| format!(" {r}")).unwrap_or_default();
                            emit(&format!("  event: {:?} {} {}{why}\n", e.kind, e.unit, e.phase));
                        }
                    }
                }
            }))
        }
        false => None,
    };
    let mut shown = Changes::default();
    let follow = polysync::runs::follow_one(host, run, |r, s| {
        if shown.changed(s) {
            let why = s.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            out.say(format!("#{} {} {}{why}", r.id, s.run_id, out.state(s.state.as_str())));
        }
    });
    let followed = match args.timeout {
        Some(limit) => tokio::time::timeout(limit, follow).await.map_err(|_| Error::Timeout {
            run: run.id,
            platform_id: run_id.to_string(),
            limit,
        })?,
        None => follow.await,
    };
    if let Some(task) = event_task {
        task.abort();
    }
    let (ended, finished) = followed?;
    if args.logs {
        let provider = host.provider(&ended.connection)?;
        let request = LogRequest { run_id: run_id.clone(), ..Default::default() };
        let logs = polysync::runs::open_logs(host.store().await?.as_ref(), provider.as_ref(), &ended, request).await?;
        self::logs(out, logs, None, None).await?;
    }
    if finished.deleted {
        out.say(format!("#{} deleted {run_id}", ended.id));
    }
    self::run(out, &host.config.secrets, &ended);
    Ok(ended)
}
