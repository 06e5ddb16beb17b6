//! The `polysync` binary as a user runs it against a shared cluster: a
//! config and catalog per test, commands bounded in time, their JSON.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::Cluster;

/// A config and catalog of one test, against a shared cluster.
#[derive(Debug)]
pub struct Env {
    pub cluster: &'static Cluster,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub ns: String,
}

impl Env {
    pub fn new(cluster: &'static Cluster, ns: &str) -> Self {
        cluster.ensure_namespace(ns);
        let dir = tempfile::tempdir().unwrap();
        let connection = format!(
            "provider = \"kubernetes\"\nkubeconfig = {:?}\nnamespace = \"{ns}\"",
            cluster.kubeconfig().display().to_string()
        );
        let config = crate::write_config(dir.path(), "polysync-provider-kubernetes", None, "", "k", &connection);
        Self { cluster, dir, config, ns: ns.to_owned() }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = crate::polysync_command(&self.config);
        cmd.args(args);
        cmd
    }

    /// Run to the end, killed after 3 minutes (a hang fails the test
    /// instead of the CI run).
    pub fn run(&self, args: &[&str]) -> Output {
        let child = self.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        finish(child, args)
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "polysync {args:?} exited {:?}:\n{}\n{}",
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    pub fn discover(&self) {
        self.ok(&["discover", "k"]);
    }

    pub fn job(&self, name: &str) -> Option<Value> {
        self.cluster.job(&self.ns, name)
    }

    pub fn wait_until(&self, what: &str, mut f: impl FnMut() -> bool) {
        for _ in 0..1200 {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{what} never happened in {}", self.dir.path().display());
    }
}

pub fn finish(mut child: std::process::Child, args: &[&str]) -> Output {
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("polysync {args:?} hung for 3 minutes:\n{}\n{}", text(&out.stdout), text(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn json_of(out: &Output) -> Value {
    serde_json::from_str(&text(&out.stdout))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", text(&out.stdout), text(&out.stderr)))
}
