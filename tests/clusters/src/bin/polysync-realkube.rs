//! `polysync-realkube`: a real Kubernetes control plane (built from source)
//! with the node agent, in the foreground, until SIGINT or SIGTERM — the
//! same shape as `polysync sandbox`, so kubectl and polysync can be pointed
//! at a real apiserver.

use std::path::PathBuf;

use clap::Parser;
use polysync_clusters::realkube::{RealKube, RealKubeConfig};

#[derive(Parser, Debug)]
#[command(
    name = "polysync-realkube",
    version,
    about = "A real Kubernetes control plane on 127.0.0.1, with a node agent that runs pods"
)]
struct Args {
    /// Where to write the admin kubeconfig (created 0600).
    #[arg(long, default_value = "realkube.kubeconfig")]
    kubeconfig: PathBuf,
    /// The kubeconfig's default namespace.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Simulated durations of the node agent's containers are multiplied by this.
    #[arg(long, default_value_t = 1.0, value_parser = positive_finite)]
    time_scale: f64,
    /// Directory with the binaries (default: build or reuse them with tests/realkube/build.sh).
    #[arg(long, env = "POLYSYNC_REALKUBE_BIN")]
    bin_dir: Option<PathBuf>,
}

fn positive_finite(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 1000.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number in (0, 1000]")),
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("POLYSYNC_LOG")
                .unwrap_or_else(|_| "warn,kube_client=off".into()),
        )
        .init();
    let args = Args::parse();
    let cluster = RealKube::start(RealKubeConfig {
        bin_dir: args.bin_dir,
        time_scale: args.time_scale,
        ..RealKubeConfig::default()
    })?;
    let _ = std::fs::remove_file(&args.kubeconfig);
    polysync_clusters::write_private(&args.kubeconfig, &cluster.kubeconfig(&args.namespace))?;
    println!(
        "real control plane (Kubernetes {}) listening on {}",
        polysync_clusters::realkube::KUBERNETES_VERSION,
        cluster.url()
    );
    println!("logs: {}", cluster.dir().display());
    println!("kubeconfig: {}", args.kubeconfig.display());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    })?;
    drop(cluster);
    Ok(())
}
