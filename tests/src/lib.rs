//! Helpers shared by the cross-crate tests in `tests/`: paths into the
//! workspace, compiling the C sources under `tests/c`, and a sandbox
//! cluster shared by the tests of one test binary.

pub mod aks;
pub mod azure_fake;
pub mod ecs;
pub mod ecs_stub;
pub mod eks;
pub mod moto;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

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

/// A sandbox cluster for a test binary, and a kubeconfig file for it.
#[derive(Debug)]
pub struct Cluster {
    pub sandbox: BackgroundSandbox,
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Cluster {
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

/// One cluster per test binary, started on first use.
pub fn shared_cluster(seed: impl FnOnce() -> SeedConfig, time_scale: f64) -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| Cluster::start(seed(), time_scale))
}
