//! The `polysync` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use polysync::plugins::Registry;

#[derive(Parser, Debug)]
#[command(name = "polysync", version, about = "Import batch jobs from AKS, EKS, ECS and Kubernetes and run parameterized reruns")]
struct Cli {
    /// Directory to load provider plugins from (default: next to the binary).
    #[arg(long, global = true, env = "POLYSYNC_PLUGIN_DIR")]
    plugin_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value = "table")]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the provider plugins that loaded, and those that were refused and why.
    ///
    /// Example: polysync plugins --plugin-dir ./target/release
    Plugins,
    /// Run the guided demo on the embedded sandbox cluster.
    Demo,
}

fn default_plugin_dir() -> PathBuf {
    std::env::current_exe().ok().and_then(|p| p.parent().map(|d| d.to_path_buf())).unwrap_or_else(|| ".".into())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("POLYSYNC_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let dir = cli.plugin_dir.clone().unwrap_or_else(default_plugin_dir);
    match cli.command {
        Command::Plugins => {
            let registry = match Registry::scan(&dir) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: cannot read plugin directory {}: {e}", dir.display());
                    return ExitCode::from(20);
                }
            };
            if cli.output == Output::Json {
                let loaded: Vec<_> = registry
                    .plugins()
                    .map(|p| serde_json::json!({"path": p.path, "manifest": p.library.manifest()}))
                    .collect();
                let out = serde_json::json!({"plugins": loaded, "refused": registry.refused()});
                println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            } else {
                println!("{:<12} {:<10} {:<8} PATH", "NAME", "VERSION", "API");
                for p in registry.plugins() {
                    let m = p.library.manifest();
                    println!("{:<12} {:<10} {:<8} {}", m.name, m.version, m.api_version, p.path.display());
                }
                for r in registry.refused() {
                    println!("refused {}: {}", r.path.display(), r.reason);
                }
            }
            ExitCode::SUCCESS
        }
        Command::Demo => {
            eprintln!("the demo needs the embedded sandbox cluster, which is not built yet (issue: the sandbox)");
            ExitCode::from(1)
        }
    }
}
