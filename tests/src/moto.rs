//! `moto_server`, the AWS peer of the eks and ecs tests: started per test
//! binary on 127.0.0.1 and an ephemeral port, stopped when the test process
//! ends (its stdin closes).

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    pub url: String,
    child: Child,
    _stdin: ChildStdin,
}

/// Credentials moto accepts (it checks none); tests set them in the
/// environment so the AWS chain finds them.
pub const ACCESS_KEY: &str = "AKIDPOLYSYNCTEST0001";
pub const SECRET_KEY: &str = "polysync/test/secret/key/0000000000000001";
pub const REGION: &str = "eu-west-1";

/// One moto per test binary, with the test credentials in the environment.
pub fn shared() -> &'static Moto {
    static MOTO: std::sync::OnceLock<Moto> = std::sync::OnceLock::new();
    MOTO.get_or_init(|| {
        Moto::use_test_credentials();
        Moto::start()
    })
}

impl Moto {
    pub fn start() -> Self {
        let script = crate::workspace().join("tests/python/moto_peer.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs tests/python/moto_peer.py (scripts/test installs moto[server])");
        let stdin = child.stdin.take().expect("piped stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line).expect("moto prints its port");
        let port = line.trim().strip_prefix("PORT ").unwrap_or_else(|| panic!("moto_peer.py said {line:?}"));
        Self { url: format!("http://127.0.0.1:{port}"), child, _stdin: stdin }
    }

    /// Put the test credentials and region in this process's environment,
    /// where the AWS chain (in-process or in a plugin) finds them.
    pub fn use_test_credentials() {
        // Set once per test binary through `shared`, before anything that
        // reads the environment is started.
        unsafe_env::set("AWS_ACCESS_KEY_ID", ACCESS_KEY);
        unsafe_env::set("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
        unsafe_env::set("AWS_REGION", REGION);
        unsafe_env::remove("AWS_SESSION_TOKEN");
        unsafe_env::remove("AWS_PROFILE");
        // No ~/.aws of the developer's, no instance metadata probing.
        unsafe_env::set("AWS_CONFIG_FILE", "/dev/null");
        unsafe_env::set("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
        unsafe_env::set("AWS_EC2_METADATA_DISABLED", "true");
    }

    /// Create an EKS cluster whose DescribeCluster answers `endpoint` and `ca`.
    pub fn create_eks_cluster(&self, name: &str, endpoint: &str, ca: &str) {
        self.python(&format!(
            "import boto3; boto3.client('eks', endpoint_url={url:?}, region_name={REGION:?}).create_cluster(name={name:?}, roleArn='arn:aws:iam::123456789012:role/eks', resourcesVpcConfig={{}}, tags={{'polysync-test/endpoint': {endpoint:?}, 'polysync-test/ca': {ca:?}}})",
            url = self.url
        ));
    }

    /// Run Python with boto3 and the test credentials.
    pub fn python(&self, code: &str) {
        let status = Command::new("python3")
            .args(["-c", code])
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .status()
            .expect("python3");
        assert!(status.success(), "python failed: {code}");
    }

    /// POST a JSON body to moto's own API (`/moto-api/...`).
    pub fn api(&self, path: &str, body: &serde_json::Value) {
        let status = Command::new("python3")
            .args(["-c", "import sys,urllib.request as u; r=u.urlopen(u.Request(sys.argv[1], data=sys.argv[2].encode(), method='POST')); sys.exit(0 if r.status<300 else 1)"])
            .arg(format!("{}{path}", self.url))
            .arg(body.to_string())
            .status()
            .expect("python3");
        assert!(status.success(), "moto {path} failed");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

mod unsafe_env {
    #![allow(unsafe_code)]

    pub fn set(key: &str, value: &str) {
        // SAFETY: called by test set-up before the test starts other threads
        // that read the environment.
        unsafe { std::env::set_var(key, value) }
    }

    pub fn remove(key: &str) {
        // SAFETY: as for `set`.
        unsafe { std::env::remove_var(key) }
    }
}
