//! `polysync serve` end to end, through plain HTTP (curl) only: the README
//! tour over the API — sync, entries, a run with parameters and an
//! idempotency key, its status over Server-Sent Events, its logs, a
//! cancelled run, a signed completion callback — plus auth, problem
//! documents, health, readiness, metrics and the OpenAPI document.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use polysync_conformance::artifacts;
use polysync_sandbox::SeedConfig;
use polysync_sandbox::resources::Kind;
use polysync_sandbox::seed;
use polysync_tests::SandboxCluster;
use serde_json::{Value, json};

const TOKEN: &str = "test-token-0123456789abcdef";
const CALLBACK_SECRET: &str = "callback-secret-0123456789";

fn plugin_dir() -> PathBuf {
    artifacts::cdylib("polysync-provider-kubernetes").parent().unwrap().to_path_buf()
}

/// A running `polysync serve` on a sandbox (killed when dropped).
struct Server {
    _process: polysync_tests::ServeProcess,
    base: String,
    cluster: SandboxCluster,
    ns: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(ns: &str) -> Self {
        Self::start_with(ns, true)
    }

    /// With `callbacks`, the server has a secret to sign callbacks with
    /// (and so takes `callback_url`); without, it refuses them.
    fn start_with(ns: &str, callbacks: bool) -> Self {
        let cluster = SandboxCluster::start(
            SeedConfig { namespace: ns.into(), jobs: 3, cronjobs: 1, ..SeedConfig::default() },
            0.02,
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "plugin_dir = {:?}\ncatalog = {:?}\n{}\n\n[connections.sandbox]\nprovider = \"kubernetes\"\nkubeconfig = {:?}\nnamespace = \"{ns}\"\n",
                plugin_dir().display().to_string(),
                dir.path().join("catalog.db").display().to_string(),
                if callbacks { "callback_secret_env = \"TEST_CALLBACK_SECRET\"" } else { "" },
                cluster.kubeconfig.display().to_string()
            ),
        )
        .unwrap();
        let process = polysync_tests::start_server(
            &config,
            "300ms",
            &[("POLYSYNC_API_TOKEN", TOKEN.into()), ("TEST_CALLBACK_SECRET", CALLBACK_SECRET.into())],
        );
        let base = process.base.clone();
        Self { _process: process, base, cluster, ns: ns.to_owned(), _dir: dir }
    }

    fn source(&self, name: &str, script: &str) {
        let mut job = seed::finished_job(&self.ns, name, 1);
        job["spec"]["template"]["spec"]["containers"][0]["args"] = json!([script]);
        job["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "TARGET", "value": "world"}, {"name": "DB_PASSWORD", "value": "hunter2-secret"}]);
        self.cluster.sandbox.store().create(Kind::Job, job).unwrap();
    }

    /// `curl` with the token and a JSON body; returns (status, content
    /// type, body).
    fn curl(&self, method: &str, path: &str, body: Option<&Value>, headers: &[&str]) -> (u16, String, String) {
        match body {
            Some(b) => {
                let headers: Vec<&str> = headers.iter().copied().chain(["Content-Type: application/json"]).collect();
                self.curl_raw(method, path, Some(&b.to_string()), &headers)
            }
            None => self.curl_raw(method, path, None, headers),
        }
    }

    /// `curl` with the token and a body as it is, with only the headers
    /// given; returns (status, content type, body).
    fn curl_raw(&self, method: &str, path: &str, body: Option<&str>, headers: &[&str]) -> (u16, String, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "60", "-X", method, "-o", "-", "-w", "\n%{http_code} %{content_type}"]);
        cmd.args(["-H", &format!("Authorization: Bearer {TOKEN}")]);
        for h in headers {
            cmd.args(["-H", h]);
        }
        if let Some(b) = body {
            cmd.args(["--data-binary", b]);
        }
        cmd.arg(format!("{}{path}", self.base));
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, tail) = text.rsplit_once('\n').unwrap();
        let (code, ctype) = tail.split_once(' ').unwrap_or((tail, ""));
        (code.parse().unwrap(), ctype.to_owned(), body.to_owned())
    }

    fn json(&self, method: &str, path: &str, body: Option<&Value>, want: u16) -> Value {
        let (code, _, text) = self.curl(method, path, body, &[]);
        assert_eq!(code, want, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"))
    }

    /// Sync the connection and wait (at most 30 s) until the sync is over;
    /// its final view.
    fn sync(&self) -> Value {
        let sync = self.json("POST", "/v1/connections/sandbox/syncs", None, 202);
        assert_eq!(sync["status"], "running", "{sync}");
        self.until("the sync to end", Duration::from_secs(30), || {
            let s = self.json("GET", &format!("/v1/syncs/{}", sync["id"]), None, 200);
            (s["status"] != "running").then_some(s)
        })
    }

    /// The first `Some` of `probe`, asked every 50 ms for at most `limit`.
    fn until<T>(&self, what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            if let Some(v) = probe() {
                return v;
            }
            assert!(started.elapsed() < limit, "waited {} s for {what}", limit.as_secs());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A local HTTP receiver of callbacks: records each request's headers and body.
/// Each callback a receiver got: (head, body).
type Received = Arc<Mutex<Vec<(String, String)>>>;

fn receiver() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let sink = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            sink.lock().unwrap().push((head, String::from_utf8_lossy(&body).into_owned()));
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, got)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn the_readme_tour_through_the_api() {
    let server = Server::start("serve-tour");
    server.source("report", "echo \"report for $TARGET\"; sleep 2; echo done; echo ROWS=7 > /dev/termination-log");
    server.source("long", "sleep 3000");

    // Without a token: 401, as a problem document.
    let out = Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "\n%{http_code} %{content_type}", &format!("{}/v1/runs", server.base)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("401 application/problem+json"), "{text}");
    assert!(text.contains("Authorization: Bearer"), "{text}");
    // Health needs no token; readiness says the catalog and plugins are there.
    let health = Command::new("curl").args(["-sS", &format!("{}/healthz", server.base)]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&health.stdout), "ok\n");
    assert_eq!(server.curl("GET", "/readyz", None, &[]).0, 200);

    // Sync; one at a time per connection.
    let s = server.sync();
    assert_eq!(s["status"], "complete", "{s}");
    assert!(s["seen"].as_u64().unwrap() >= 5, "{s}");
    let entries = server.json("GET", "/v1/entries?connection=sandbox&limit=2", None, 200);
    assert_eq!(entries["entries"].as_array().unwrap().len(), 2);
    let next = entries["next_after"].as_str().unwrap().to_owned();
    let more = server.json("GET", &format!("/v1/entries?connection=sandbox&after={next}"), None, 200);
    assert!(more["entries"].as_array().unwrap().len() >= 3, "{more}");
    let entry = server.json("GET", "/v1/connections/sandbox/entries/report", None, 200);
    assert_eq!(
        (entry["entry"].as_str(), entry["links"]["self"].as_str()),
        (Some("report"), Some("/v1/connections/sandbox/entries/report"))
    );
    // An id with a slash: as it is (a client filling the template without
    // escaping) and escaped, and the entry's own link escapes it.
    let cron = server.json("GET", "/v1/entries?connection=sandbox", None, 200)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["entry"].as_str().unwrap().starts_with("cronjob/"))
        .cloned()
        .expect("the seeded CronJob is an entry");
    let cron_id = cron["entry"].as_str().unwrap();
    assert_eq!(server.json("GET", &format!("/v1/connections/sandbox/entries/{cron_id}"), None, 200)["entry"], cron_id);
    let link = cron["links"]["self"].as_str().unwrap();
    assert_eq!(link, format!("/v1/connections/sandbox/entries/{}", cron_id.replace('/', "%2F")));
    assert_eq!(server.json("GET", link, None, 200)["entry"], cron_id);
    let params: Vec<&str> =
        entry["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(params, ["TARGET", "DB_PASSWORD"]);
    assert!(!entry.to_string().contains("hunter2"), "a secret default reached a response: {entry}");

    // A run with parameters and an idempotency key; a retry is the same run.
    let (hook, calls) = receiver();
    let request = json!({"connection": "sandbox", "entry": "report", "parameters": {"TARGET": "the api", "DB_PASSWORD": "s3cret-value"}, "callback_url": hook});
    let (code, _, text) = server.curl("POST", "/v1/runs", Some(&request), &["Idempotency-Key: tour-1"]);
    assert_eq!(code, 201, "{text}");
    let run: Value = serde_json::from_str(&text).unwrap();
    assert!(!text.contains("s3cret-value"), "a secret parameter reached a response: {text}");
    let (code, _, again) = server.curl("POST", "/v1/runs", Some(&request), &["Idempotency-Key: tour-1"]);
    assert_eq!(code, 200, "{again}");
    assert_eq!(serde_json::from_str::<Value>(&again).unwrap()["id"], run["id"]);
    let other = json!({"connection": "sandbox", "entry": "report", "parameters": {"TARGET": "else"}});
    let (code, ctype, conflict) = server.curl("POST", "/v1/runs", Some(&other), &["Idempotency-Key: tour-1"]);
    assert_eq!((code, ctype.as_str()), (409, "application/problem+json"), "{conflict}");

    // Its status over Server-Sent Events, to the end (the stream closes).
    let id = run["id"].as_i64().unwrap();
    let sse = Command::new("curl")
        .args(["-sS", "-N", "--max-time", "60", "-H", &format!("Authorization: Bearer {TOKEN}")])
        .arg(format!("{}/v1/runs/{id}/status-stream", server.base))
        .output()
        .unwrap();
    let sse = String::from_utf8_lossy(&sse.stdout);
    let states: Vec<String> = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str::<Value>(d).unwrap()["state"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(states.last().map(String::as_str), Some("Success"), "{sse}");
    assert!(sse.contains("event: status"), "{sse}");
    // A client that reconnects with the last id it got (`Last-Event-ID`)
    // is sent only what came after it: of an ended run, nothing.
    let last_id = sse.lines().filter_map(|l| l.strip_prefix("id: ")).next_back().expect("events have ids");
    let (code, _, resumed) =
        server.curl_raw("GET", &format!("/v1/runs/{id}/status-stream"), None, &[&format!("Last-Event-ID: {last_id}")]);
    assert_eq!((code, resumed.contains("event: status")), (200, false), "{resumed}");

    // Its logs.
    // What a scheduler reads of a run that ended.
    let done = server.json("GET", &format!("/v1/runs/{id}"), None, 200);
    assert_eq!((done["final"].as_bool(), done["exit_code"].as_i64()), (Some(true), Some(0)), "{done}");
    assert_eq!((done["entry"].as_str(), done["idempotency_key"].as_str()), (Some("report"), Some("tour-1")), "{done}");
    assert!(done["platform_id"].as_str().unwrap().starts_with("report-"), "{done}");
    let exit_codes = done["exit_codes"].as_object().unwrap();
    assert!(exit_codes.len() == 1 && exit_codes.values().all(|c| c == 0), "{done}");
    let (started, finished) = (done["started_at"].as_str().unwrap(), done["finished_at"].as_str().unwrap());
    assert!(started >= done["created_at"].as_str().unwrap() && started <= finished, "{done}");
    for (link, path) in [
        ("self", ""),
        ("logs", "/logs"),
        ("events", "/events"),
        ("status_stream", "/status-stream"),
        ("cancel", "/cancel"),
    ] {
        assert_eq!(done["links"][link], format!("/v1/runs/{id}{path}"), "{done}");
    }
    assert_eq!(done["links"]["entry"], "/v1/connections/sandbox/entries/report");
    // Before its end, `outputs` is there and empty, `exit_code` null.
    let fresh = server.json("POST", "/v1/runs", Some(&json!({"connection": "sandbox", "entry": "long"})), 201);
    assert_eq!(
        (&fresh["outputs"], &fresh["exit_code"], &fresh["final"]),
        (&json!({}), &Value::Null, &json!(false)),
        "{fresh}"
    );
    server.json("POST", &format!("/v1/runs/{}/cancel", fresh["id"]), None, 200);

    let (code, ctype, logs) = server.curl("GET", &format!("/v1/runs/{id}/logs"), None, &[]);
    assert_eq!(code, 200);
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    assert!(logs.contains("report for the api"), "{logs}");

    // Cancel another.
    let long = server.json("POST", "/v1/runs", Some(&json!({"connection": "sandbox", "entry": "long"})), 201);
    server.until("the long run to run", Duration::from_secs(30), || {
        let run = server.json("GET", &format!("/v1/runs/{}", long["id"]), None, 200);
        (run["state"] == "Running").then_some(())
    });
    let cancelled = server.json("POST", &format!("/v1/runs/{}/cancel", long["id"]), None, 200);
    assert_eq!(cancelled["outcome"], "Cancelled", "{cancelled}");
    assert_eq!(cancelled["run"]["state"], "Cancelled");
    assert_eq!(cancelled["run"]["final"], true);
    // Again: it had ended, nothing was stopped.
    let again = server.json("POST", &format!("/v1/runs/{}/cancel", long["id"]), None, 200);
    assert_eq!(
        (again["outcome"].as_str(), again["run"]["reason"].as_str()),
        (Some("AlreadyDone"), Some("CancelledByUser")),
        "{again}"
    );

    // The signed callback arrived, once per event id, with the final status.
    let started = Instant::now();
    let (head, body) = loop {
        if let Some(c) = calls.lock().unwrap().first().cloned() {
            break c;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no callback arrived");
        std::thread::sleep(Duration::from_millis(100));
    };
    let sent: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(sent["run"]["state"], "Success", "{body}");
    assert_eq!(sent["run"]["outputs"], json!({"ROWS": "7"}), "the run's outputs ride along: {body}");
    let got = server.json("GET", &format!("/v1/runs/{id}"), None, 200);
    assert_eq!(got["outputs"], json!({"ROWS": "7"}), "{got}");
    assert_eq!(header(&head, "x-polysync-event-id"), Some(format!("run-{id}-success").as_str()));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(CALLBACK_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(header(&head, "x-polysync-signature"), Some(format!("sha256={expected}").as_str()));
    assert!(!body.contains("s3cret-value"), "a secret parameter reached a callback: {body}");

    // Errors are problem documents with the right status.
    let (code, ctype, _) = server.curl("GET", "/v1/runs/999999", None, &[]);
    assert_eq!((code, ctype.as_str()), (404, "application/problem+json"));
    let (code, _, text) = server.curl(
        "POST",
        "/v1/runs",
        Some(&json!({"connection": "sandbox", "entry": "report", "parameters": {"NOPE": "1"}})),
        &[],
    );
    assert_eq!(code, 422, "{text}");
    assert!(text.contains("valid parameters: TARGET, DB_PASSWORD"), "{text}");
    let (code, _, _) = server.curl("GET", "/v1/runs?limit=0", None, &[]);
    assert_eq!(code, 400);
    let big = json!({"connection": "sandbox", "entry": "report", "parameters": {"TARGET": "x".repeat(100_000)}});
    // Every error is a problem document, also those the HTTP framework
    // makes before a handler runs.
    let problem = |method: &str, path: &str, body: Option<&str>, headers: &[&str], want: u16, kind: &str| {
        let (code, ctype, body) = server.curl_raw(method, path, body, headers);
        assert_eq!((code, ctype.as_str()), (want, "application/problem+json"), "{method} {path}: {body}");
        let doc: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}"));
        assert_eq!((doc["status"].as_u64(), doc["kind"].as_str()), (Some(u64::from(want)), Some(kind)), "{doc}");
        assert!(!doc["detail"].as_str().unwrap_or_default().is_empty(), "{doc}");
        // Its type is a page of this server that describes the kind.
        let (code, ctype, page) = server.curl_raw("GET", doc["type"].as_str().unwrap(), None, &[]);
        assert_eq!((code, ctype.as_str()), (200, "text/html; charset=utf-8"), "{doc}");
        assert!(page.contains(&format!("<code>{kind}</code>")), "{page}");
        doc
    };
    let json_type = "Content-Type: application/json";
    let too_big = problem("POST", "/v1/runs", Some(&big.to_string()), &[json_type], 413, "invalid_input");
    assert!(too_big["detail"].as_str().unwrap().contains("64 KiB"), "{too_big}");
    let wrong_method = problem("DELETE", "/v1/runs", None, &[], 405, "invalid_input");
    assert!(wrong_method["detail"].as_str().unwrap().contains("does not take DELETE"), "{wrong_method}");
    problem("POST", "/v1/runs", Some("{not json"), &[json_type], 400, "invalid_input");
    problem("POST", "/v1/runs", Some(r#"{"connection": 7}"#), &[json_type], 400, "invalid_input");
    problem(
        "POST",
        "/v1/runs",
        Some(r#"{"connection": "sandbox"}"#),
        &["Content-Type: text/plain"],
        415,
        "invalid_input",
    );
    problem("GET", "/v2/nothing", None, &[], 404, "not_found");

    // Metrics: runs by state and submissions, no parameter values.
    let (code, _, metrics) = server.curl("GET", "/metrics", None, &[]);
    assert_eq!(code, 200);
    assert!(metrics.contains("polysync_runs{state=\"Success\"} 1"), "{metrics}");
    assert!(metrics.contains("polysync_submissions_total{outcome=\"created\"} 3"), "{metrics}");
    assert!(metrics.contains("polysync_submissions_total{outcome=\"existing\"} 1"), "{metrics}");
    assert!(!metrics.contains("s3cret") && !metrics.contains("the api"), "{metrics}");

    // The OpenAPI document is 3.1 and names every path.
    let doc = server.json("GET", "/v1/openapi.json", None, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    for path in ["/v1/runs", "/v1/runs/{id}/status-stream", "/v1/connections/{name}/syncs", "/v1/entries"] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from the document");
    }
    // It holds no secret: a generator fetches it without a token, and
    // `polysync openapi` prints the same document offline.
    let open = Command::new("curl").args(["-sS", "-f", &format!("{}/v1/openapi.json", server.base)]).output().unwrap();
    assert!(open.status.success(), "{}", String::from_utf8_lossy(&open.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&open.stdout).unwrap(), doc);
    let offline = Command::new(artifacts::executable("polysync", "polysync")).arg("openapi").output().unwrap();
    assert!(offline.status.success(), "{}", String::from_utf8_lossy(&offline.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&offline.stdout).unwrap(), doc);
}

#[test]
fn a_server_without_tokens_refuses_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, format!("catalog = {:?}\n", dir.path().join("c.db").display().to_string())).unwrap();
    let out = Command::new(artifacts::executable("polysync", "polysync"))
        .arg("--config")
        .arg(&config)
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env_remove("POLYSYNC_API_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(20));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("without tokens") && err.contains("POLYSYNC_API_TOKEN"), "{err}");
    // A claim interval of nothing would spin on the catalog: refused.
    let out = Command::new(artifacts::executable("polysync", "polysync"))
        .arg("--config")
        .arg(&config)
        .args(["serve", "--listen", "127.0.0.1:0", "--claim-every", "0s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(20));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--claim-every"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// One HTTP/1.1 request over a fresh connection; returns (status, body).
fn http(base: &str, method: &str, path: &str, body: Option<&Value>, headers: &[(&str, &str)]) -> (u16, String) {
    let addr = base.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\nContent-Length: {}\r\n",
        payload.len()
    );
    if body.is_some() {
        request.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&payload);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// Three replicas on one PostgreSQL catalog; 1,000 runs submitted through
/// all of them; one replica killed with SIGKILL while they run. Every run
/// reaches its true end, none is lost, no Job is created twice, and the
/// others take the dead replica's runs over within the lease.
#[test]
fn three_replicas_share_a_postgresql_catalog_and_survive_a_kill() {
    const RUNS: usize = 1000;
    let ns = "serve-replicas";
    let cluster = SandboxCluster::start(SeedConfig { namespace: ns.into(), jobs: 0, ..SeedConfig::default() }, 0.02);
    let mut job = seed::finished_job(ns, "steady", 1);
    job["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["echo start; sleep 900; echo done"]);
    cluster.sandbox.store().create(Kind::Job, job).unwrap();
    let pg = polysync_clusters::postgres::Postgres::start().unwrap();
    let url = pg.database("replicas").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "plugin_dir = {:?}\ncatalog = {url:?}\ncatalog_password_env = \"TEST_PG_PASSWORD\"\nrun_lease = \"3s\"\n\n[connections.sandbox]\nprovider = \"kubernetes\"\nkubeconfig = {:?}\nnamespace = \"{ns}\"\n",
            plugin_dir().display().to_string(),
            cluster.kubeconfig.display().to_string()
        ),
    )
    .unwrap();
    let start = |i: usize| {
        polysync_tests::start_server(
            &config,
            "500ms",
            &[
                ("POLYSYNC_API_TOKEN", TOKEN.into()),
                ("TEST_PG_PASSWORD", polysync_clusters::postgres::PASSWORD.into()),
                ("POLYSYNC_HOST_NAME", format!("replica-{i}")),
            ],
        )
    };
    let mut replicas: Vec<polysync_tests::ServeProcess> = (0..3).map(start).collect();
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();
    let (code, body) = http(&bases[0], "POST", "/v1/connections/sandbox/syncs", None, &[]);
    assert_eq!(code, 202, "{body}");
    let sync: Value = serde_json::from_str(&body).unwrap();
    let started = Instant::now();
    loop {
        let (_, body) = http(&bases[1], "GET", &format!("/v1/syncs/{}", sync["id"]), None, &[]);
        if serde_json::from_str::<Value>(&body).unwrap()["status"] == "complete" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the sync did not end: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }

    let submitted = Instant::now();
    std::thread::scope(|s| {
        for t in 0..6 {
            let bases = &bases;
            s.spawn(move || {
                for i in (t..RUNS).step_by(6) {
                    let request = json!({"connection": "sandbox", "entry": "steady"});
                    let key = format!("replicas-{i}");
                    let (code, body) =
                        http(&bases[i % 3], "POST", "/v1/runs", Some(&request), &[("Idempotency-Key", &key)]);
                    assert_eq!(code, 201, "run {i}: {body}");
                }
            });
        }
    });
    eprintln!("{RUNS} runs submitted through 3 replicas in {:.1} s", submitted.elapsed().as_secs_f64());

    // Kill one mid-way, while its runs are running.
    let owned_by_dead = || {
        pg.psql("replicas", "SELECT count(*) FROM runs WHERE owner LIKE 'replica-0/%' AND NOT finalized")
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let held = owned_by_dead();
    assert!(held > 0, "replica 0 followed none of its runs");
    replicas[0].child.kill();
    let killed = Instant::now();
    let takeover = loop {
        if owned_by_dead() == 0 {
            break killed.elapsed();
        }
        assert!(killed.elapsed() < Duration::from_secs(60), "the other replicas did not take over");
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("replica 0 held {held} runs; all taken over {:.2} s after SIGKILL (lease 3 s)", takeover.as_secs_f64());

    // Every run reaches its true end.
    let started = Instant::now();
    loop {
        let done: u64 = pg
            .psql("replicas", "SELECT count(*) FROM runs WHERE finalized AND state = 'Success'")
            .unwrap()
            .parse()
            .unwrap();
        if done as usize == RUNS {
            break;
        }
        let states = pg
            .psql(
                "replicas",
                "SELECT string_agg(state || ':' || n, ' ') FROM (SELECT state, count(*) n FROM runs GROUP BY state) s",
            )
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(240), "runs did not all end: {states}");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(pg.psql("replicas", "SELECT count(*) FROM runs").unwrap(), RUNS.to_string(), "runs lost or duplicated");
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .args(["get", "jobs", "-n", ns, "-o", "name", "-l", "polysync.io/source=steady"])
        .output()
        .unwrap();
    let jobs = String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).count();
    assert_eq!(jobs, RUNS, "a Job was created twice (or lost)");
    // A create sent to any replica is visible from all.
    let (code, body) = http(&bases[2], "GET", "/v1/runs?limit=1000", None, &[]);
    assert_eq!(code, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["runs"].as_array().unwrap().len(), RUNS);
    drop(replicas);
}

/// Schemathesis, against the OpenAPI document of a live server on the
/// sandbox, with a bounded number of examples per operation: no 5xx, and
/// every status, content type, header and body as the document says.
#[test]
fn schemathesis_finds_no_server_error_and_no_response_outside_the_document() {
    // No callback secret: a generated callback URL is refused, never called.
    let server = Server::start_with("serve-schemathesis", false);
    server.source("report", "echo report; sleep 1");
    assert_eq!(server.sync()["status"], "complete");
    // A run to find, cancel and read.
    server.json("POST", "/v1/runs", Some(&json!({"connection": "sandbox", "entry": "report"})), 201);
    let report = tempfile::tempdir().unwrap();
    let out = Command::new("python3")
        .args(["-m", "schemathesis.cli", "--config-file"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("schemathesis/schemathesis.toml"))
        .args(["run", &format!("{}/v1/openapi.json", server.base)])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        // Every check, positive and negative data: what the document
        // allows is accepted, what it forbids is refused with a 4xx.
        .args(["--checks", "all", "--mode", "all"])
        .args(["--phases", "examples,coverage,fuzzing", "-n", "25", "--seed", "20261130", "--no-color"])
        .args(["--request-timeout", "10", "--generation-database", "none"])
        .arg("--report-dir")
        .arg(report.path())
        // Its cache (`.schemathesis/`) goes into the working directory:
        // the temp dir, not the work tree.
        .current_dir(report.path())
        .output()
        .expect("schemathesis runs (scripts/test installs it: pip install schemathesis)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found failures:\n{text}");
    assert!(text.contains(" passed"), "{text}");
}

/// The status page in headless Chromium: the runs with their live state
/// (from the status stream), a run's parameters and its logs, and a
/// screenshot that is a real rendering of it.
#[test]
fn the_status_page_renders_live_state_in_chromium() {
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("headless Chromium is needed (scripts/test installs Debian's chromium)");
    let server = Server::start("serve-page");
    server.source("report", "echo \"page report for $TARGET\"; sleep 1; echo done");
    assert_eq!(server.sync()["status"], "complete");
    let run = server.json(
        "POST",
        "/v1/runs",
        Some(&json!({"connection": "sandbox", "entry": "report", "parameters": {"TARGET": "browsers"}})),
        201,
    );
    let id = run["id"].as_i64().unwrap();
    // Headless --dump-dom cannot wait on a page that keeps an event stream
    // open; a small DevTools-protocol client (Node, tests/browser) lets the
    // page run, then reads its DOM and takes a screenshot.
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/snapshot.mjs");
    let shots = tempfile::tempdir().unwrap();
    let browse = |url: &str, wait_ms: u32, shot: &std::path::Path| {
        let out = Command::new("node")
            .arg("--experimental-websocket")
            .arg(&script)
            .arg(chromium)
            .arg(url)
            .arg(wait_ms.to_string())
            .arg(shot)
            .output()
            .expect("node runs (it is on the machine, like python3)");
        assert!(out.status.success(), "the browser snapshot failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let token = format!("?access_token={TOKEN}");
    let list_shot = shots.path().join("runs.png");
    // The list: the run's row turns Success through the status stream.
    let started = Instant::now();
    let dom = loop {
        let dom = browse(&format!("{}/{token}", server.base), 2500, &list_shot);
        if dom.contains(&format!("id=\"run-{id}\"")) && dom.contains("class=\"state Success\"") {
            break dom;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the page never showed the run as Success:\n{dom}");
    };
    assert!(dom.contains("<p id=\"live\">live: connected</p>"), "the status stream did not connect:\n{dom}");
    // The run: its parameters and its logs, fetched by the page.
    let dom = browse(&format!("{}/runs/{id}{token}", server.base), 2000, &shots.path().join("run.png"));
    assert!(dom.contains("<td>browsers</td>") && dom.contains("page report for browsers"), "{dom}");
    assert!(dom.contains("id=\"state\" class=\"Success\""), "{dom}");
    // The screenshot: a PNG of the window's width with real content in it.
    let png = std::fs::read(&list_shot).expect("the screenshot was written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert!(width == 1200 && height >= 400, "unexpected size {width}x{height}");
    assert!(png.len() > 8_000, "the screenshot is nearly empty ({} bytes): nothing rendered", png.len());
}

/// The document as `polysync openapi` prints it, in `dir`.
fn document_in(dir: &Path) -> PathBuf {
    let out = Command::new(artifacts::executable("polysync", "polysync")).arg("openapi").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let path = dir.join("openapi.json");
    std::fs::write(&path, out.stdout).unwrap();
    path
}

/// A server with the two entries the client workflows use.
fn workflow_server(ns: &str) -> Server {
    let server = Server::start(ns);
    server.source("report", "echo \"report for $TARGET\"; echo ROWS=7 > /dev/termination-log");
    server.source("long", "sleep 3000");
    server
}

/// Run `program args` in `dir` to its end (at most `limit`, and never
/// past the test); panics with its output unless it succeeded and printed
/// `done`.
fn workflow(
    program: &str,
    args: &[String],
    envs: &[(&str, String)],
    dir: &Path,
    limit: Duration,
    done: &str,
) -> String {
    let text = polysync_clusters::process::Child::run_to_end(program, Path::new(program), args, envs, dir, limit)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(text.contains(done), "{program} {args:?} did not say {done:?}:\n{text}");
    text
}

fn strings<const N: usize>(args: [&dyn std::fmt::Display; N]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// A client that openapi-python-client generates from the document runs
/// a scheduler's whole workflow (tests/clients/python/workflow.py).
#[test]
fn a_generated_python_client_runs_the_whole_workflow() {
    let server = workflow_server("serve-python-client");
    let dir = tempfile::tempdir().unwrap();
    let doc = document_in(dir.path());
    // No formatter runs after generation (it would need ruff).
    std::fs::write(dir.path().join("generator.yaml"), "post_hooks: []\n").unwrap();
    let (d, doc) = (dir.path().display(), doc.display());
    let generate = strings([
        &"-m",
        &"openapi_python_client",
        &"generate",
        &"--meta",
        &"none",
        &"--path",
        &doc,
        &"--output-path",
        &format!("{d}/polysync_client"),
        &"--config",
        &format!("{d}/generator.yaml"),
    ]);
    workflow("python3", &generate, &[], dir.path(), Duration::from_secs(120), "Generating");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python/workflow.py");
    let run = strings([&script.display(), &server.base, &TOKEN, &d]);
    let text = workflow("python3", &run, &[], dir.path(), Duration::from_secs(300), "workflow complete");
    assert!(!text.contains("s3cret"), "a secret reached the client's output:\n{text}");
    println!("{text}");
}

/// A client that @hey-api/openapi-ts generates from the document, its SSE
/// client included, type-checks against a scheduler's whole workflow and
/// runs it (tests/clients/typescript/workflow.ts).
#[test]
fn a_generated_typescript_client_runs_the_whole_workflow() {
    let tools = polysync_tests::tool_dir(
        "POLYSYNC_TS_TOOLS",
        "installs the TypeScript generator and compiler (npm ci in tests/clients/typescript)",
    );
    let server = workflow_server("serve-ts-client");
    let dir = tempfile::tempdir().unwrap();
    let doc = document_in(dir.path());
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/typescript");
    for file in ["workflow.ts", "tsconfig.json"] {
        std::fs::copy(source.join(file), dir.path().join(file)).unwrap();
    }
    std::os::unix::fs::symlink(&tools, dir.path().join("node_modules")).unwrap();
    let bin = |name: &str| tools.join(".bin").join(name).display().to_string();
    let limit = Duration::from_secs(180);
    workflow(&bin("openapi-ts"), &strings([&"-i", &doc.display(), &"-o", &"gen"]), &[], dir.path(), limit, "");
    workflow(&bin("tsc"), &strings([&"-p", &"."]), &[], dir.path(), limit, "");
    let run = strings([&"out/workflow.js", &server.base, &TOKEN]);
    let text = workflow("node", &run, &[], dir.path(), Duration::from_secs(300), "workflow complete");
    assert!(!text.contains("s3cret"), "a secret reached the client's output:\n{text}");
    println!("{text}");
}

/// Apache Airflow 3 (its own venv, SQLite metadata) runs the provider of
/// `integrations/airflow` against the server with `airflow dags test`:
/// outputs in XCom, a failure with its reason, a retry after a lost worker
/// following the same run, the deferral really taken, and a killed task
/// cancelling its run.
#[test]
fn airflow_runs_polysync_through_its_provider() {
    let airflow = polysync_tests::tool_dir("POLYSYNC_AIRFLOW", "installs Apache Airflow into a venv of its own");
    let server = workflow_server("serve-airflow");
    server.source("fails", "echo about to fail; exit 3");
    server.source("slow", "sleep 4; echo slow done");
    let home = tempfile::tempdir().unwrap();
    let envs = polysync_tests::airflow_env(home.path(), "dags", &server.base, TOKEN);
    let bin = airflow.join("airflow").display().to_string();
    let limit = Duration::from_secs(300);
    let airflow_cmd = |args: &[&str]| {
        polysync_clusters::process::Child::run_to_end(
            "airflow",
            Path::new(&bin),
            &strings_of(args),
            &envs,
            home.path(),
            limit,
        )
    };
    airflow_cmd(&["db", "migrate"]).unwrap_or_else(|e| panic!("{e}"));

    // Success: the outputs in XCom, the wait deferred to the trigger.
    let out = airflow_cmd(&["dags", "test", "polysync_success"]).unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("XCOM outputs={'ROWS': '7'}"), "{out}");
    assert!(out.contains("deferring: the triggerer follows polysync run #"), "{out}");
    assert!(
        out.contains("running trigger in line") && out.contains("through its status stream"),
        "the wait was not deferred:\n{out}"
    );
    assert!(!out.contains(TOKEN), "the token reached Airflow's output:\n{out}");
    println!("{out}");

    // Failure: the task fails with the run's reason and exit code.
    let out = airflow_cmd(&["dags", "test", "polysync_failure"]).expect_err("the DAG run fails");
    assert!(out.contains("ended Failed (exit code 3): BackoffLimitExceeded"), "{out}");

    // A lost worker's retry follows the run its first try started.
    let out = airflow_cmd(&["dags", "test", "polysync_retry"]).unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("LOST WORKER after starting run #"), "{out}");
    assert!(out.contains("started by an earlier try"), "{out}");
    let slow = server.json("GET", "/v1/runs?entry=slow", None, 200);
    assert_eq!(slow["runs"].as_array().unwrap().len(), 1, "a retry started a second run: {slow}");
    assert_eq!(slow["runs"][0]["state"], "Success", "{slow}");

    // A task killed by its timeout cancels its run.
    let out = airflow_cmd(&["dags", "test", "polysync_kill"]).expect_err("the DAG run times out");
    assert!(out.contains("cancelled polysync run #"), "{out}");
    let long = server.json("GET", "/v1/runs?entry=long", None, 200);
    let run = &long["runs"][0];
    assert_eq!((run["state"].as_str(), run["reason"].as_str()), (Some("Cancelled"), Some("CancelledByUser")), "{long}");
}

fn strings_of(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}
