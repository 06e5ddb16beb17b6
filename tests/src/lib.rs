//! Helpers shared by the cross-crate tests in `tests/`: paths into the
//! workspace, compiling the C sources under `tests/c`, the clusters a test
//! binary shares, and [`cluster_test!`], which runs a test on the sandbox
//! and on the real control plane.

pub mod aks;
pub mod azure_fake;
pub mod cli;
pub mod ecs;
pub mod ecs_stub;
pub mod eks;
pub mod moto;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use polysync_sandbox::{BackgroundSandbox, SandboxConfig, SeedConfig};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// Compile `tests/c/<source>` into `out` with `args` (e.g. `-shared`, `-D...`).
pub fn compile_c(source: &str, out: &Path, args: &[&str]) {
    let root = workspace();
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .arg("-std=c11")
        .arg("-Wall")
        .arg("-Werror")
        .arg("-D_POSIX_C_SOURCE=200809L")
        .arg("-I")
        .arg(root.join("provider-api/include"))
        .args(args)
        .arg("-o")
        .arg(out)
        .arg(root.join("tests/c").join(source))
        .args(["-ldl", "-lpthread"])
        .status()
        .expect("a C compiler (cc) is needed for the C ABI tests; install gcc");
    assert!(status.success(), "compiling tests/c/{source} failed");
}

pub use polysync_clusters::{Cluster, Flavor};

/// The time scale of every shared cluster: a container's `sleep 100` takes 2 s.
pub const TIME_SCALE: f64 = 0.02;

/// The cluster of `flavor` this test binary shares, started on first use.
/// Its processes die with the test binary (see `polysync_clusters::process`).
pub fn shared(flavor: Flavor) -> &'static Cluster {
    static SANDBOX: OnceLock<Cluster> = OnceLock::new();
    static REAL: OnceLock<Cluster> = OnceLock::new();
    let cell = match flavor {
        Flavor::Sandbox => &SANDBOX,
        Flavor::Real => &REAL,
    };
    cell.get_or_init(|| {
        Cluster::start(flavor, TIME_SCALE)
            .unwrap_or_else(|e| panic!("the {} cluster did not start: {e}", flavor.name()))
    })
}

/// Define a test that runs once on each cluster, as `NAME::sandbox` and
/// `NAME::real`; the body gets `&'static Cluster`.
///
/// ```ignore
/// cluster_test!(fn reruns_keep_parameters(cluster) { ... });
/// ```
#[macro_export]
macro_rules! cluster_test {
    ($(#[$meta:meta])* fn $name:ident($cluster:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body($cluster: &'static $crate::Cluster) $body

            #[test]
            fn sandbox() {
                body($crate::shared($crate::Flavor::Sandbox))
            }

            #[test]
            fn real() {
                body($crate::shared($crate::Flavor::Real))
            }
        }
    };
}

/// Seed `namespace` of `cluster` with source Jobs and CronJobs through the
/// API ([`polysync_clusters::seed`]), once per cluster and namespace.
pub fn seed_once(cluster: &'static Cluster, namespace: &str, jobs: usize, cronjobs: usize) {
    static SEEDED: std::sync::Mutex<Vec<(Flavor, String)>> = std::sync::Mutex::new(Vec::new());
    let mut seeded = SEEDED.lock().unwrap_or_else(|p| p.into_inner());
    let key = (cluster.flavor(), namespace.to_owned());
    if seeded.contains(&key) {
        return;
    }
    cluster.ensure_namespace(namespace);
    polysync_clusters::seed::seed_blocking(cluster, namespace, jobs, cronjobs);
    seeded.push(key);
}

/// The conformance target of a Kubernetes-based `plugin` on a namespace
/// seeded by [`polysync_clusters::seed`] (`entries` Jobs and CronJobs):
/// the quick run is `batch-00001` greeting "hi", which its log says and
/// whose Job ends Succeeded; the long one sleeps. Each caller adds the
/// monitor URL its plugin answers.
pub fn seeded_target(plugin: &str, settings: serde_json::Value, entries: usize) -> polysync_conformance::Target {
    polysync_conformance::Target::new(
        plugin,
        polysync_conformance::artifacts::cdylib(&format!("polysync-provider-{plugin}")),
        settings,
        ("batch-00001", &[("GREETING", "hi")]),
        ("batch-00002", &[("SLEEP_SECONDS", "100000")]),
    )
    .expect_entries(entries)
    .quick_logs("hi from batch ")
    .quick_events("Succeeded")
}

/// Create the source Job `name` in `namespace` (suspended, as
/// [`polysync_clusters::seed::source_job`]) running `script`, after `tweak`.
pub fn source_job(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    script: &str,
    tweak: impl FnOnce(&mut serde_json::Value),
) {
    cluster.ensure_namespace(namespace);
    let mut job = polysync_clusters::seed::source_job(name, 1, script);
    tweak(&mut job);
    match cluster.call("POST", &format!("/apis/batch/v1/namespaces/{namespace}/jobs"), Some(job)) {
        Ok(_) => {}
        Err(e) if e.code == 409 => {}
        Err(e) => panic!("creating source Job {namespace}/{name}: {e}"),
    }
}

/// A multi-threaded runtime for one test.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime")
}

/// A run request of `external_id` with `params` and idempotency key `key`.
pub fn run_request(external_id: &str, key: &str, params: &[(&str, &str)]) -> polysync_provider_api::RunRequest {
    polysync_provider_api::RunRequest {
        external_id: external_id.into(),
        parameters: params.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
        idempotency_key: key.into(),
        fallback: None,
    }
}

/// A sandbox with its own configuration (faults, token validators, seeds),
/// for what only the sandbox can do, and a kubeconfig file for it.
#[derive(Debug)]
pub struct SandboxCluster {
    pub sandbox: BackgroundSandbox,
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl SandboxCluster {
    pub fn start(seed: SeedConfig, time_scale: f64) -> Self {
        Self::start_with(SandboxConfig { time_scale, seed, ..SandboxConfig::default() })
    }

    pub fn start_with(config: SandboxConfig) -> Self {
        let namespace = config.seed.namespace.clone();
        let sandbox = BackgroundSandbox::start(config).expect("sandbox starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        sandbox.write_kubeconfig(&kubeconfig, &namespace).expect("kubeconfig written");
        Self { sandbox, kubeconfig, _dir: dir }
    }

    /// Connection settings of the `kubernetes` provider for `namespace`.
    pub fn settings(&self, namespace: &str) -> serde_json::Value {
        serde_json::json!({"kubeconfig": self.kubeconfig, "namespace": namespace})
    }
}

/// A running `polysync serve`: killed when dropped (and with the test
/// process, even on a panic that skips destructors).
#[derive(Debug)]
pub struct ServeProcess {
    pub child: polysync_clusters::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    _dir: tempfile::TempDir,
}

/// Start `polysync serve --listen 127.0.0.1:0` with `config` and `envs`,
/// and wait for it to say where it listens.
pub fn start_server(config: &std::path::Path, claim_every: &str, envs: &[(&str, String)]) -> ServeProcess {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = dir.path().join("serve.log");
    let args: Vec<String> =
        ["--config", &config.display().to_string(), "serve", "--listen", "127.0.0.1:0", "--claim-every", claim_every]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let mut child = polysync_clusters::process::Child::spawn_with_env(
        "polysync serve",
        &polysync_conformance::artifacts::executable("polysync", "polysync"),
        &args,
        envs,
        &log,
    )
    .expect("polysync serve starts");
    let started = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(base) = text.lines().find_map(|l| l.strip_prefix("listening on ")) {
            return ServeProcess { base: base.trim().to_owned(), child, _dir: dir };
        }
        if let Err(e) = child.check() {
            panic!("polysync serve did not start: {e}");
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "polysync serve did not start:\n{text}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Write `dir/config.toml` for the `polysync` binary: the plugin directory
/// (where cargo built `plugin`'s library), the catalog (`catalog`, a path
/// or `postgres://` URL; `None`: `dir/catalog.db`), further top-level
/// `settings` lines, and connection `name` with `connection`'s lines
/// (`provider = ...` among them). Returns its path.
pub fn write_config(
    dir: &Path,
    plugin: &str,
    catalog: Option<&str>,
    settings: &str,
    name: &str,
    connection: &str,
) -> PathBuf {
    let config = dir.join("config.toml");
    let plugin_dir =
        polysync_conformance::artifacts::cdylib(plugin).parent().expect("a plugin directory").to_path_buf();
    let catalog = catalog.map(str::to_owned).unwrap_or_else(|| dir.join("catalog.db").display().to_string());
    let text = format!(
        "plugin_dir = {:?}\ncatalog = {catalog:?}\n{settings}\n[connections.{name}]\n{connection}\n",
        plugin_dir.display().to_string()
    );
    std::fs::write(&config, text).expect("the test config is written");
    config
}

/// The `polysync` binary with `config`, no colours, no `POLYSYNC_CONFIG`.
pub fn polysync_command(config: &Path) -> Command {
    let mut cmd = Command::new(polysync_conformance::artifacts::executable("polysync", "polysync"));
    cmd.arg("--config").arg(config).env_remove("POLYSYNC_CONFIG").env("NO_COLOR", "1");
    cmd
}

/// The environment of an `airflow` command against `polysync serve` at
/// `base` (token `token`): its home and SQLite metadata in `home`, DAGs from
/// `integrations/airflow/tests/<dags>`, the provider of
/// `integrations/airflow/src` on the path, and the connection
/// `polysync_default`.
pub fn airflow_env(home: &Path, dags: &str, base: &str, token: &str) -> Vec<(&'static str, String)> {
    let provider = Path::new(env!("CARGO_MANIFEST_DIR")).join("../integrations/airflow");
    vec![
        ("AIRFLOW_HOME", home.display().to_string()),
        ("AIRFLOW__CORE__DAGS_FOLDER", provider.join("tests").join(dags).display().to_string()),
        ("AIRFLOW__CORE__LOAD_EXAMPLES", "False".into()),
        ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", format!("sqlite:///{}/airflow.db", home.display())),
        ("PYTHONPATH", provider.join("src").display().to_string()),
        (
            "AIRFLOW_CONN_POLYSYNC_DEFAULT",
            serde_json::json!({"conn_type": "polysync", "host": base, "password": token}).to_string(),
        ),
    ]
}

/// The directory of a tool `scripts/test` prepares and names in `var`
/// (`what` says how it makes it); a test that needs it fails without it,
/// it is never skipped.
pub fn tool_dir(var: &str, what: &str) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        panic!("{var} is not set: scripts/test {what} and sets it; run the tests with bash scripts/test")
    })
}

/// Whether a benchmark runs at full size: under `cargo bench`, which passes
/// `--bench`. Run any other way (`cargo test --benches`, as `scripts/test`
/// does) it runs once at a tiny size, so CI proves that every benchmark
/// still works without paying for the measurement; criterion's benchmarks
/// follow the same rule.
pub fn full_bench() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// `full` under `cargo bench`, else `tiny` ([`full_bench`]).
pub fn bench_size<T>(full: T, tiny: T) -> T {
    if full_bench() { full } else { tiny }
}

/// How long one CLI command of a test may take before it is killed and the
/// test fails naming it.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(300);

/// `Command::output` with a bound: a command that hangs is killed after
/// `limit` and the test fails naming it, instead of hanging the run.
pub trait OutputWithin {
    fn output_within(&mut self, limit: Duration) -> std::process::Output;
}

impl OutputWithin for Command {
    fn output_within(&mut self, limit: Duration) -> std::process::Output {
        use std::io::Read;
        let what = format!("{:?} {:?}", self.get_program(), self.get_args().collect::<Vec<_>>());
        let mut child = self
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let drain = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                bytes
            })
        };
        let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
        let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
        let deadline = std::time::Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap_or_else(|e| panic!("{what}: {e}")) {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} did not end within {} s", limit.as_secs());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        std::process::Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
    }
}
