//! What each command does: parse the arguments into a workflow call of
//! the library ([`polysync::runs`]) and render what it returns. No
//! workflow logic lives here.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use futures::StreamExt;
use polysync::config::Config;
use polysync::error::{EXIT_FAILURE, EXIT_OK};
use polysync::runs::{self, StartRun, WatchEvent, find_run, submitted_id};
use polysync::store::{EntryFilter, EntryState, RunFilter, RunState};
use polysync::{Error, Host, Result};
use polysync_provider_api::{DiscoverRequest, EventsRequest, LogRequest, UrlRequest};
use serde_json::json;

use super::args::{Cli, Command, ConnectionsAction, RunArgs};
use super::output::Out;
use super::render;

pub async fn dispatch(cli: Cli, out: Out) -> Result<u8> {
    match cli.command {
        #[cfg(feature = "sandbox")]
        Command::Demo { time_scale } => {
            let plugins = cli.plugin_dir.clone().unwrap_or_else(polysync::config::default_plugin_dir);
            return super::demo::run(out, time_scale, plugins).await;
        }
        #[cfg(feature = "sandbox")]
        Command::Sandbox(args) => return super::demo::sandbox(out, &args).await,
        Command::ProbePlugin { path } => {
            let mut registry = polysync::plugins::Registry::default();
            registry.add(path);
            return Ok(if registry.refused().is_empty() { EXIT_OK } else { EXIT_FAILURE });
        }
        Command::Openapi => {
            super::output::emit(&format!("{}\n", polysync::serve::openapi_document()));
            return Ok(EXIT_OK);
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "polysync", &mut script);
            super::output::emit(&String::from_utf8_lossy(&script));
            return Ok(EXIT_OK);
        }
        Command::Man { dir } => {
            let cmd = <Cli as clap::CommandFactory>::command();
            // A directory that cannot be made or written is the caller's to
            // fix (exit 20), as any other bad argument.
            std::fs::create_dir_all(&dir).and_then(|()| clap_mangen::generate_to(cmd, &dir)).map_err(|e| {
                Error::InvalidInput(format!(
                    "cannot write man pages into {}: {e}; give a directory you may write",
                    dir.display()
                ))
            })?;
            return Ok(EXIT_OK);
        }
        _ => {}
    }
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(dir) = cli.plugin_dir {
        config.plugin_dir = dir;
    }
    if let Command::Serve { listen, claim_every } = &cli.command {
        return serve(config, out, listen.clone(), *claim_every).await;
    }
    let host = Host::new(config);
    let result = command(&host, out, cli.command).await;
    // Runs this process held are let go at once, for another host to take.
    if let Err(e) = host.shutdown().await {
        tracing::warn!("could not release this process's runs: {e}");
    }
    result
}

async fn command(host: &Host, out: Out, command: Command) -> Result<u8> {
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
            catalog(host, out, connection.as_deref(), missing, entry.as_deref()).await
        }
        Command::Run(args) => run(host, out, args).await,
        Command::Status { run } => status(host, out, &run).await,
        Command::Watch { connection } => watch(host, out, connection.as_deref()).await,
        Command::Cancel { run } => {
            let outcome = runs::cancel(host, &run, "cancelled from the polysync CLI").await?;
            render::cancelled(out, &host.config.secrets, &outcome);
            Ok(EXIT_OK)
        }
        Command::Logs { run, follow, container, tail } => logs(host, out, &run, follow, container, tail).await,
        Command::Events { run, follow } => events(host, out, &run, follow).await,
        Command::Serve { .. } => Err(Error::InvalidInput("this command cannot run inside another one".into())),
        Command::Url { connection, entry, run } => url(host, out, connection, entry, run).await,
        Command::Runs { connection, entry, state, limit, outputs } => {
            let state = match state.as_deref() {
                None => None,
                Some(s) => Some(RunState::parse(s).ok_or_else(|| {
                    let all: Vec<&str> = RunState::ALL.iter().map(|s| s.as_str()).collect();
                    Error::InvalidInput(format!("--state {s:?} is not a run state; use one of {}", all.join(", ")))
                })?),
            };
            let filter =
                RunFilter { connection, external_id: entry, state, limit: Some(limit), ..RunFilter::default() };
            render::runs(out, &host.config.secrets, host.store().await?.runs(&filter).await?, outputs);
            Ok(EXIT_OK)
        }
        #[cfg(feature = "sandbox")]
        Command::Demo { .. } | Command::Sandbox(_) => {
            Err(Error::InvalidInput("this command cannot run inside another one".into()))
        }
        Command::Completions { .. } | Command::Man { .. } | Command::Openapi | Command::ProbePlugin { .. } => {
            Err(Error::InvalidInput("this command cannot run inside another one".into()))
        }
    }
}

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

fn plugins(host: &Host, out: Out) -> Result<u8> {
    let registry = host.registry_probed(probe_in_child)?;
    render::plugins(out, &host.config.plugin_dir, &registry);
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

async fn test_connection(host: &Host, out: Out, name: &str) -> Result<u8> {
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

async fn list_clusters(host: &Host, out: Out, name: &str) -> Result<u8> {
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

async fn events(host: &Host, out: Out, reference: &str, follow: bool) -> Result<u8> {
    let run = find_run(host, reference).await?;
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
    host: &Host,
    out: Out,
    connection: Option<String>,
    entry: Option<String>,
    run: Option<String>,
) -> Result<u8> {
    let (connection, request) = match (connection, entry, run) {
        (_, _, Some(reference)) => {
            let run = find_run(host, &reference).await?;
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

async fn discover(host: &Host, out: Out, connection: &str, page_size: Option<u32>) -> Result<u8> {
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
    let result = runs::sync_connection(host, connection, page_size, |pages, entries| {
        if let Some(bar) = &bar {
            bar.set_message(format!("discovering {connection}: {pages} pages, {entries} entries"));
        }
    })
    .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    render::sync(out, connection, &result?);
    Ok(EXIT_OK)
}

async fn catalog(host: &Host, out: Out, connection: Option<&str>, missing: bool, entry: Option<&str>) -> Result<u8> {
    if let Some(id) = entry {
        let connection = connection.ok_or_else(|| {
            Error::InvalidInput("--entry needs the connection: polysync catalog CONNECTION --entry ID".into())
        })?;
        render::entry(out, &host.config.secrets, &runs::find_entry(host, connection, id).await?);
        return Ok(EXIT_OK);
    }
    let filter = EntryFilter {
        connection: connection.map(str::to_owned),
        state: missing.then_some(EntryState::Missing),
        ..EntryFilter::default()
    };
    render::entries(out, &host.config.secrets, host.store().await?.entries(&filter).await?);
    Ok(EXIT_OK)
}

async fn run(host: &Host, out: Out, args: RunArgs) -> Result<u8> {
    let request = StartRun {
        connection: args.connection.clone(),
        entry: args.entry.clone(),
        parameters: args.params.iter().cloned().collect::<BTreeMap<_, _>>(),
        idempotency_key: args.idempotency_key.clone(),
        delete_after: args.delete_after.map(super::args::DeleteAfter::stored).unwrap_or_default(),
        startup_timeout: args.startup_timeout,
        callback_url: None,
    };
    let started = runs::start_run(host, request).await?;
    if let Some(why) = started.pending {
        return Err(Error::Pending(why));
    }
    let run = started.run;
    if !args.wait {
        render::run(out, &host.config.secrets, &run);
        return Ok(EXIT_OK);
    }
    let ended =
        render::wait(host, out, &run, render::Wait { events: args.events, logs: args.logs, timeout: args.timeout })
            .await?;
    Ok(if ended.succeeded() { EXIT_OK } else { EXIT_FAILURE })
}

async fn status(host: &Host, out: Out, reference: &str) -> Result<u8> {
    let run = runs::refresh(host, find_run(host, reference).await?).await?;
    render::run(out, &host.config.secrets, &run);
    Ok(EXIT_OK)
}

async fn watch(host: &Host, out: Out, only: Option<&str>) -> Result<u8> {
    let shown = std::sync::Mutex::new(render::Changes::default());
    let report = runs::watch(host, only, |event| match event {
        WatchEvent::Submitted(r) => {
            out.say(format!("#{} {} submitted as {}", r.id, r.external_id, r.run_id.as_deref().unwrap_or("-")))
        }
        WatchEvent::Status(r, s) => {
            if shown.lock().unwrap_or_else(|p| p.into_inner()).changed(&s) {
                let why = s.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
                out.say(format!("#{} {:<12} {:<40} {}{why}", r.id, r.connection, s.run_id, out.state(s.state.as_str())));
            }
        }
        WatchEvent::Finished(r, done) => {
            if done.deleted {
                out.say(format!("#{} deleted {}", r.id, r.run_id.as_deref().unwrap_or("-")));
            }
        }
        WatchEvent::Failed(r, why) => eprintln!("warning: run #{}: {why}; a later `polysync watch` retries it", r.id),
        WatchEvent::Batch(_) => {}
        WatchEvent::NotConfigured { connection, runs } => {
            let ids: Vec<String> = runs.iter().map(|id| format!("#{id}")).collect();
            tracing::warn!(connection = %connection, "unfinished runs of a connection that is no longer configured");
            eprintln!(
                "warning: connection {connection:?} is no longer in the config, so its unfinished runs {} are not followed; add [connections.{connection}] back and run `polysync watch {connection}` to finish them",
                ids.join(", ")
            );
        }
    })
    .await?;
    if report.open_at_start == 0 {
        out.say("no unfinished runs");
    }
    if out.json {
        let filter = RunFilter { connection: only.map(str::to_owned), limit: Some(100), ..RunFilter::default() };
        out.json(&json!({"runs": host.store().await?.runs(&filter).await?}));
    }
    Ok(EXIT_OK)
}

async fn logs(
    host: &Host,
    out: Out,
    reference: &str,
    follow: bool,
    container: Option<String>,
    tail: Option<u64>,
) -> Result<u8> {
    let run = find_run(host, reference).await?;
    let run_id = submitted_id(&run)?;
    let provider = host.provider(&run.connection)?;
    let store = host.store().await?.as_ref();
    let request = LogRequest { run_id, container: container.clone(), tail_lines: tail, limit_bytes: None, follow };
    let logs = runs::open_logs(store, provider.as_ref(), &run, request).await?;
    match render::logs(out, logs, container.as_deref(), tail).await {
        // The pods went away while reading: the archive, if there is one.
        Err(Error::Provider(e)) if e.kind() == polysync_provider_api::ErrorKind::NotFound => {
            let archived = polysync::runs::archived_or_gone(store, &run, e.message()).await?;
            render::logs(out, archived, container.as_deref(), tail).await?;
        }
        other => other?,
    }
    Ok(EXIT_OK)
}

async fn serve(config: Config, out: Out, listen: Option<String>, claim_every: Duration) -> Result<u8> {
    if !(Duration::from_millis(100)..=Duration::from_secs(60)).contains(&claim_every) {
        return Err(Error::InvalidInput(format!(
            "--claim-every {claim_every:?} is out of range; use between 100ms and 60s"
        )));
    }
    let listen = listen.or_else(|| config.serve.listen.clone()).unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen: std::net::SocketAddr = listen
        .parse()
        .map_err(|_| Error::InvalidInput(format!("--listen {listen:?} is not HOST:PORT, like 127.0.0.1:8080")))?;
    let tokens = polysync::serve::Tokens::load(&config.serve, std::env::var("POLYSYNC_API_TOKEN").ok())?;
    let scheme = if config.serve.tls_cert.is_some() { "https" } else { "http" };
    let host = std::sync::Arc::new(Host::new(config));
    let options = polysync::serve::Options { listen, tokens, claim_every };
    polysync::serve::run(host, options, |addr| {
        if out.json {
            out.json(&json!({"listening": format!("{scheme}://{addr}")}));
        } else {
            out.say(format!("listening on {scheme}://{addr}"));
        }
    })
    .await?;
    Ok(EXIT_OK)
}
