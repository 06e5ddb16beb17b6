//! The CronJob controller: creates a Job from `jobTemplate` at each
//! scheduled time (real wall-clock minutes, standard 5-field cron), honours
//! `suspend`, `concurrencyPolicy` and `startingDeadlineSeconds`, keeps
//! `status.active` / `lastScheduleTime` / `lastSuccessfulTime`, and trims
//! finished Jobs to the history limits.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::events::record;
use super::gc;
use crate::resources::{Kind, Propagation};
use crate::store::{Key, Mutation, Store};
use crate::time::{format_ts, parse_ts};
use crate::validation;

const COMPONENT: &str = "cronjob-controller";
const SCHEDULED_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

fn owned_jobs(store: &Store, cronjob: &Value) -> Vec<Arc<Value>> {
    let ns = cronjob["metadata"]["namespace"].as_str().unwrap_or_default();
    let uid = cronjob["metadata"]["uid"].as_str().unwrap_or_default();
    let mut jobs = store.owned_by(Kind::Job, uid);
    jobs.retain(|j| j["metadata"]["namespace"] == ns);
    jobs
}

fn finished(job: &Value) -> Option<(&'static str, String)> {
    job["status"]["conditions"].as_array()?.iter().find_map(|c| {
        let t = c["lastTransitionTime"].as_str().unwrap_or_default().to_owned();
        match (c["type"].as_str(), c["status"].as_str()) {
            (Some("Complete"), Some("True")) => Some(("Complete", t)),
            (Some("Failed"), Some("True")) => Some(("Failed", t)),
            _ => None,
        }
    })
}

/// Run the controller, checking every CronJob once a second.
pub async fn run(store: Arc<Store>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let cronjobs = store.list(Kind::CronJob, None, None, None, None, &[]).items;
        for cronjob in cronjobs {
            sync(&store, &cronjob);
        }
    }
}

fn sync(store: &Store, cronjob: &Value) {
    let key = Key::of(cronjob);
    let jobs = owned_jobs(store, cronjob);
    let active: Vec<_> = jobs.iter().filter(|j| finished(j).is_none()).collect();
    trim_history(store, cronjob, &jobs);
    let last_success = jobs.iter().filter_map(|j| finished(j).filter(|(k, _)| *k == "Complete").map(|(_, t)| t)).max();
    let active_refs: Vec<Value> = active
        .iter()
        .map(|j| json!({"kind": "Job", "namespace": j["metadata"]["namespace"], "name": j["metadata"]["name"], "uid": j["metadata"]["uid"], "apiVersion": "batch/v1", "resourceVersion": j["metadata"]["resourceVersion"]}))
        .collect();
    let _ = store.mutate(Kind::CronJob, &key, |c| {
        let before = c["status"].clone();
        if !c["status"].is_object() {
            c["status"] = json!({});
        }
        if active_refs.is_empty() {
            if let Some(s) = c["status"].as_object_mut() {
                s.remove("active");
            }
        } else {
            c["status"]["active"] = json!(active_refs);
        }
        if let Some(t) = &last_success {
            c["status"]["lastSuccessfulTime"] = json!(t);
        }
        Ok(if c["status"] == before { Mutation::Unchanged } else { Mutation::Changed })
    });

    if cronjob["spec"]["suspend"] == true || cronjob["metadata"].get("deletionTimestamp").is_some() {
        return;
    }
    let Ok(schedule) = validation::parse_schedule(cronjob["spec"]["schedule"].as_str().unwrap_or_default()) else {
        return;
    };
    let since = cronjob["status"]["lastScheduleTime"]
        .as_str()
        .or_else(|| cronjob["metadata"]["creationTimestamp"].as_str())
        .and_then(parse_ts)
        .unwrap_or_else(jiff::Timestamp::now);
    let now = jiff::Timestamp::now();
    let zoned_since = since.to_zoned(jiff::tz::TimeZone::UTC);
    // The most recent scheduled time in (since, now].
    let mut due = None;
    for t in schedule.iter_after(zoned_since).take(10_000) {
        if t.timestamp() > now {
            break;
        }
        due = Some(t.timestamp());
    }
    let Some(scheduled) = due else { return };
    if let Some(deadline) = cronjob["spec"]["startingDeadlineSeconds"].as_i64()
        && now.duration_since(scheduled).as_secs() > deadline
    {
        record(store, COMPONENT, cronjob, true, "MissSchedule", "Missed scheduled time to start a job");
        set_last_schedule(store, &key, scheduled);
        return;
    }
    match cronjob["spec"]["concurrencyPolicy"].as_str() {
        Some("Forbid") if !active.is_empty() => return,
        Some("Replace") => {
            for job in &active {
                let _ = gc::delete(store, Kind::Job, &Key::of(job), Propagation::Background);
            }
        }
        _ => {}
    }
    let name = format!("{}-{}", cronjob["metadata"]["name"].as_str().unwrap_or_default(), scheduled.as_second() / 60);
    let template = &cronjob["spec"]["jobTemplate"];
    let mut meta = if template["metadata"].is_object() { template["metadata"].clone() } else { json!({}) };
    meta["name"] = json!(name);
    meta["ownerReferences"] = json!([validation::controller_ref(cronjob)]);
    meta["annotations"][SCHEDULED_ANNOTATION] = json!(format_ts(scheduled));
    let mut job = json!({"metadata": meta, "spec": template["spec"].clone()});
    let ns = cronjob["metadata"]["namespace"].as_str().unwrap_or_default();
    match validation::prepare_create(Kind::Job, Some(ns), &mut job).and_then(|()| store.create(Kind::Job, job)) {
        Ok(_) => record(store, COMPONENT, cronjob, false, "SuccessfulCreate", &format!("Created job {name}")),
        Err(e) if e.code == 409 => {}
        Err(e) => {
            record(store, COMPONENT, cronjob, true, "FailedCreate", &format!("Error creating job: {}", e.message))
        }
    }
    set_last_schedule(store, &key, scheduled);
}

fn set_last_schedule(store: &Store, key: &Key, at: jiff::Timestamp) {
    let _ = store.mutate(Kind::CronJob, key, |c| {
        if !c["status"].is_object() {
            c["status"] = json!({});
        }
        c["status"]["lastScheduleTime"] = json!(format_ts(at));
        Ok(Mutation::Changed)
    });
}

fn trim_history(store: &Store, cronjob: &Value, jobs: &[Arc<Value>]) {
    for (kind, limit_field, default) in
        [("Complete", "successfulJobsHistoryLimit", 3), ("Failed", "failedJobsHistoryLimit", 1)]
    {
        let limit = cronjob["spec"][limit_field].as_u64().unwrap_or(default) as usize;
        let mut done: Vec<_> =
            jobs.iter().filter_map(|j| finished(j).filter(|(k, _)| *k == kind).map(|(_, t)| (t, j))).collect();
        if done.len() <= limit {
            continue;
        }
        done.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, job) in &done[..done.len() - limit] {
            let _ = gc::delete(store, Kind::Job, &Key::of(job), Propagation::Background);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn schedules() {
        assert!(crate::validation::parse_schedule("*/5 * * * *").is_ok());
        assert!(crate::validation::parse_schedule("@hourly").is_ok());
        assert!(crate::validation::parse_schedule("not a schedule").is_err());
        assert!(crate::validation::parse_schedule("* * * * * *").is_err());
    }
}
