//! Command-line arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "polysync",
    version,
    about = "Import the batch jobs that exist on AKS, EKS, ECS and Kubernetes as catalog entries, and run parameterized reruns of them",
    after_help = "Exit codes: 0 success, 1 failure, 2 authentication, 20 invalid input, 21 name conflict, 40 timeout."
)]
pub struct Cli {
    /// Configuration file (default: $POLYSYNC_CONFIG, then <config dir>/polysync/config.toml).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Load plugins from this directory instead of the configured one.
    #[arg(long, global = true, env = "POLYSYNC_PLUGIN_DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Print only errors (and JSON, when asked for).
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Show the values of parameters whose names look secret (PASSWORD,
    /// TOKEN, KEY, ...; `secret_patterns` in the config) instead of <redacted>.
    #[arg(long, global = true)]
    pub show_secrets: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteAfter {
    Never,
    Success,
    Always,
}

impl DeleteAfter {
    /// The library's choice for this flag.
    pub fn stored(self) -> polysync::store::DeleteAfter {
        match self {
            Self::Never => polysync::store::DeleteAfter::Never,
            Self::Success => polysync::store::DeleteAfter::Success,
            Self::Always => polysync::store::DeleteAfter::Always,
        }
    }
}

/// `30s`, `5m`, `1h`, or plain seconds (see [`polysync::config::parse_duration`]).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    polysync::config::parse_duration(s)
}

/// `NAME=VALUE`.
pub fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not NAME=VALUE")),
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the provider plugins that loaded, and those refused and why.
    ///
    /// Example: polysync plugins --plugin-dir ./target/release
    Plugins,
    /// List the configured connections, test one, or list the clusters it reaches.
    ///
    /// Example: polysync connections test prod-batch
    Connections {
        #[command(subcommand)]
        action: Option<ConnectionsAction>,
    },
    /// Import a connection's jobs into the catalog (added / updated / unchanged / missing).
    ///
    /// Example: polysync discover prod-batch
    Discover {
        connection: String,
        /// Entries per page asked of the platform.
        #[arg(long)]
        page_size: Option<u32>,
    },
    /// Show catalog entries.
    ///
    /// Example: polysync catalog prod-batch --missing
    Catalog {
        connection: Option<String>,
        /// Only entries no longer seen on the platform.
        #[arg(long)]
        missing: bool,
        /// Show one entry with its parameters.
        #[arg(long)]
        entry: Option<String>,
    },
    /// Run an entry again with parameters.
    ///
    /// Example: polysync run prod-batch nightly-report -p DATE=2026-11-01 --wait --logs
    Run(RunArgs),
    /// Show a run's current status (by catalog number or run id).
    ///
    /// Example: polysync status 12
    Status { run: String },
    /// Follow every unfinished run to its end, finishing any submission a crashed process left.
    ///
    /// Example: polysync watch prod-batch
    Watch { connection: Option<String> },
    /// Stop a run.
    ///
    /// Example: polysync cancel 12
    Cancel { run: String },
    /// Print a run's container logs.
    ///
    /// Example: polysync logs 12 --follow
    Logs {
        run: String,
        #[arg(long, short = 'f')]
        follow: bool,
        #[arg(long, short = 'c')]
        container: Option<String>,
        #[arg(long)]
        tail: Option<u64>,
    },
    /// Print a run's pod (task) events.
    ///
    /// Example: polysync events 12 --follow
    Events {
        run: String,
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// The console URL of an entry (CONNECTION ENTRY) or a run (--run RUN).
    ///
    /// Example: polysync url prod-batch nightly-report
    Url {
        connection: Option<String>,
        entry: Option<String>,
        #[arg(long)]
        run: Option<String>,
    },
    /// Run history, newest first.
    ///
    /// Example: polysync runs --connection prod-batch --state Failed
    Runs {
        #[arg(long)]
        connection: Option<String>,
        #[arg(long)]
        entry: Option<String>,
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Add a column with each run's outputs.
        #[arg(long)]
        outputs: bool,
    },
    /// Serve the API (/v1, its OpenAPI document at /v1/openapi.json), the
    /// status page (/), /healthz, /readyz and /metrics, and follow runs in
    /// the background; several replicas share one PostgreSQL catalog.
    ///
    /// Example: POLYSYNC_API_TOKEN=$(openssl rand -hex 24) polysync serve --listen 0.0.0.0:8080
    Serve {
        /// HOST:PORT to listen on (default: [serve] listen, then 127.0.0.1:8080; port 0 picks one).
        #[arg(long)]
        listen: Option<String>,
        /// How often to look in the catalog for runs no replica holds.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        claim_every: Duration,
    },
    /// A guided tour on the embedded sandbox cluster: no cloud account needed.
    #[cfg(feature = "sandbox")]
    ///
    /// Example: polysync demo
    Demo {
        /// Time scale of the sandbox (0.05: a 10 s job takes 0.5 s).
        #[arg(long, default_value_t = 0.05, value_parser = polysync_sandbox::parse_time_scale)]
        time_scale: f64,
    },
    /// Run the sandbox cluster in the foreground, for kubectl and polysync side by side.
    #[cfg(feature = "sandbox")]
    ///
    /// Example: polysync sandbox --jobs 200 --kubeconfig sandbox.kubeconfig
    Sandbox(polysync_sandbox::SandboxArgs),
    /// Print shell completions.
    ///
    /// Example: polysync completions bash > /etc/bash_completion.d/polysync
    Completions { shell: clap_complete::Shell },
    /// Write the man pages (polysync.1 and one per command) into a directory.
    ///
    /// Example: polysync man /usr/local/share/man/man1
    Man { dir: std::path::PathBuf },
    /// Print the OpenAPI 3.1 document of `polysync serve`'s API, offline
    /// (the same as GET /v1/openapi.json), for client generators.
    ///
    /// Example: polysync openapi > polysync-openapi.json
    Openapi,
    /// Load one plugin library in this process and exit: `polysync plugins`
    /// runs it per file, so a library whose initializer crashes the process
    /// is reported instead of taking the command down.
    #[command(name = "__probe-plugin", hide = true)]
    ProbePlugin { path: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum ConnectionsAction {
    /// Connect and read one page of entries.
    Test { name: String },
    /// List the clusters the connection's credentials reach (eks, aks, ecs),
    /// to choose its `cluster` setting.
    ///
    /// Example: polysync connections clusters prod-eks
    Clusters { name: String },
}

#[derive(Args, Debug)]
pub struct RunArgs {
    pub connection: String,
    /// The entry's external id (a Job name, cronjob/NAME, an ECS family).
    pub entry: String,
    /// A parameter value: -p NAME=VALUE (repeatable).
    #[arg(short = 'p', long = "param", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Reuse a key to make a retried request return the same run.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Follow the run to its end; exit 0 on success, 1 otherwise.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this long (exit 40; the run goes on).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// With --wait: print the container logs at the end.
    #[arg(long)]
    pub logs: bool,
    /// With --wait: print pod events as they happen.
    #[arg(long)]
    pub events: bool,
    /// Remove the run's Job once it ends and its logs are archived (applied
    /// by `run --wait` and by `polysync watch`). Unset: finished Jobs stay,
    /// a Job that never started (startup timeout) is removed; `never` keeps
    /// even that one.
    #[arg(long, value_enum)]
    pub delete_after: Option<DeleteAfter>,
    /// Fail the run if it has not started this long after submission
    /// (ImagePullBackOff, Unschedulable, ...); default: the connection's
    /// `startup_timeout`, else none.
    #[arg(long, value_parser = parse_duration)]
    pub startup_timeout: Option<Duration>,
}
