//! Child processes that never outlive the test or launcher that started them.
//!
//! Each child runs under `setpriv --pdeathsig KILL`, so the kernel kills it
//! when its parent goes, even on a panic that skips destructors or a
//! `kill -9` of the test binary. The parent-death signal follows the thread
//! that forked, so every child is spawned from one thread that lives as long
//! as the process. Dropping a [`Child`] kills it and waits for it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use crate::ClusterError;

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<std::process::Child>>);

fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("polysync-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
                // The channel is never closed while the process lives: the
                // sender is in a static. Park so the thread (the children's
                // parent) lives on.
                loop {
                    std::thread::park();
                }
            })
            .expect("spawner thread starts");
        Mutex::new(tx)
    })
}

/// A running child process, killed when dropped.
#[derive(Debug)]
pub struct Child {
    name: String,
    child: std::process::Child,
    log: PathBuf,
}

impl Child {
    /// Start `program` with `args`, its stdout and stderr appended to `log`.
    pub fn spawn(name: &str, program: &Path, args: &[String], log: &Path) -> Result<Self, ClusterError> {
        Self::spawn_as(name, None, program, args, log)
    }

    /// [`Child::spawn`] as `user` (servers that refuse to run as root).
    pub fn spawn_as(
        name: &str,
        user: Option<&str>,
        program: &Path,
        args: &[String],
        log: &Path,
    ) -> Result<Self, ClusterError> {
        Self::spawn_full(name, user, program, args, &[], log)
    }

    /// [`Child::spawn`] with environment variables of its own.
    pub fn spawn_with_env(
        name: &str,
        program: &Path,
        args: &[String],
        envs: &[(&str, String)],
        log: &Path,
    ) -> Result<Self, ClusterError> {
        Self::spawn_full(name, None, program, args, envs, log)
    }

    /// Run `program` in `dir` to its end, at most `limit` (then it is
    /// killed); its stdout and stderr go to a log file of its own. `Ok` with what it
    /// printed if it succeeded, else `Err` saying how it ended and what it
    /// printed.
    pub fn run_to_end(
        name: &str,
        program: &Path,
        args: &[String],
        envs: &[(&str, String)],
        dir: &Path,
        limit: std::time::Duration,
    ) -> Result<String, String> {
        // Each run's own output only, in a file of its own: two runs of the
        // same program in the same directory must not share one (and the
        // work tree gets no stray logs).
        let scratch = tempfile::Builder::new()
            .prefix(&format!("polysync-{}-", name.replace(|c: char| !c.is_ascii_alphanumeric(), "-")))
            .tempdir()
            .map_err(|e| format!("a log directory for {name}: {e}"))?;
        let log = scratch.path().join("output.log");
        let mut child = Self::spawn_in(name, None, program, args, envs, Some(dir), &log).map_err(|e| e.to_string())?;
        let deadline = std::time::Instant::now() + limit;
        let status = loop {
            if let Ok(Some(status)) = child.child.try_wait() {
                break Some(status);
            }
            if std::time::Instant::now() > deadline {
                child.kill();
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        match status {
            Some(s) if s.success() => Ok(text),
            Some(s) => Err(format!("{name} ended with {s}:\n{text}")),
            None => Err(format!("{name} did not end within {} s:\n{text}", limit.as_secs())),
        }
    }

    fn spawn_full(
        name: &str,
        user: Option<&str>,
        program: &Path,
        args: &[String],
        envs: &[(&str, String)],
        log: &Path,
    ) -> Result<Self, ClusterError> {
        Self::spawn_in(name, user, program, args, envs, None, log)
    }

    fn spawn_in(
        name: &str,
        user: Option<&str>,
        program: &Path,
        args: &[String],
        envs: &[(&str, String)],
        dir: Option<&Path>,
        log: &Path,
    ) -> Result<Self, ClusterError> {
        let out =
            std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(|e| ClusterError::io(log, e))?;
        let err = out.try_clone().map_err(|e| ClusterError::io(log, e))?;
        let mut command = Command::new("setpriv");
        if let Some(user) = user {
            command.arg(format!("--reuid={user}")).arg(format!("--regid={user}")).arg("--init-groups");
        }
        command.arg("--pdeathsig").arg("KILL").arg("--").arg(program).args(args);
        command.envs(envs.iter().map(|(k, v)| (*k, v.as_str())));
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        let (tx, rx) = mpsc::channel();
        spawner()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send((command, tx))
            .map_err(|_| ClusterError::Setup("the spawner thread is gone".into()))?;
        let child = rx.recv().map_err(|_| ClusterError::Setup("the spawner thread is gone".into()))?.map_err(|e| {
            ClusterError::Start { name: name.to_owned(), message: format!("{}: {e}", program.display()) }
        })?;
        Ok(Self { name: name.to_owned(), child, log: log.to_owned() })
    }

    /// `Err` with the end of its log if the process has exited.
    pub fn check(&mut self) -> Result<(), ClusterError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(ClusterError::Exited {
                name: self.name.clone(),
                status: status.to_string(),
                log_tail: tail(&self.log),
            }),
            _ => Ok(()),
        }
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Its process id (setpriv execs the program, so this is the program's).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Ask it to stop (SIGTERM) and wait for it.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last lines of a log file, for error messages.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// A free TCP port on 127.0.0.1 (for a child that takes a port number).
pub fn free_port() -> Result<u16, ClusterError> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| ClusterError::Setup(format!("no free port: {e}")))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| ClusterError::Setup(format!("no free port: {e}")))
}

/// A temporary directory for a child's data that outlives no test run: the
/// owner's pid is written into it, and directories with `prefix` whose owner
/// is gone are removed first. A test binary's shared server lives in a
/// static, which is never dropped, so its `TempDir` never cleans up; its
/// processes die with it (parent-death signal), its data stays until the
/// next start sweeps it. Without this, every test run left its PostgreSQL
/// and etcd data behind in the temp directory.
pub fn scratch_dir(prefix: &str) -> Result<tempfile::TempDir, ClusterError> {
    remove_stale(prefix);
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| ClusterError::Setup(format!("no temporary directory: {e}")))?;
    let owner = dir.path().join(OWNER_FILE);
    std::fs::write(&owner, std::process::id().to_string()).map_err(|e| ClusterError::io(&owner, e))?;
    Ok(dir)
}

const OWNER_FILE: &str = "owner.pid";

fn remove_stale(prefix: &str) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let Ok(pid) = std::fs::read_to_string(entry.path().join(OWNER_FILE)) else { continue };
        let pid = pid.trim();
        if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
