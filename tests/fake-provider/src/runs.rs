//! The fake's runs: a state machine driven by the tokio clock.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use polysync_provider_api::{
    CancelOutcome, ContainerStatus, EventKind, EventsRequest, LogChunk, LogRequest, ProviderError, Result,
    ResultStream, RunEvent, RunHandle, RunRequest, RunSource, RunState, RunStatus, UnitStatus,
};
use tokio::time::Instant;

#[derive(Debug)]
struct FakeRun {
    external_id: String,
    parameters: BTreeMap<String, String>,
    created: Instant,
    duration: Duration,
    exit_code: i32,
    cancelled_at: Option<Instant>,
}

#[derive(Debug)]
pub(crate) struct Runs {
    tick: Duration,
    runs: Mutex<HashMap<String, FakeRun>>,
}

/// Environment variable names as Kubernetes accepts them.
fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '-' || c == '.')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Reject requests every provider must reject.
pub(crate) fn validate(request: &RunRequest) -> Result<()> {
    if request.idempotency_key.trim().is_empty() {
        return Err(ProviderError::invalid_input("the idempotency key is empty; the host must supply one per run"));
    }
    if let Some(bad) = request.parameters.keys().find(|k| !valid_env_name(k)) {
        return Err(ProviderError::invalid_input(format!(
            "parameter name {bad:?} is not a valid environment variable name; use letters, digits, '_', '-' or '.', not starting with a digit"
        )));
    }
    for (name, value) in &request.parameters {
        let parsed = match name.as_str() {
            "EXIT_CODE" => value.parse::<i32>().is_ok(),
            "DURATION_MS" => value.parse::<u64>().is_ok(),
            _ => true,
        };
        if !parsed {
            return Err(ProviderError::invalid_input(format!("parameter {name} must be a number, got {value:?}")));
        }
    }
    Ok(())
}

fn suffix(key: &str) -> String {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    format!("{:08x}", h.finish() as u32)
}

struct Snapshot {
    state: RunState,
    reason: Option<String>,
    /// When the run became Running, if it has.
    running_at: Option<Instant>,
}

impl FakeRun {
    fn snapshot(&self, tick: Duration, now: Instant) -> Snapshot {
        let running_at = self.created + tick;
        let natural_end = running_at + self.duration;
        let natural = |state, reason: Option<&str>| Snapshot {
            state,
            reason: reason.map(str::to_owned),
            running_at: Some(running_at),
        };
        if now >= natural_end && self.cancelled_at.is_none_or(|c| c >= natural_end) {
            return if self.exit_code == 0 {
                natural(RunState::Success, None)
            } else {
                natural(RunState::Failed, Some("Error"))
            };
        }
        if let Some(c) = self.cancelled_at {
            return Snapshot {
                state: RunState::Cancelled,
                reason: Some("Cancelled".into()),
                running_at: (c > running_at).then_some(running_at),
            };
        }
        if now >= running_at {
            Snapshot { state: RunState::Running, reason: None, running_at: Some(running_at) }
        } else {
            Snapshot { state: RunState::Starting, reason: None, running_at: None }
        }
    }

    fn log_lines(&self, run_id: &str, snap: &Snapshot) -> Vec<String> {
        let mut lines = Vec::new();
        if snap.running_at.is_some() {
            lines.push(format!("starting {} as {run_id}", self.external_id));
            lines.extend(self.parameters.iter().map(|(k, v)| format!("{k}={v}")));
        }
        if snap.state.is_terminal() && snap.state != RunState::Cancelled {
            lines.push(format!("exited with code {}", self.exit_code));
        }
        lines
    }

    fn events(&self, run_id: &str, snap: &Snapshot) -> Vec<RunEvent> {
        let event = |kind, phase: &str| RunEvent {
            run_id: run_id.to_owned(),
            kind,
            unit: format!("{run_id}-pod"),
            phase: phase.to_owned(),
            reason: None,
            message: None,
            containers: Vec::new(),
            at: None,
        };
        let mut events = vec![event(EventKind::Added, "Pending")];
        if snap.running_at.is_some() {
            events.push(event(EventKind::Modified, "Running"));
        }
        match snap.state {
            RunState::Success => events.push(event(EventKind::Modified, "Succeeded")),
            RunState::Failed => events.push(event(EventKind::Modified, "Failed")),
            RunState::Cancelled => events.push(event(EventKind::Deleted, "Terminating")),
            _ => {}
        }
        events
    }
}

impl Runs {
    pub(crate) fn new(tick: Duration) -> Self {
        Self { tick, runs: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, FakeRun>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn start(&self, request: RunRequest, live: bool) -> RunHandle {
        let run_id = format!("{}-{}", request.external_id, suffix(&request.idempotency_key));
        let mut runs = self.lock();
        let adopted = runs.contains_key(&run_id);
        if !adopted {
            let number = |k: &str| request.parameters.get(k).and_then(|v| v.parse::<u64>().ok());
            let run = FakeRun {
                duration: number("DURATION_MS").map_or(self.tick * 3, Duration::from_millis),
                exit_code: request.parameters.get("EXIT_CODE").and_then(|v| v.parse().ok()).unwrap_or(0),
                external_id: request.external_id.clone(),
                parameters: request.parameters,
                created: Instant::now(),
                cancelled_at: None,
            };
            runs.insert(run_id.clone(), run);
        }
        RunHandle {
            run_id,
            external_id: request.external_id,
            source: if live { RunSource::Live } else { RunSource::Fallback },
            adopted,
            monitor_url: None,
        }
    }

    fn not_found(run_id: &str) -> ProviderError {
        ProviderError::not_found(format!("run {run_id} does not exist (it was never started here, or was deleted)"))
    }

    pub(crate) fn status(&self, run_id: &str) -> Result<RunStatus> {
        let runs = self.lock();
        let run = runs.get(run_id).ok_or_else(|| Self::not_found(run_id))?;
        let snap = run.snapshot(self.tick, Instant::now());
        let mut status = RunStatus::new(run_id, snap.state);
        status.reason = snap.reason;
        if snap.state == RunState::Failed {
            status.message = Some(format!("container exited with code {}", run.exit_code));
        }
        let (container_state, exit_code) = match snap.state {
            RunState::Starting => ("waiting", None),
            RunState::Running => ("running", None),
            RunState::Cancelled => ("terminated", Some(137)),
            _ => ("terminated", Some(run.exit_code)),
        };
        status.units = vec![UnitStatus {
            name: format!("{run_id}-pod"),
            phase: format!("{:?}", snap.state),
            containers: vec![ContainerStatus {
                name: "main".into(),
                state: container_state.into(),
                exit_code,
                ..Default::default()
            }],
            ..Default::default()
        }];
        Ok(status)
    }

    pub(crate) fn cancel(&self, run_id: &str) -> CancelOutcome {
        let mut runs = self.lock();
        let Some(run) = runs.get_mut(run_id) else { return CancelOutcome::AlreadyDone };
        let now = Instant::now();
        if run.snapshot(self.tick, now).state.is_terminal() {
            return CancelOutcome::AlreadyDone;
        }
        run.cancelled_at = Some(now);
        CancelOutcome::Cancelled
    }

    fn check_exists(&self, run_id: &str) -> Result<()> {
        if self.lock().contains_key(run_id) { Ok(()) } else { Err(Self::not_found(run_id)) }
    }

    pub(crate) fn watch(self: &Arc<Self>, run_ids: Vec<String>) -> Result<ResultStream<RunStatus>> {
        for id in &run_ids {
            self.check_exists(id)?;
        }
        struct State {
            runs: Arc<Runs>,
            ids: Vec<String>,
            last: HashMap<String, RunState>,
            queue: VecDeque<RunStatus>,
        }
        let state = State { runs: self.clone(), ids: run_ids, last: HashMap::new(), queue: VecDeque::new() };
        Ok(futures::stream::unfold(state, |mut s| async move {
            loop {
                if let Some(next) = s.queue.pop_front() {
                    return Some((Ok(next), s));
                }
                if !s.last.is_empty() && s.last.values().all(|st| st.is_terminal()) {
                    return None;
                }
                if !s.last.is_empty() {
                    tokio::time::sleep(s.runs.tick / 4).await;
                }
                for id in &s.ids {
                    let status = match s.runs.status(id) {
                        Ok(status) => status,
                        Err(e) => return Some((Err(e), s)),
                    };
                    if s.last.get(id) != Some(&status.state) {
                        s.last.insert(id.clone(), status.state);
                        s.queue.push_back(status);
                    }
                }
                if s.ids.is_empty() {
                    return None;
                }
            }
        })
        .boxed())
    }

    /// Items derived from a run's state; with `follow`, new ones as they
    /// appear until the run is terminal.
    fn follow<T: Send + 'static>(
        self: &Arc<Self>,
        run_id: String,
        follow: bool,
        derive: fn(&FakeRun, &str, &Snapshot) -> Vec<T>,
    ) -> Result<ResultStream<T>> {
        self.check_exists(&run_id)?;
        let state = (self.clone(), run_id, 0usize, VecDeque::<T>::new(), false);
        Ok(futures::stream::unfold(state, move |(runs, run_id, mut sent, mut queue, mut ended)| async move {
            loop {
                if let Some(item) = queue.pop_front() {
                    return Some((Ok(item), (runs, run_id, sent, queue, ended)));
                }
                if ended {
                    return None;
                }
                if sent > 0 || !queue.is_empty() {
                    tokio::time::sleep(runs.tick / 4).await;
                }
                let (items, terminal) = {
                    let guard = runs.lock();
                    let run = guard.get(&run_id)?;
                    let snap = run.snapshot(runs.tick, Instant::now());
                    (derive(run, &run_id, &snap), snap.state.is_terminal())
                };
                let fresh: Vec<T> = items.into_iter().skip(sent).collect();
                sent += fresh.len();
                queue.extend(fresh);
                ended = terminal || !follow;
                if queue.is_empty() && !ended {
                    tokio::time::sleep(runs.tick / 4).await;
                }
            }
        })
        .boxed())
    }

    pub(crate) fn logs(self: &Arc<Self>, request: LogRequest) -> Result<ResultStream<LogChunk>> {
        if let Some(c) = request.container.as_deref().filter(|c| *c != "main") {
            return Err(ProviderError::not_found(format!(
                "run {} has no container {c:?}; it has \"main\"",
                request.run_id
            )));
        }
        let stream = self.follow(request.run_id, request.follow, |run, run_id, snap| {
            run.log_lines(run_id, snap)
                .into_iter()
                .map(|line| LogChunk { unit: format!("{run_id}-pod"), container: "main".into(), text: line + "\n" })
                .collect()
        })?;
        Ok(match request.tail_lines {
            Some(n) if !request.follow => {
                let n = n as usize;
                futures::stream::once(async move {
                    let all: Vec<_> = stream.collect().await;
                    let skip = all.len().saturating_sub(n);
                    futures::stream::iter(all.into_iter().skip(skip))
                })
                .flatten()
                .boxed()
            }
            _ => stream,
        })
    }

    pub(crate) fn events(self: &Arc<Self>, request: EventsRequest) -> Result<ResultStream<RunEvent>> {
        self.follow(request.run_id, request.follow, |run, run_id, snap| run.events(run_id, snap))
    }
}
