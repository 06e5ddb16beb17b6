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

/// Credentials moto accepts (it checks none), as in
/// `tests/fixtures/aws-credentials`, which every test connection names.
pub const ACCESS_KEY: &str = "AKIDPOLYSYNCTEST0001";
pub const SECRET_KEY: &str = "polysync/test/secret/key/0000000000000001";
pub const REGION: &str = "eu-west-1";
/// The profile of `tests/fixtures/aws-credentials`.
pub const PROFILE: &str = "polysync-test";

/// The test keys' file, named by connections (`credentials_file`): keys per
/// connection, so nothing sets process-wide variables that plugin threads
/// read.
pub fn credentials_file() -> std::path::PathBuf {
    crate::workspace().join("tests/fixtures/aws-credentials")
}

/// The AWS settings of a test connection to `endpoint`.
pub fn aws_settings(endpoint: &str) -> serde_json::Value {
    serde_json::json!({
        "region": REGION,
        "endpoint_url": endpoint,
        "credentials_file": credentials_file(),
        "profile": PROFILE,
    })
}

/// The same as TOML lines of a `[connections.NAME]` table.
pub fn aws_toml(endpoint: &str) -> String {
    format!(
        "region = {REGION:?}\nendpoint_url = {endpoint:?}\ncredentials_file = {:?}\nprofile = {PROFILE:?}\n",
        credentials_file().display().to_string()
    )
}

/// `settings` (an object) with the AWS settings of [`aws_settings`] added.
pub fn with_aws(mut settings: serde_json::Value, endpoint: &str) -> serde_json::Value {
    let serde_json::Value::Object(aws) = aws_settings(endpoint) else { unreachable!() };
    settings.as_object_mut().expect("settings are an object").extend(aws);
    settings
}

/// One moto per test process.
pub fn shared() -> &'static Moto {
    static MOTO: std::sync::OnceLock<Moto> = std::sync::OnceLock::new();
    MOTO.get_or_init(Moto::start)
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
