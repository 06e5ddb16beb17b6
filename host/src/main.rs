//! The `polysync` command.

mod cli;

use std::process::ExitCode;

use clap::Parser as _;
use cli::args::{Cli, Output};
use cli::output::Out;
use serde_json::json;

fn main() -> ExitCode {
    // clap exits 2 on a usage error, which here means "authentication";
    // bad command-line input is invalid input (20), like bad config.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                polysync::error::EXIT_INVALID
            } else {
                polysync::error::EXIT_OK
            });
        }
    };
    let default_level = if cli.quiet { "error" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("POLYSYNC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut out = Out::new(cli.output == Output::Json, cli.quiet);
    out.show_secrets = cli.show_secrets;
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(polysync::error::EXIT_FAILURE);
        }
    };
    match runtime.block_on(cli::commands::dispatch(cli, out)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if out.json {
                eprintln!(
                    "{}",
                    json!({"error": {"kind": err.kind(), "message": err.to_string(), "exit_code": err.exit_code()}})
                );
            } else {
                eprintln!("error: {err}");
            }
            ExitCode::from(err.exit_code())
        }
    }
}
