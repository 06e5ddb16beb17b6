//! Container logs as the simulated containers write them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Most bytes kept per container; later output is dropped.
const MAX_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Default)]
struct Lines {
    lines: Vec<(String, String)>,
    bytes: usize,
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

    pub fn append(&self, text: String) {
        let mut l = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if l.bytes + text.len() > MAX_BYTES {
            return;
        }
        l.bytes += text.len();
        let ts = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S.%fZ").to_string();
        l.lines.push((ts, text));
        let n = l.lines.len();
        self.progress.send_modify(|p| p.0 = n);
    }

    /// Starting a new attempt (a restart) keeps the old lines, like the
    /// real log file's previous output is gone but ours stays readable.
    pub fn finish(&self) {
        self.progress.send_modify(|p| p.1 = true);
    }

    pub fn restart(&self) {
        self.progress.send_modify(|p| p.1 = false);
    }

    /// Lines from `from` on.
    pub fn read(&self, from: usize) -> Vec<(String, String)> {
        let l = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        l.lines.get(from..).map(<[_]>::to_vec).unwrap_or_default()
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
