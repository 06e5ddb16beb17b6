//! Why a Job has no pods: the job controller's `FailedCreate` events.
//!
//! When the API server refuses a Job's pods (a missing ServiceAccount, a
//! ResourceQuota, PodSecurity admission, a LimitRange) nothing on the Job
//! or any pod says so: the Job has a `startTime` and no pod, and the job
//! controller records a Warning event `FailedCreate` ("Error creating: pods
//! ... is forbidden: ...") and tries again with back-off. The event is the
//! only place the reason lives, so it is read from there.
//!
//! Cost: events are read only for runs that have no pod, by one list per
//! namespace (field selector on the reason), never per run and never for
//! runs whose pods exist; the informer backs off while nothing changes
//! ([`Probe`]). A thousand healthy runs cost nothing.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use tokio::time::Instant;

/// The Warning reason of the job controller (and of the ReplicaSet and
/// StatefulSet controllers) when a pod create is refused.
const FAILED_CREATE: &str = "FailedCreate";

/// The latest `FailedCreate` message per Job, of the Jobs in `runs` (all
/// of the namespace's when `None`), read with one list.
pub(crate) async fn read(api: &Api<Event>, only: Option<&str>) -> Result<HashMap<String, String>, kube::Error> {
    let mut fields = format!("involvedObject.kind=Job,reason={FAILED_CREATE}");
    if let Some(name) = only {
        fields.push_str(&format!(",involvedObject.name={name}"));
    }
    let events = api.list(&ListParams::default().fields(&fields)).await?.items;
    Ok(latest(events))
}

/// The latest message per involved Job: an event repeated by the
/// controller is one object whose `lastTimestamp` (or `eventTime`, from the
/// newer events API) moves on.
fn latest(events: Vec<Event>) -> HashMap<String, String> {
    let when = |e: &Event| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    };
    let mut newest: HashMap<String, Event> = HashMap::new();
    for e in events {
        let Some(name) = e.involved_object.name.clone() else { continue };
        if newest.get(&name).is_none_or(|old| when(old) <= when(&e)) {
            newest.insert(name, e);
        }
    }
    newest.into_iter().filter_map(|(name, e)| Some((name, e.message?))).collect()
}

/// When the informer next reads refusals, and for which runs: soon after a
/// run is seen without pods (the controller records the event at its first
/// try), then less and less often while the same runs stay without pods.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    /// The runs seen without pods and not seen with them since.
    pub(crate) waiting: HashSet<String>,
    next: Option<Instant>,
    interval: Duration,
    /// RBAC refuses listing events: never read.
    stopped: bool,
}

/// The first read after a run is seen without pods.
const FIRST: Duration = Duration::from_secs(1);
/// The longest wait between reads while runs stay without pods.
const LONGEST: Duration = Duration::from_secs(30);

impl Probe {
    /// `run` has no pod now: read soon if it is new.
    pub(crate) fn saw(&mut self, run: &str, now: Instant) {
        if self.stopped || self.waiting.contains(run) {
            return;
        }
        self.waiting.insert(run.to_owned());
        self.interval = FIRST;
        self.next = Some(self.next.map_or(now + FIRST, |n| n.min(now + FIRST)));
    }

    /// A read was made (or found nothing to read): the next one after a
    /// longer wait while runs still wait.
    pub(crate) fn done(&mut self, now: Instant) {
        if self.waiting.is_empty() {
            self.next = None;
            return;
        }
        self.interval = (self.interval * 2).clamp(FIRST, LONGEST);
        self.next = Some(now + self.interval);
    }

    /// When to read next, if at all.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.next
    }

    /// Stop reading for good (RBAC refuses listing events).
    pub(crate) fn stop(&mut self) {
        *self = Self { stopped: true, ..Self::default() };
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_latest_message_per_job_wins() {
        let event = |job: &str, at: &str, message: &str| -> Event {
            serde_json::from_value(json!({
                "metadata": {"name": format!("{job}.{at}")},
                "involvedObject": {"kind": "Job", "name": job},
                "reason": "FailedCreate", "type": "Warning", "message": message,
                "lastTimestamp": at,
            }))
            .unwrap()
        };
        let got = latest(vec![
            event("a", "2026-01-01T00:00:02Z", "quota"),
            event("a", "2026-01-01T00:00:01Z", "old"),
            event("b", "2026-01-01T00:00:01Z", "service account"),
        ]);
        assert_eq!(got.get("a").map(String::as_str), Some("quota"));
        assert_eq!(got.get("b").map(String::as_str), Some("service account"));
    }

    #[test]
    fn reads_back_off_while_the_same_runs_wait_and_restart_for_a_new_one() {
        let t0 = Instant::now();
        let mut p = Probe::default();
        assert_eq!(p.due(), None, "no run without pods: no read");
        p.saw("a", t0);
        assert_eq!(p.due(), Some(t0 + FIRST));
        let mut waits = Vec::new();
        let mut now = t0 + FIRST;
        for _ in 0..8 {
            p.done(now);
            p.saw("a", now);
            let next = p.due().unwrap();
            waits.push((next - now).as_secs());
            now = next;
        }
        assert_eq!(waits, [2, 4, 8, 16, 30, 30, 30, 30]);
        p.done(now);
        p.saw("b", now);
        assert_eq!(p.due(), Some(now + FIRST), "a new run without pods is read about soon, not in 30 s");
        p.waiting.clear();
        p.done(now);
        assert_eq!(p.due(), None, "no run waits: no more reads");
        p.stop();
        p.saw("c", now);
        assert_eq!(p.due(), None, "stopped for good");
    }
}
