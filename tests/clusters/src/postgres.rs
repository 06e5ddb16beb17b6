//! A PostgreSQL server of the test run's own: `initdb` in a temporary
//! directory, `postgres` on 127.0.0.1 at an ephemeral port, password
//! authentication (so the catalog's password settings are exercised), and
//! killed with the process that started it. Each test asks for a fresh
//! database.
//!
//! The binaries come from `$POLYSYNC_PG_BIN`, else `pg_config --bindir`,
//! else the newest `/usr/lib/postgresql/*/bin`; `scripts/test` installs
//! Debian's `postgresql` if none is there. PostgreSQL refuses to run as
//! root: as root, the server runs as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::ClusterError;
use crate::process::{Child, free_port, scratch_dir};

/// The role the tests connect as, and its password.
pub const USER: &str = "polysync";
pub const PASSWORD: &str = "polysync-test-password";

/// A running server.
#[derive(Debug)]
pub struct Postgres {
    child: Child,
    bin: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

/// A server's TLS: its certificate and key, and the CA its clients'
/// certificates are checked against (PEM). A server started with it takes
/// TLS connections only (`hostssl`), and authenticates the role
/// [`CERT_USER`] by its client certificate.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
    pub client_ca_pem: String,
}

/// The role a TLS server authenticates by certificate (CN).
pub const CERT_USER: &str = "certuser";

/// Where the PostgreSQL binaries are.
pub fn bin_dir() -> Result<PathBuf, ClusterError> {
    if let Some(dir) = std::env::var_os("POLYSYNC_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("postgres").exists() {
            return Ok(dir);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p): &(u32, PathBuf)| p.join("postgres").exists())
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p).ok_or_else(|| {
        ClusterError::Binaries(
            "no PostgreSQL server (postgres, initdb) found; install Debian's `postgresql` (scripts/test does) or set POLYSYNC_PG_BIN".into(),
        )
    })
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

impl Postgres {
    /// Initialize and start a server; ready when this returns.
    pub fn start() -> Result<Self, ClusterError> {
        Self::start_with(None)
    }

    /// [`Postgres::start`], with TLS (and only TLS) when `tls` is given.
    pub fn start_with(tls: Option<&ServerTls>) -> Result<Self, ClusterError> {
        Self::start_inner(tls, false)
    }

    /// A server as durable as polysync's SQLite catalog (WAL,
    /// synchronous=NORMAL): fsync and full-page writes on, so a crash never
    /// corrupts it, and synchronous_commit off, so the last commits may be
    /// lost with the machine. For benchmarks that compare the two; tests
    /// use [`Postgres::start`], which syncs nothing.
    pub fn start_as_sqlite_durable() -> Result<Self, ClusterError> {
        Self::start_inner(None, true)
    }

    /// The port is picked free and handed to postgres, which binds it a
    /// moment later; another process may take it in between, so such a
    /// start is tried again with a new port, up to three times.
    fn start_inner(tls: Option<&ServerTls>, durable: bool) -> Result<Self, ClusterError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_once(tls, durable) {
                Err(ClusterError::Exited { log_tail, .. })
                    if attempt < 3 && log_tail.contains("Address already in use") => {}
                other => return other,
            }
        }
    }

    fn start_once(tls: Option<&ServerTls>, durable: bool) -> Result<Self, ClusterError> {
        let bin = bin_dir()?;
        let user = is_root().then_some("postgres");
        let dir = scratch_dir("polysync-pg-")?;
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).map_err(|e| ClusterError::io(&pwfile, e))?;
        if let Some(user) = user {
            let status = Command::new("chown")
                .args(["-R", &format!("{user}:{user}")])
                .arg(dir.path())
                .status()
                .map_err(|e| ClusterError::Setup(format!("chown: {e}")))?;
            if !status.success() {
                return Err(ClusterError::Setup(format!("could not give {} to {user}", dir.path().display())));
            }
        }
        let mut initdb = Command::new("setpriv");
        if let Some(user) = user {
            initdb.arg(format!("--reuid={user}")).arg(format!("--regid={user}")).arg("--init-groups");
        }
        let out = initdb
            .arg("--")
            .arg(bin.join("initdb"))
            .args(["--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync", "-U", USER])
            .arg(format!("--pwfile={}", pwfile.display()))
            .arg("-D")
            .arg(&data)
            .output()
            .map_err(|e| ClusterError::Start { name: "initdb".into(), message: e.to_string() })?;
        if !out.status.success() {
            return Err(ClusterError::Start {
                name: "initdb".into(),
                message: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
            });
        }
        let port = free_port()?;
        let log = dir.path().join("postgres.log");
        let mut extra = Vec::new();
        if let Some(tls) = tls {
            let files =
                [("server.crt", &tls.cert_pem), ("server.key", &tls.key_pem), ("client-ca.crt", &tls.client_ca_pem)];
            for (name, pem) in files {
                let path = dir.path().join(name);
                std::fs::write(&path, pem).map_err(|e| ClusterError::io(&path, e))?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| ClusterError::io(&path, e))?;
                if let Some(user) = user {
                    let _ = Command::new("chown").arg(format!("{user}:{user}")).arg(&path).status();
                }
            }
            let hba = data.join("pg_hba.conf");
            let rules = format!(
                "local all all scram-sha-256\nhostssl all {CERT_USER} 127.0.0.1/32 cert\nhostssl all all 127.0.0.1/32 scram-sha-256\n"
            );
            std::fs::write(&hba, rules).map_err(|e| ClusterError::io(&hba, e))?;
            for (k, file) in
                [("ssl_cert_file", "server.crt"), ("ssl_key_file", "server.key"), ("ssl_ca_file", "client-ca.crt")]
            {
                extra.push("-c".to_owned());
                extra.push(format!("{k}={}", dir.path().join(file).display()));
            }
            extra.extend(["-c".to_owned(), "ssl=on".to_owned()]);
        }
        let args: Vec<String> = [
            "-D",
            &data.display().to_string(),
            "-p",
            &port.to_string(),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            &format!("unix_socket_directories={}", dir.path().display()),
            "-c",
            if durable { "fsync=on" } else { "fsync=off" },
            "-c",
            "synchronous_commit=off",
            "-c",
            if durable { "full_page_writes=on" } else { "full_page_writes=off" },
            "-c",
            "max_connections=300",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(extra)
        .collect();
        let child = Child::spawn_as("postgres", user, &bin.join("postgres"), &args, &log)?;
        let mut server = Self { child, bin, port, _dir: dir };
        let started = Instant::now();
        loop {
            server.child.check()?;
            if server.psql("postgres", "SELECT 1").is_ok() {
                return Ok(server);
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(ClusterError::NotReady {
                    what: "postgres".into(),
                    secs: 60,
                    hint: format!("see {}", server.child.log_path().display()),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Run one SQL command as the test role.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, ClusterError> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", USER])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-d")
            .arg(database)
            .arg("-c")
            .arg(sql)
            .env("PGPASSWORD", PASSWORD)
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
            .map_err(|e| ClusterError::Setup(format!("psql: {e}")))?;
        if !out.status.success() {
            return Err(ClusterError::Setup(format!("psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr))));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// A new, empty database; returns its URL (without the password: the
    /// catalog reads it from [`PASSWORD`] through an env var or a file).
    pub fn database(&self, name: &str) -> Result<String, ClusterError> {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))?;
        Ok(self.url(name))
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> &Path {
        self.child.log_path()
    }
}
