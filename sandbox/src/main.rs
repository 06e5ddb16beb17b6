//! `polysync-sandbox`: run the sandbox cluster in the foreground.

use std::path::PathBuf;

use clap::Parser;
use polysync_sandbox::{Sandbox, SandboxConfig, SeedConfig};

#[derive(Parser, Debug)]
#[command(name = "polysync-sandbox", version, about = "A local Kubernetes API server for Jobs, for trying kubectl and polysync")]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Where to write the kubeconfig.
    #[arg(long, default_value = "sandbox.kubeconfig")]
    kubeconfig: PathBuf,
    /// Namespace for generated objects and the kubeconfig's default.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Finished Jobs to generate.
    #[arg(long, default_value_t = 0)]
    jobs: usize,
    /// CronJobs to generate.
    #[arg(long, default_value_t = 0)]
    cronjobs: usize,
    /// A YAML file of objects to create at start.
    #[arg(long)]
    seed_file: Option<PathBuf>,
    /// Simulated durations are multiplied by this (0.1: a 10 s sleep takes 1 s).
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Serve plain HTTP instead of HTTPS.
    #[arg(long)]
    insecure_http: bool,
    /// Do not run the CronJob controller.
    #[arg(long)]
    no_cronjobs: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_env("POLYSYNC_LOG")).init();
    let args = Args::parse();
    let config = SandboxConfig {
        bind: ([127, 0, 0, 1], args.port).into(),
        tls: !args.insecure_http,
        time_scale: args.time_scale,
        cronjob_controller: !args.no_cronjobs,
        seed: SeedConfig { namespace: args.namespace.clone(), jobs: args.jobs, cronjobs: args.cronjobs, file: args.seed_file },
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(config).await?;
    sandbox.write_kubeconfig(&args.kubeconfig, &args.namespace)?;
    println!("sandbox listening on {}", sandbox.url());
    println!("kubeconfig: {}", args.kubeconfig.display());
    println!("try: kubectl --kubeconfig {} get jobs", args.kubeconfig.display());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
