//! `polysync demo` and `polysync sandbox`.
//!
//! The demo starts the sandbox cluster in this process with a namespace of
//! sample Jobs, writes a kubeconfig and a config that points the
//! `kubernetes` plugin at it, and walks through the everyday commands: the
//! same library workflows and renderers the commands use.

use std::time::Instant;

use polysync::config::Config;
use polysync::error::EXIT_OK;
use polysync::{Error, Host, Result};
use polysync_sandbox::resources::Kind;
use polysync_sandbox::{Sandbox, SandboxConfig, SeedConfig, seed};
use serde_json::json;

use polysync::runs::{self, StartRun};
use polysync::store::{DeleteAfter, RunFilter};

use super::output::Out;
use super::render;

const NAMESPACE: &str = "demo";

/// Sample Jobs as a team's namespace would have them.
fn sample_jobs(sandbox: &Sandbox) {
    let store = sandbox.store();
    let jobs = [
        (
            "nightly-report",
            r#"echo "building the $REPORT_KIND report for $REPORT_DATE in $REGION"; sleep 3; echo "report written: 42 rows"; echo ROWS=42 > /dev/termination-log; echo "REPORT_URL=https://reports.example/$REPORT_KIND/$REPORT_DATE" >> /dev/termination-log"#,
            0,
        ),
        ("invoice-export", r#"echo "exporting invoices to $TARGET"; sleep 2; echo done"#, 1),
        ("flaky-export", r#"echo "connecting to $TARGET"; echo "error: connection refused" >&2; exit 1"#, 2),
        ("long-backfill", r#"echo "backfilling $DAYS days"; sleep 3600"#, 3),
    ];
    for (name, script, i) in jobs {
        let mut job = seed::finished_job(NAMESPACE, name, i);
        let container = &mut job["spec"]["template"]["spec"]["containers"][0];
        container["args"] = json!([script]);
        container["env"] = match name {
            "nightly-report" => {
                json!([{"name": "REPORT_DATE", "value": "2026-10-31"}, {"name": "REPORT_KIND", "value": "sales"}, {"name": "REGION", "value": "eu-west-1"}, {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password", "optional": true}}}])
            }
            "invoice-export" | "flaky-export" => json!([{"name": "TARGET", "value": "s3://invoices"}]),
            _ => json!([{"name": "DAYS", "value": "30"}]),
        };
        if name == "nightly-report" {
            job["metadata"]["annotations"] = json!({"polysync.io/outputs": "ROWS, REPORT_URL"});
        }
        if name == "flaky-export" {
            job["spec"]["backoffLimit"] = json!(1);
        }
        let _ = store.create(Kind::Job, job);
    }
}

fn step(out: Out, n: usize, title: &str, command: &str) {
    out.say(format!("\n── {n}. {title}\n   $ polysync {command}"));
}

pub async fn run(out: Out, time_scale: f64, plugin_dir: std::path::PathBuf) -> Result<u8> {
    let began = Instant::now();
    let sandbox = Sandbox::start(SandboxConfig {
        time_scale,
        seed: SeedConfig { namespace: NAMESPACE.into(), jobs: 20, cronjobs: 2, file: None },
        ..SandboxConfig::default()
    })
    .await
    .map_err(|e| Error::Sandbox(Box::new(e)))?;
    sample_jobs(&sandbox);
    // A fresh private directory (0700, unpredictable name), removed however
    // the demo ends.
    let tmp = tempfile::Builder::new()
        .prefix("polysync-demo-")
        .tempdir()
        .map_err(Error::io("creating a temporary directory"))?;
    let dir = tmp.path().to_path_buf();
    let kubeconfig = dir.join("kubeconfig");
    sandbox.write_kubeconfig(&kubeconfig, NAMESPACE).map_err(Error::io("writing the kubeconfig"))?;
    let config_path = dir.join("config.toml");
    let config_text = format!(
        "plugin_dir = {plugins:?}\ncatalog = {catalog:?}\n\n[connections.sandbox]\nprovider = \"kubernetes\"\nkubeconfig = {kc:?}\nnamespace = \"{NAMESPACE}\"\n",
        plugins = plugin_dir.display().to_string(),
        catalog = dir.join("catalog.db").display().to_string(),
        kc = kubeconfig.display().to_string(),
    );
    std::fs::write(&config_path, &config_text).map_err(Error::io("writing the demo config"))?;
    out.say(format!(
        "polysync demo — a sandbox Kubernetes cluster is running at {} with namespace {NAMESPACE:?}\n(20 generated Jobs, 2 CronJobs and 4 sample Jobs; simulated time runs {:.0}x faster)\n\nconfig written to {}:\n{}",
        sandbox.url(),
        1.0 / time_scale,
        config_path.display(),
        config_text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
    ));
    let host = Host::new(Config::load(Some(&config_path))?);
    let registry = host.registry()?;
    if registry.get("kubernetes").is_none() {
        return Err(Error::Config(format!(
            "the demo needs the kubernetes plugin in {}; build both with `bash scripts/demo` (or cargo build --release -p polysync -p polysync-provider-kubernetes)",
            plugin_dir.display()
        )));
    }
    let names = &host.config.secrets;

    step(out, 1, "the provider plugins the host loaded through the C ABI", "plugins");
    render::plugins(out, &host.config.plugin_dir, &registry);

    step(out, 2, "import the namespace's Jobs and CronJobs into the catalog", "discover sandbox");
    render::sync(out, "sandbox", &runs::sync_connection(&host, "sandbox", None, |_, _| {}).await?);

    step(
        out,
        3,
        "the catalog entry of a Job: its parameters are container[0]'s literal env and the outputs it declares",
        "catalog sandbox --entry nightly-report",
    );
    render::entry(out, names, &runs::find_entry(&host, "sandbox", "nightly-report").await?);

    step(
        out,
        4,
        "a parameterized rerun, with live pod events and the logs",
        "run sandbox nightly-report -p REPORT_DATE=2026-11-01 -p REGION=us-east-1 --wait --events --logs",
    );
    let start = |entry: &str, params: &[(&str, &str)]| StartRun {
        connection: "sandbox".into(),
        entry: entry.into(),
        parameters: params.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
        idempotency_key: None,
        delete_after: DeleteAfter::Never,
        startup_timeout: None,
        callback_url: None,
    };
    let wait = |events: bool| render::Wait { events, logs: true, timeout: Some(std::time::Duration::from_secs(60)) };
    let started =
        runs::start_run(&host, start("nightly-report", &[("REPORT_DATE", "2026-11-01"), ("REGION", "us-east-1")]))
            .await?;
    render::wait(&host, out, &started.run, wait(true)).await?;

    step(
        out,
        5,
        "a run that fails: the reason comes from the Job's conditions",
        "run sandbox flaky-export --wait --logs",
    );
    let started = runs::start_run(&host, start("flaky-export", &[])).await?;
    let ended = render::wait(&host, out, &started.run, wait(false)).await?;
    let code = if ended.succeeded() { EXIT_OK } else { polysync::error::EXIT_FAILURE };
    out.say(format!("   (exit code {code}: the run failed)"));

    step(
        out,
        6,
        "start a long run, then cancel it",
        "run sandbox long-backfill -p DAYS=365   then   polysync cancel <run>",
    );
    let started = runs::start_run(&host, start("long-backfill", &[("DAYS", "365")])).await?;
    render::run(out, names, &started.run);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let cancelled = runs::cancel(&host, &started.run.id.to_string(), "cancelled from the polysync CLI").await?;
    render::cancelled(out, names, &cancelled);

    step(out, 7, "run history, with the outputs runs reported", "runs --outputs");
    let history = host.store().await?.runs(&RunFilter { limit: Some(10), ..RunFilter::default() }).await?;
    render::runs(out, names, history, true);
    host.shutdown().await?;

    out.say(format!(
        "\nDemo finished in {:.1} s. Try it yourself: `polysync sandbox` keeps a cluster running for kubectl and polysync side by side.",
        began.elapsed().as_secs_f64()
    ));
    drop(tmp);
    Ok(EXIT_OK)
}

pub async fn sandbox(out: Out, args: &polysync_sandbox::SandboxArgs) -> Result<u8> {
    let sandbox = Sandbox::start(args.config()).await.map_err(|e| Error::Sandbox(Box::new(e)))?;
    let (kubeconfig, namespace) = (&args.kubeconfig, args.namespace.as_str());
    sandbox.write_kubeconfig(kubeconfig, namespace).map_err(Error::io(format!("writing {}", kubeconfig.display())))?;
    let kc = std::fs::canonicalize(kubeconfig).unwrap_or_else(|_| kubeconfig.to_path_buf());
    if out.json {
        out.json(&json!({"url": sandbox.url(), "kubeconfig": kc, "namespace": namespace}));
    } else {
        println!("sandbox cluster listening on {}", sandbox.url());
        println!("kubeconfig: {}", kc.display());
        println!("\n  kubectl --kubeconfig {} get jobs", kc.display());
        println!(
            "\nconfig for polysync:\n\n[connections.sandbox]\nprovider = \"kubernetes\"\nkubeconfig = {:?}\nnamespace = {namespace:?}\n",
            kc.display().to_string()
        );
        println!("Ctrl-C stops it.");
    }
    tokio::signal::ctrl_c().await.map_err(Error::io("waiting for Ctrl-C"))?;
    Ok(EXIT_OK)
}
