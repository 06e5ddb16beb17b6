//! `polysync-sandbox`: run the sandbox cluster in the foreground.

use clap::Parser;
use polysync_sandbox::{Sandbox, SandboxArgs};

#[derive(Parser, Debug)]
#[command(
    name = "polysync-sandbox",
    version,
    about = "A local Kubernetes API server for Jobs, for trying kubectl and polysync"
)]
struct Args {
    #[command(flatten)]
    sandbox: SandboxArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_env("POLYSYNC_LOG")).init();
    let args = Args::parse().sandbox;
    let sandbox = Sandbox::start(args.config()).await?;
    sandbox.write_kubeconfig(&args.kubeconfig, &args.namespace)?;
    println!("sandbox listening on {}", sandbox.url());
    println!("kubeconfig: {}", args.kubeconfig.display());
    println!("try: kubectl --kubeconfig {} get jobs", args.kubeconfig.display());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
