//! Container logs as the simulated containers write them, one attempt per
//! container start, so `previous` reads the attempt before a restart and the
//! current log holds only the running (or last) attempt, as a kubelet's do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Most bytes kept per container; later output is dropped.
const MAX_BYTES: usize = 8 * 1024 * 1024;

/// One line: (attempt, RFC 3339 timestamp, text with its newline).
pub type Line = (usize, String, String);

#[derive(Debug, Default)]
struct Lines {
    lines: Vec<Line>,
    bytes: usize,
    /// Attempts started so far (0 before the first start).
    attempts: usize,
}

/// One container's log: timestamped lines, and a signal for followers.
#[derive(Debug)]
pub struct ContainerLog {
    lines: Mutex<Lines>,
    /// (lines written, finished)
    progress: watch::Sender<(usize, bool)>,
}

impl ContainerLog {
    fn new() -> Self {
        Self { lines: Mutex::default(), progress: watch::channel((0, false)).0 }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lines> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn append(&self, text: String) {
        let mut l = self.lock();
        if l.bytes + text.len() > MAX_BYTES {
            return;
        }
        l.bytes += text.len();
        let ts = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S.%fZ").to_string();
        let attempt = l.attempts.saturating_sub(1);
        l.lines.push((attempt, ts, text));
        let n = l.lines.len();
        self.progress.send_modify(|p| p.0 = n);
    }

    /// The container exited (or was killed).
    pub fn finish(&self) {
        self.progress.send_modify(|p| p.1 = true);
    }

    /// The container (re)starts: a new attempt begins.
    pub fn restart(&self) {
        self.lock().attempts += 1;
        self.progress.send_modify(|p| p.1 = false);
    }

    /// The attempt whose lines a read shows: the current one, or with
    /// `previous` the one before it (`None` if the container never restarted).
    pub fn attempt(&self, previous: bool) -> Option<usize> {
        let current = self.lock().attempts.saturating_sub(1);
        if previous { current.checked_sub(1) } else { Some(current) }
    }

    /// Lines of `attempt` at positions `from..`, and the position after them.
    pub fn read(&self, attempt: usize, from: usize) -> (Vec<Line>, usize) {
        let l = self.lock();
        let lines = l.lines.get(from..).unwrap_or_default().iter().filter(|(a, _, _)| *a == attempt).cloned().collect();
        (lines, l.lines.len().max(from))
    }

    pub fn subscribe(&self) -> watch::Receiver<(usize, bool)> {
        self.progress.subscribe()
    }

    pub fn is_finished(&self) -> bool {
        self.progress.borrow().1
    }
}

/// Logs of every container the kubelet has started.
#[derive(Debug, Default)]
pub struct LogStore(Mutex<HashMap<(String, String, String), Arc<ContainerLog>>>);

impl LogStore {
    /// The log of a container, created on first use (container start).
    pub fn open(&self, ns: &str, pod: &str, container: &str) -> Arc<ContainerLog> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((ns.to_owned(), pod.to_owned(), container.to_owned()))
            .or_insert_with(|| Arc::new(ContainerLog::new()))
            .clone()
    }

    pub fn get(&self, ns: &str, pod: &str, container: &str) -> Option<Arc<ContainerLog>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(ns.to_owned(), pod.to_owned(), container.to_owned()))
            .cloned()
    }

    /// `(namespace, pod, container)` of every container of a pod with a log.
    pub fn containers_of(&self, ns: &str, pod: &str) -> Vec<(String, String, String)> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.keys().filter(|(n, p, _)| n == ns && p == pod).cloned().collect()
    }

    /// Forget a deleted pod's logs (followers finish).
    pub fn remove_pod(&self, ns: &str, pod: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|(n, p, _), log| {
            let gone = n == ns && p == pod;
            if gone {
                log.finish();
            }
            !gone
        });
    }
}
