//! What each command does.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use polysync::catalog::{EntryState, RunFilter, StoredRun};
use polysync::config::Config;
use polysync::error::{EXIT_FAILURE, EXIT_OK};
use polysync::{Error, Host, Result, tracking};
use polysync_provider_api::{
    CancelRequest, DiscoverRequest, EventsRequest, LogRequest, PollRequest, Provider, RunState, UrlRequest,
};
use serde_json::json;

use super::args::{Cli, Command, ConnectionsAction, RunArgs};
use super::output::Out;

pub async fn dispatch(cli: Cli, out: Out) -> Result<u8> {
    match cli.command {
        Command::Demo { time_scale } => return super::demo::run(out, time_scale).await,
        Command::Sandbox(args) => return super::demo::sandbox(out, &args).await,
        Command::ProbePlugin { path } => {
            let mut registry = polysync::plugins::Registry::default();
            registry.add(path);
            return Ok(if registry.refused().is_empty() { EXIT_OK } else { EXIT_FAILURE });
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "polysync", &mut script);
            super::output::emit(&String::from_utf8_lossy(&script));
            return Ok(EXIT_OK);
        }
        _ => {}
    }
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(dir) = cli.plugin_dir {
        config.plugin_dir = dir;
    }
    let mut host = Host::new(config)?;
    dispatch_with(&mut host, out, cli.command).await
}

/// Run one command against an open host (the demo calls this too).
pub async fn dispatch_with(host: &mut Host, out: Out, command: Command) -> Result<u8> {
    let host = &mut *host;
    match command {
        Command::Plugins => plugins(host, out),
        Command::Connections { action: None } => connections(host, out),
        Command::Connections { action: Some(ConnectionsAction::Test { name }) } => {
            test_connection(host, out, &name).await
        }
        Command::Connections { action: Some(ConnectionsAction::Clusters { name }) } => {
            list_clusters(host, out, &name).await
        }
        Command::Discover { connection, page_size } => discover(host, out, &connection, page_size).await,
        Command::Catalog { connection, missing, entry } => {
            catalog(host, out, connection.as_deref(), missing, entry.as_deref())
        }
        Command::Run(args) => run(host, out, args).await,
        Command::Status { run } => status(host, out, &run).await,
        Command::Watch { connection } => watch(host, out, connection.as_deref()).await,
        Command::Cancel { run } => cancel(host, out, &run).await,
        Command::Logs { run, follow, container, tail } => logs(host, out, &run, follow, container, tail).await,
        Command::Events { run, follow } => events(host, out, &run, follow).await,
        Command::Url { connection, entry, run } => url(host, out, connection, entry, run).await,
        Command::Runs { connection, entry, state, limit } => {
            if let Some(s) = state.as_deref()
                && !KNOWN_STATES.contains(&s)
            {
                return Err(Error::InvalidInput(format!(
                    "--state {s:?} is not a run state; use one of {}",
                    KNOWN_STATES.join(", ")
                )));
            }
            runs(host, out, RunFilter { connection, external_id: entry, state, limit: Some(limit) })
        }
        Command::Demo { .. } | Command::Sandbox(_) | Command::Completions { .. } | Command::ProbePlugin { .. } => {
            Err(Error::InvalidInput("this command cannot run inside another one".into()))
        }
    }
}

/// Every state a stored run can be in.
const KNOWN_STATES: [&str; 9] =
    ["Submitting", "SubmitFailed", "Starting", "Running", "Success", "Failed", "Cancelled", "Lost", "Unknown"];

/// Load `path` in a child process first: a library whose initializer
/// aborts or crashes must not take `polysync plugins` down with it.
fn probe_in_child(path: &std::path::Path) -> std::result::Result<(), String> {
    use std::os::unix::process::ExitStatusExt;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable to probe with: {e}"))?;
    let status = std::process::Command::new(exe)
        .arg("__probe-plugin")
        .arg(path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("cannot start a probe: {e}"))?;
    match status.signal() {
        Some(sig) => Err(format!(
            "loading it crashed the process (signal {sig}): its initializer aborts or faults; remove it from the plugin directory"
        )),
        None => Ok(()),
    }
}

fn plugins(host: &mut Host, out: Out) -> Result<u8> {
    let plugin_dir = host.config.plugin_dir.clone();
    let registry = host.registry_probed(probe_in_child)?;
    if out.json {
        let loaded: Vec<_> =
            registry.plugins().map(|p| json!({"path": p.path, "manifest": p.library.manifest()})).collect();
        out.json(&json!({"plugin_dir": plugin_dir, "plugins": loaded, "refused": registry.refused()}));
        return Ok(EXIT_OK);
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
    Ok(EXIT_OK)
}

fn connections(host: &Host, out: Out) -> Result<u8> {
    // Only names and providers: settings may hold paths users consider private.
    let list: Vec<_> =
        host.config.connections.values().map(|c| json!({"name": c.name, "provider": c.provider})).collect();
    if out.json {
        out.json(&json!({"config": host.config.path, "connections": list}));
    } else {
        let rows: Vec<Vec<String>> =
            host.config.connections.values().map(|c| vec![c.name.clone(), c.provider.clone()]).collect();
        out.table(&["NAME", "PROVIDER"], &rows);
    }
    Ok(EXIT_OK)
}

async fn test_connection(host: &mut Host, out: Out, name: &str) -> Result<u8> {
    let provider = host.provider(name)?;
    let page = provider.discover(DiscoverRequest { page_token: None, page_size: Some(5) }).await?;
    if out.json {
        out.json(&json!({"connection": name, "ok": true, "sample": page.entries.iter().map(|e| &e.external_id).collect::<Vec<_>>()}));
    } else {
        out.say(format!(
            "{name}: connected; first entries: {}",
            page.entries.iter().map(|e| e.external_id.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(EXIT_OK)
}

async fn list_clusters(host: &mut Host, out: Out, name: &str) -> Result<u8> {
    let provider = host.provider(name)?;
    let mut clusters = Vec::new();
    let mut request = polysync_provider_api::ClustersRequest::default();
    loop {
        let page = provider.list_clusters(request.clone()).await?;
        clusters.extend(page.clusters);
        match page.next_page_token {
            Some(token) => request.page_token = Some(token),
            None => break,
        }
    }
    if out.json {
        out.json(&json!({"connection": name, "clusters": clusters}));
    } else {
        let rows: Vec<Vec<String>> = clusters
            .iter()
            .map(|c| vec![c.name.clone(), c.location.clone(), c.id.clone().unwrap_or_default()])
            .collect();
        out.table(&["CLUSTER", "LOCATION", "ID"], &rows);
    }
    Ok(EXIT_OK)
}

async fn discover(host: &mut Host, out: Out, connection: &str, page_size: Option<u32>) -> Result<u8> {
    let provider = host.provider(connection)?;
    let mut catalog = host.catalog()?;
    let bar = (!out.json && !out.quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar.set_message(format!("discovering {connection}"));
        bar
    });
    let result = polysync::sync::sync(&mut catalog, connection, provider.as_ref(), page_size, |pages, entries| {
        if let Some(bar) = &bar {
            bar.set_message(format!("discovering {connection}: {pages} pages, {entries} entries"));
        }
    })
    .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = result?;
    if out.json {
        out.json(&report);
    } else {
        out.say(format!(
            "{connection}: {} entries in {} pages — {} added, {} updated, {} unchanged, {} missing",
            report.seen, report.pages, report.added, report.updated, report.unchanged, report.missing
        ));
    }
    Ok(EXIT_OK)
}

fn catalog(host: &Host, out: Out, connection: Option<&str>, missing: bool, entry: Option<&str>) -> Result<u8> {
    let catalog = host.catalog()?;
    if let Some(id) = entry {
        let connection = connection.ok_or_else(|| {
            Error::InvalidInput("--entry needs the connection: polysync catalog CONNECTION --entry ID".into())
        })?;
        let e = catalog.entry(connection, id)?.ok_or_else(|| missing_entry(connection, id))?;
        let e = if out.show_secrets { e } else { host.config.secrets.entry(&e) };
        if out.json {
            out.json(&e);
        } else {
            out.say(format!("{} ({:?}, {:?}) in {}", e.entry.external_id, e.entry.kind, e.state, e.connection));
            let rows: Vec<Vec<String>> = e
                .entry
                .parameters
                .iter()
                .map(|p| vec![p.name.clone(), p.default.clone().unwrap_or_default()])
                .collect();
            out.table(&["PARAMETER", "DEFAULT"], &rows);
        }
        return Ok(EXIT_OK);
    }
    let entries = catalog.entries(connection, missing.then_some(EntryState::Missing))?;
    let entries: Vec<_> =
        if out.show_secrets { entries } else { entries.iter().map(|e| host.config.secrets.entry(e)).collect() };
    if out.json {
        out.json(&entries);
    } else {
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
    Ok(EXIT_OK)
}

fn missing_entry(connection: &str, id: &str) -> Error {
    Error::NotFound(format!(
        "no entry {id:?} in the catalog of {connection}; run `polysync discover {connection}` first"
    ))
}

fn print_run(out: Out, names: &polysync::secrets::SecretNames, run: &StoredRun) {
    let redacted = if out.show_secrets { run.clone() } else { names.run(run) };
    let run = &redacted;
    if out.json {
        out.json(run);
        return;
    }
    let id = run.run_id.as_deref().unwrap_or("-");
    let why = run.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
    out.say(format!("#{} {} {} {}{why}", run.id, run.external_id, id, out.state(&run.state)));
    if let Some(m) = &run.message {
        out.say(format!("  {m}"));
    }
}

async fn run(host: &mut Host, out: Out, args: RunArgs) -> Result<u8> {
    // An unknown connection is named as such, not as a missing entry.
    host.config.connection(&args.connection)?;
    let catalog = host.catalog()?;
    let entry =
        catalog.entry(&args.connection, &args.entry)?.ok_or_else(|| missing_entry(&args.connection, &args.entry))?;
    let params: BTreeMap<String, String> = args.params.iter().cloned().collect();
    tracking::check_parameters(&entry, &params)?;
    let provider = host.provider(&args.connection)?;
    let key = args.idempotency_key.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let startup_timeout = args.startup_timeout.or(host.config.connection(&args.connection)?.startup_timeout);
    let recorded = catalog.record_intent(
        &args.connection,
        &args.entry,
        &key,
        &params,
        super::args::DeleteAfter::stored(args.delete_after),
        startup_timeout,
    )?;
    let mut run = if recorded.run_id.is_some() {
        recorded
    } else {
        match tracking::submit(&catalog, provider.as_ref(), &recorded, Some(&entry)).await {
            Ok(run) => run,
            // The platform did not answer: the run may or may not exist
            // there. Say so, and how to finish or withdraw it.
            Err(Error::Provider(e)) if e.is_retryable() => {
                return Err(Error::Pending(format!(
                    "run #{id} is pending: the platform did not answer ({msg}); it may or may not have been created. `polysync watch` finishes it with the same idempotency key (adopting the Job if it exists, never creating a second), or `polysync cancel {id}` withdraws it",
                    id = recorded.id,
                    msg = e.message()
                )));
            }
            Err(e) => return Err(e),
        }
    };
    if !args.wait {
        print_run(out, &host.config.secrets, &run);
        return Ok(EXIT_OK);
    }
    out.say(format!("#{} {} started as {}", run.id, run.external_id, run.run_id.as_deref().unwrap_or("-")));
    let run_id = run.run_id.clone().unwrap_or_default();
    let event_task = args.events.then(|| {
        let provider = provider.clone();
        let run_id = run_id.clone();
        tokio::spawn(async move {
            if let Ok(mut events) = provider.events(EventsRequest { run_id, follow: true }).await {
                while let Some(Ok(e)) = events.next().await {
                    if !out.json && !out.quiet {
                        let why = e.reason.map(|r| format!(" {r}")).unwrap_or_default();
                        super::output::emit(&format!("  event: {:?} {} {}{why}\n", e.kind, e.unit, e.phase));
                    }
                }
            }
        })
    });
    // Gather the logs while the run is live, so the archive is whole even
    // if the Job's pods vanish the moment it ends (TTL 0).
    let live_logs = tracking::LiveLogs::start(provider.clone(), run_id.clone());
    let mut shown = Changes::default();
    let follow = tracking::follow(&catalog, provider.as_ref(), std::slice::from_ref(&run), |r, s| {
        if shown.changed(s) {
            let why = s.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            out.say(format!("#{} {} {}{why}", r.id, s.run_id, out.state(s.state.as_str())));
        }
    });
    let followed = match args.timeout {
        Some(limit) => tokio::time::timeout(limit, follow).await.map_err(|_| {
            Error::Timeout(format!(
                "run #{} ({run_id}) did not finish within {limit:?}; it goes on — follow it with `polysync watch` or stop it with `polysync cancel {}`",
                run.id, run.id
            ))
        })?,
        None => follow.await,
    };
    if let Some(task) = event_task {
        task.abort();
    }
    followed?;
    run = catalog.run_by_key(&key)?.unwrap_or(run);
    let gathered = live_logs.finish().await;
    let finished = tracking::finish(&catalog, provider.as_ref(), &run, Some(gathered)).await?;
    if args.logs {
        print_run_logs(&catalog, provider.as_ref(), out, &run, false, None, None).await?;
    }
    if finished.deleted {
        out.say(format!("#{} deleted {run_id}", run.id));
    }
    print_run(out, &host.config.secrets, &run);
    Ok(if run.succeeded() { EXIT_OK } else { EXIT_FAILURE })
}

/// Status lines for people: one per change of state or reason, not per pod
/// update.
#[derive(Default)]
struct Changes(std::collections::HashMap<String, (RunState, Option<String>)>);

impl Changes {
    fn changed(&mut self, s: &polysync_provider_api::RunStatus) -> bool {
        let now = (s.state, s.reason.clone());
        self.0.insert(s.run_id.clone(), now.clone()).as_ref() != Some(&now)
    }
}

fn find_run(host: &Host, reference: &str) -> Result<StoredRun> {
    host.catalog()?
        .find_run(reference)?
        .ok_or_else(|| Error::NotFound(format!("no run {reference:?} in the catalog; list them with `polysync runs`")))
}

fn submitted_id(run: &StoredRun) -> Result<String> {
    run.run_id.clone().ok_or_else(|| {
        Error::InvalidInput(format!(
            "run #{} was never submitted to the platform (state {}); `polysync watch` finishes submissions",
            run.id, run.state
        ))
    })
}

async fn status(host: &mut Host, out: Out, reference: &str) -> Result<u8> {
    let run = find_run(host, reference)?;
    if let Some(run_id) = &run.run_id
        && !run.is_final()
    {
        let provider = host.provider(&run.connection)?;
        let s = provider.poll(PollRequest { run_id: run_id.clone() }).await?;
        host.catalog()?.record_status(run.id, &s)?;
    }
    let run = find_run(host, reference)?;
    print_run(out, &host.config.secrets, &run);
    Ok(EXIT_OK)
}

async fn watch(host: &mut Host, out: Out, only: Option<&str>) -> Result<u8> {
    if let Some(name) = only {
        host.config.connection(name)?;
    }
    let catalog = host.catalog()?;
    let connections: std::collections::BTreeSet<String> =
        catalog.active_runs(only)?.into_iter().map(|r| r.connection).collect();
    if connections.is_empty() {
        out.say("no unfinished runs");
        if out.json {
            out.json(&json!({"runs": []}));
        }
        return Ok(EXIT_OK);
    }
    let mut providers: Vec<(String, Arc<dyn Provider>)> = Vec::new();
    for c in &connections {
        if host.config.connection(c).is_err() {
            // A retired connection must not stop the others from being followed.
            let ids: Vec<String> = catalog.active_runs(Some(c))?.iter().map(|r| format!("#{}", r.id)).collect();
            tracing::warn!(connection = %c, "unfinished runs of a connection that is no longer configured");
            eprintln!(
                "warning: connection {c:?} is no longer in the config, so its unfinished runs {} are not followed; add [connections.{c}] back and run `polysync watch {c}` to finish them",
                ids.join(", ")
            );
            continue;
        }
        providers.push((c.clone(), host.provider(c)?));
    }
    for (c, p) in &providers {
        for r in tracking::recover(&catalog, c, p.as_ref()).await? {
            out.say(format!("#{} {} submitted as {}", r.id, r.external_id, r.run_id.as_deref().unwrap_or("-")));
        }
    }
    let path = catalog.path().to_path_buf();
    let follows = providers.into_iter().map(|(c, p)| {
        let path = path.clone();
        async move {
            let catalog = polysync::catalog::Catalog::open(&path)?;
            let runs = catalog.active_runs(Some(&c))?;
            let mut shown = Changes::default();
            // Runs that end are finished (logs archived, delete-after
            // applied) beside the watch, as they end.
            let (ended_tx, mut ended) = tokio::sync::mpsc::unbounded_channel::<i64>();
            let finisher = {
                let (p, path) = (p.clone(), path.clone());
                async move {
                    let catalog = polysync::catalog::Catalog::open(&path)?;
                    while let Some(id) = ended.recv().await {
                        if let Some(run) = catalog.find_run(&id.to_string())?
                            && run.is_final()
                        {
                            let done = tracking::finish(&catalog, p.as_ref(), &run, None).await?;
                            if done.deleted {
                                out.say(format!("#{} deleted {}", run.id, run.run_id.as_deref().unwrap_or("-")));
                            }
                        }
                    }
                    Ok::<(), Error>(())
                }
            };
            let ended_by = ended_tx.clone();
            drop(ended_tx);
            let following = tracking::follow(&catalog, p.as_ref(), &runs, move |r, s| {
                if s.state.is_terminal() || s.reason.as_deref() == Some(polysync_provider_api::REASON_VANISHED) {
                    let _ = ended_by.send(r.id);
                }
                if shown.changed(s) {
                    let why = s.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
                    out.say(format!(
                        "#{} {:<12} {:<40} {}{why}",
                        r.id,
                        r.connection,
                        s.run_id,
                        out.state(s.state.as_str())
                    ));
                }
            });
            let (followed, finished) = futures::future::join(following, finisher).await;
            followed.and(finished)
        }
    });
    for result in futures::future::join_all(follows).await {
        result?;
    }
    if out.json {
        let ids: Vec<StoredRun> = catalog.runs(&RunFilter {
            connection: only.map(str::to_owned),
            limit: Some(100),
            ..RunFilter::default()
        })?;
        out.json(&json!({"runs": ids}));
    }
    Ok(EXIT_OK)
}

async fn cancel(host: &mut Host, out: Out, reference: &str) -> Result<u8> {
    let run = find_run(host, reference)?;
    if run.run_id.is_none() && run.state == polysync::catalog::SUBMITTING_STATE && host.catalog()?.withdraw(run.id)? {
        let run = find_run(host, reference)?;
        if out.json {
            out.json(&json!({"outcome": "Withdrawn", "run": run}));
        } else {
            out.say(format!("#{}: withdrawn before it was submitted; `polysync watch` will leave it alone", run.id));
        }
        return Ok(EXIT_OK);
    }
    let run_id = submitted_id(&run)?;
    let provider = host.provider(&run.connection)?;
    let outcome = provider
        .cancel(CancelRequest {
            run_id: run_id.clone(),
            reason: Some("cancelled from the polysync CLI".into()),
            delete: false,
        })
        .await?;
    let catalog = host.catalog()?;
    if outcome == polysync_provider_api::CancelOutcome::Cancelled {
        let mut s = polysync_provider_api::RunStatus::new(run_id.clone(), RunState::Cancelled);
        s.reason = Some("CancelledByUser".into());
        catalog.record_status(run.id, &s)?;
    }
    let run = find_run(host, reference)?;
    let run = if out.show_secrets { run } else { host.config.secrets.run(&run) };
    if out.json {
        out.json(&json!({"outcome": outcome, "run": run}));
    } else {
        out.say(format!("#{} {run_id}: {outcome:?}", run.id));
    }
    Ok(EXIT_OK)
}

async fn print_logs(
    provider: &dyn Provider,
    out: Out,
    run_id: &str,
    follow: bool,
    container: Option<String>,
    tail: Option<u64>,
) -> Result<()> {
    let mut stream = provider
        .logs(LogRequest { run_id: run_id.into(), container, tail_lines: tail, limit_bytes: None, follow })
        .await?;
    let multi = std::cell::Cell::new(None::<String>);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if out.json {
            super::output::emit(&format!("{}\n", serde_json::to_string(&chunk).unwrap_or_default()));
            continue;
        }
        let source = format!("{}/{}", chunk.unit, chunk.container);
        if multi.replace(Some(source.clone())).as_deref() != Some(source.as_str()) && !out.quiet {
            super::output::emit(&format!("==> {source} <==\n"));
        }
        super::output::emit(&chunk.text);
    }
    Ok(())
}

async fn logs(
    host: &mut Host,
    out: Out,
    reference: &str,
    follow: bool,
    container: Option<String>,
    tail: Option<u64>,
) -> Result<u8> {
    let run = find_run(host, reference)?;
    submitted_id(&run)?;
    let provider = host.provider(&run.connection)?;
    let catalog = host.catalog()?;
    print_run_logs(&catalog, provider.as_ref(), out, &run, follow, container, tail).await?;
    Ok(EXIT_OK)
}

/// A run's logs: from the archive once the run is final and archived (the
/// pods may be gone), else from the platform — and from the archive after
/// all if the platform no longer has them.
async fn print_run_logs(
    catalog: &polysync::catalog::Catalog,
    provider: &dyn Provider,
    out: Out,
    run: &StoredRun,
    follow: bool,
    container: Option<String>,
    tail: Option<u64>,
) -> Result<()> {
    let run_id = submitted_id(run)?;
    let archived = if run.is_final() { catalog.archived_logs(run.id)? } else { None };
    if let Some(logs) = archived {
        print_archived(out, &logs, container.as_deref(), tail);
        return Ok(());
    }
    match print_logs(provider, out, &run_id, follow, container.clone(), tail).await {
        Err(Error::Provider(e)) if e.kind() == polysync_provider_api::ErrorKind::NotFound => {
            match catalog.archived_logs(run.id)? {
                Some(logs) => {
                    print_archived(out, &logs, container.as_deref(), tail);
                    Ok(())
                }
                None => Err(Error::NotFound(format!(
                    "the logs of run #{} are gone from the platform and were not archived (the run ended before polysync followed it); {}",
                    run.id,
                    e.message()
                ))),
            }
        }
        other => other,
    }
}

fn print_archived(out: Out, logs: &[polysync::catalog::ArchivedLog], container: Option<&str>, tail: Option<u64>) {
    let multi = logs.len() > 1;
    for log in logs.iter().filter(|l| container.is_none_or(|c| c == l.container)) {
        let lines: Vec<&str> = log.text.split_inclusive('\n').collect();
        let skip = tail.map_or(0, |t| lines.len().saturating_sub(t as usize));
        if out.json {
            let text: String = lines[skip..].concat();
            super::output::emit(&format!(
                "{}\n",
                serde_json::json!({"unit": log.unit, "container": log.container, "text": text, "archived": true, "truncated": log.truncated})
            ));
            continue;
        }
        if multi && !out.quiet {
            super::output::emit(&format!("==> {}/{} <==\n", log.unit, log.container));
        }
        if log.truncated && !out.quiet {
            super::output::emit(&format!(
                "[archived log: only its last {} KiB were kept]\n",
                polysync::catalog::ARCHIVE_LIMIT / 1024
            ));
        }
        super::output::emit(&lines[skip..].concat());
    }
}

async fn events(host: &mut Host, out: Out, reference: &str, follow: bool) -> Result<u8> {
    let run = find_run(host, reference)?;
    let run_id = submitted_id(&run)?;
    let provider = host.provider(&run.connection)?;
    let mut stream = provider.events(EventsRequest { run_id, follow }).await?;
    let mut rows = Vec::new();
    while let Some(e) = stream.next().await {
        let e = e?;
        if out.json {
            super::output::emit(&format!("{}\n", serde_json::to_string(&e).unwrap_or_default()));
        } else if follow {
            out.say(format!("{:?} {} {} {}", e.kind, e.unit, e.phase, e.reason.clone().unwrap_or_default()));
        } else {
            rows.push(vec![
                format!("{:?}", e.kind),
                e.unit,
                e.phase,
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
            ]);
        }
    }
    out.table(&["KIND", "UNIT", "PHASE", "REASON", "MESSAGE"], &rows);
    Ok(EXIT_OK)
}

async fn url(
    host: &mut Host,
    out: Out,
    connection: Option<String>,
    entry: Option<String>,
    run: Option<String>,
) -> Result<u8> {
    let (connection, request) = match (connection, entry, run) {
        (_, _, Some(reference)) => {
            let run = find_run(host, &reference)?;
            let run_id = submitted_id(&run)?;
            (run.connection, UrlRequest::Run { run_id })
        }
        (Some(c), Some(e), None) => (c, UrlRequest::Entry { external_id: e }),
        _ => return Err(Error::InvalidInput("give CONNECTION ENTRY, or --run RUN".into())),
    };
    let provider = host.provider(&connection)?;
    let url = provider.monitor_url(request).await?;
    if out.json {
        out.json(&url);
    } else {
        match url.url {
            Some(u) => out.say(u),
            None => out
                .say(format!("{connection} has no console URL (set monitor_url_template for a kubernetes connection)")),
        }
    }
    Ok(EXIT_OK)
}

fn runs(host: &Host, out: Out, filter: RunFilter) -> Result<u8> {
    let runs = host.catalog()?.runs(&filter)?;
    let runs: Vec<StoredRun> =
        if out.show_secrets { runs } else { runs.iter().map(|r| host.config.secrets.run(r)).collect() };
    if out.json {
        out.json(&runs);
        return Ok(EXIT_OK);
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                format!("#{}", r.id),
                r.connection.clone(),
                r.external_id.clone(),
                r.run_id.clone().unwrap_or_else(|| "-".into()),
                out.state(&r.state),
                r.reason.clone().unwrap_or_default(),
                r.created_at.clone(),
            ]
        })
        .collect();
    out.table(&["RUN", "CONNECTION", "ENTRY", "RUN ID", "STATE", "REASON", "CREATED"], &rows);
    Ok(EXIT_OK)
}
