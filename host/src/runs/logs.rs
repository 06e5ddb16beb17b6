//! Logs: gathered live while a run goes on, archived when it ends, and
//! served from the platform or the archive.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use polysync_provider_api::{LogRequest, Provider};

use crate::error::Result;
use crate::store::{ARCHIVE_LIMIT, ArchivedLog, bounded};

/// Every container's log of a run, the end of each bounded for the archive.
pub async fn fetch_logs(provider: &dyn Provider, run_id: &str) -> Result<Vec<ArchivedLog>> {
    let mut stream = provider.logs(LogRequest { run_id: run_id.into(), ..Default::default() }).await?;
    let mut collected = LogBuffer::default();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        collected.push(&chunk.unit, &chunk.container, &chunk.text);
    }
    Ok(collected.into_archive())
}

/// Logs gathered per container, in order, each kept to twice the archive
/// limit while gathering (the end is what the archive keeps).
#[derive(Debug, Default)]
pub struct LogBuffer(Vec<((String, String), String)>);

impl LogBuffer {
    pub fn push(&mut self, unit: &str, container: &str, text: &str) {
        let key = (unit.to_owned(), container.to_owned());
        let i = match self.0.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                self.0.push((key, String::new()));
                self.0.len() - 1
            }
        };
        let buf = &mut self.0[i].1;
        buf.push_str(text);
        if buf.len() > 2 * ARCHIVE_LIMIT {
            *buf = bounded(buf).0;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_archive(self) -> Vec<ArchivedLog> {
        self.0
            .into_iter()
            .map(|((unit, container), text)| {
                let (text, truncated) = bounded(&text);
                ArchivedLog { unit, container, text, truncated }
            })
            .collect()
    }
}

/// Follow a run's logs while it is live, so the archive is complete even
/// when its pods vanish the moment it ends (`ttlSecondsAfterFinished: 0`).
#[derive(Debug)]
pub struct LiveLogs {
    buffer: Arc<Mutex<LogBuffer>>,
    task: tokio::task::JoinHandle<()>,
}

impl LiveLogs {
    pub fn start(provider: Arc<dyn Provider>, run_id: String) -> Self {
        let buffer: Arc<Mutex<LogBuffer>> = Arc::default();
        let sink = buffer.clone();
        let task = tokio::spawn(async move {
            // The follow ends with the run; pods that are not up yet are
            // retried until the run is over.
            for _ in 0..3000 {
                let request = LogRequest { run_id: run_id.clone(), follow: true, ..Default::default() };
                let Ok(mut stream) = provider.logs(request).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let mut any = false;
                while let Some(Ok(chunk)) = stream.next().await {
                    any = true;
                    sink.lock().unwrap_or_else(|p| p.into_inner()).push(&chunk.unit, &chunk.container, &chunk.text);
                }
                if any {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Self { buffer, task }
    }

    /// What was gathered, after giving the follow a moment to drain.
    pub async fn finish(self) -> LogBuffer {
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut { self.task }).await;
        std::mem::take(&mut *self.buffer.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Where a run's logs are read from.
pub enum RunLogs {
    /// The run is over and its logs were archived (its pods may be gone).
    Archived(Vec<ArchivedLog>),
    /// Live from the platform.
    Live(polysync_provider_api::ResultStream<polysync_provider_api::LogChunk>),
}

impl std::fmt::Debug for RunLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Archived(l) => f.debug_tuple("Archived").field(&l.len()).finish(),
            Self::Live(_) => f.write_str("Live"),
        }
    }
}

/// A run's logs: from the archive once the run is final and archived, else
/// from the platform — and from the archive after all if the platform no
/// longer has them.
pub async fn open_logs(
    store: &dyn crate::store::Store,
    provider: &dyn Provider,
    run: &crate::store::StoredRun,
    request: LogRequest,
) -> Result<RunLogs> {
    if let Some(c) = &request.container {
        check_container_name(c)?;
    }
    if run.is_final()
        && let Some(logs) = store.archived_logs(run.id).await?
    {
        return Ok(RunLogs::Archived(logs));
    }
    match provider.logs(request).await {
        Ok(stream) => Ok(RunLogs::Live(stream)),
        Err(e) if e.kind() == polysync_provider_api::ErrorKind::NotFound => {
            archived_or_gone(store, run, e.message()).await
        }
        Err(e) => Err(e.into()),
    }
}

/// A container name as platforms allow them: a Kubernetes DNS label, or an
/// ECS container name (letters, digits, `-` and `_`, up to 255). Anything
/// else (`/`, `..`, `?`, `&`, `#`) would only ever match nothing, or reach
/// into a URL path of the platform's API.
pub fn check_container_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(crate::Error::InvalidInput(format!(
            "container {name:?} is not a container name (letters, digits, '-' and '_'); `polysync events RUN` lists a run's containers"
        )))
    }
}

/// The archive of a run the platform no longer has, or why there is none.
pub async fn archived_or_gone(
    store: &dyn crate::store::Store,
    run: &crate::store::StoredRun,
    why: &str,
) -> Result<RunLogs> {
    match store.archived_logs(run.id).await? {
        Some(logs) => Ok(RunLogs::Archived(logs)),
        None => Err(crate::error::Missing::Logs { run: run.id, why: why.to_owned() }.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::check_container_name;

    #[test]
    fn container_names_are_labels_or_ecs_names() {
        for ok in ["main", "sidecar-1", "my_app", "App2"] {
            assert!(check_container_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", "..", "x?y", "a&b", "#frag", "a b", &"x".repeat(256)] {
            let e = check_container_name(bad).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::EXIT_INVALID, "{bad}");
        }
    }
}
