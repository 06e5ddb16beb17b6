//! The sandbox checked with the real `kubectl`: the one `scripts/test`
//! builds from the control plane's own release (`POLYSYNC_KUBECTL`), else
//! the first on PATH. Without kubectl these tests fail: a tier that cannot
//! run is not a pass.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use polysync_sandbox::{BackgroundSandbox, SandboxConfig, SeedConfig};

fn kubectl_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("POLYSYNC_KUBECTL") {
        return Some(PathBuf::from(path));
    }
    let out = Command::new("sh").args(["-c", "command -v kubectl"]).output().ok()?;
    out.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    sandbox: BackgroundSandbox,
}

impl Kubectl {
    fn start(seed: SeedConfig) -> Self {
        let binary = kubectl_binary()
            .expect("kubectl is needed to check the sandbox: install Debian's kubernetes-client (scripts/test does)");
        let sandbox =
            BackgroundSandbox::start(SandboxConfig { time_scale: 0.02, seed, ..SandboxConfig::default() }).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        sandbox.write_kubeconfig(&kubeconfig, "default").unwrap();
        Self { binary, kubeconfig, _dir: dir, sandbox }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args).env("HOME", self._dir.path());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("kubectl runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "kubectl {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn dir(&self) -> &Path {
        self._dir.path()
    }
}

const JOB_YAML: &str = r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: greeter
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox:1.36
        command: ["sh", "-c", "echo \"hello $GREETING\"; sleep 1; echo bye"]
        env:
        - name: GREETING
          value: from-the-sandbox
"#;

#[test]
fn chunked_listing_returns_every_job() {
    let k = Kubectl::start(SeedConfig { jobs: 55, ..SeedConfig::default() });
    k.sandbox.stats().reset();
    let out = k.ok(&["get", "jobs", "--chunk-size=10", "-o", "name"]);
    assert_eq!(out.lines().count(), 55, "{out}");
    assert!(out.lines().all(|l| l.starts_with("job.batch/batch-")));
    assert_eq!(k.sandbox.stats().get("list", "jobs"), 6, "55 jobs in chunks of 10 take 6 list calls");
}

#[test]
fn create_wait_logs_delete() {
    let k = Kubectl::start(SeedConfig::default());
    let file = k.dir().join("job.yaml");
    std::fs::write(&file, JOB_YAML).unwrap();
    let created = k.ok(&["create", "-f", file.to_str().unwrap(), "--validate=false"]);
    assert_eq!(created.trim(), "job.batch/greeter created");
    let waited = k.ok(&["wait", "--for=condition=complete", "job/greeter", "--timeout=30s"]);
    assert_eq!(waited.trim(), "job.batch/greeter condition met");
    let logs = k.ok(&["logs", "job/greeter"]);
    assert_eq!(logs, "hello from-the-sandbox\nbye\n");
    // Default output is the server's table, with a real cluster's columns.
    let table = k.ok(&["get", "jobs"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]);
    assert!(table.lines().any(|l| l.starts_with("greeter") && l.contains("Complete") && l.contains("1/1")), "{table}");
    let pods = k.ok(&["get", "pods"]);
    assert!(
        pods.lines().next().unwrap().starts_with("NAME") && pods.contains("READY") && pods.contains("RESTARTS"),
        "{pods}"
    );
    assert!(pods.lines().any(|l| l.starts_with("greeter-") && l.contains("Completed")), "{pods}");
    let pods = k.ok(&["get", "pods", "-l", "job-name=greeter", "-o", "name"]);
    assert_eq!(pods.lines().count(), 1);
    let deleted = k.ok(&["delete", "job", "greeter"]);
    // kubectl 1.36 (built by scripts/test from the control plane's release) names the namespace.
    assert_eq!(deleted.trim(), "job.batch \"greeter\" deleted from default namespace");
    for _ in 0..100 {
        if k.ok(&["get", "pods", "-l", "job-name=greeter", "-o", "name"]).trim().is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("kubectl delete (background) left the job's pods behind");
}

#[test]
fn job_from_cronjob_and_status_patch() {
    let k = Kubectl::start(SeedConfig { cronjobs: 1, ..SeedConfig::default() });
    let out = k.ok(&["create", "job", "manual-run", "--from=cronjob/nightly-000"]);
    assert_eq!(out.trim(), "job.batch/manual-run created");
    let owner = k.ok(&[
        "get",
        "job",
        "manual-run",
        "-o",
        "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}",
    ]);
    assert_eq!(owner, "CronJob/nightly-000");
    k.ok(&["wait", "--for=condition=complete", "job/manual-run", "--timeout=30s"]);
    assert_eq!(k.ok(&["logs", "job/manual-run"]), "building report for today\n");

    let patched = k.ok(&[
        "patch",
        "job",
        "manual-run",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"ready":3}}"#,
    ]);
    assert_eq!(patched.trim(), "job.batch/manual-run patched");
    assert_eq!(k.ok(&["get", "job", "manual-run", "-o", "jsonpath={.status.ready}"]), "3");
    let spec_patch =
        k.ok(&["patch", "job", "manual-run", "--type=strategic", "-p", r#"{"metadata":{"labels":{"patched":"yes"}}}"#]);
    assert_eq!(spec_patch.trim(), "job.batch/manual-run patched");
    assert_eq!(k.ok(&["get", "job", "manual-run", "-o", "jsonpath={.metadata.labels.patched}"]), "yes");
}

#[test]
fn watch_shows_the_transitions() {
    let k = Kubectl::start(SeedConfig::default());
    let mut watcher = k
        .command(&[
            "get",
            "jobs",
            "--watch",
            "--output-watch-events",
            "-o",
            "custom-columns=EVENT:.type,NAME:.object.metadata.name,DONE:.object.status.succeeded",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let file = k.dir().join("job.yaml");
    std::fs::write(&file, JOB_YAML).unwrap();
    k.ok(&["create", "-f", file.to_str().unwrap(), "--validate=false"]);
    k.ok(&["wait", "--for=condition=complete", "job/greeter", "--timeout=30s"]);
    std::thread::sleep(Duration::from_millis(300));
    watcher.kill().unwrap();
    let out = watcher.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("greeter")).collect();
    assert!(lines.first().is_some_and(|l| l.starts_with("ADDED")), "{text}");
    assert!(lines.iter().any(|l| l.starts_with("MODIFIED")), "{text}");
    assert!(lines.last().is_some_and(|l| l.ends_with('1')), "the last event shows the succeeded pod: {text}");
}
