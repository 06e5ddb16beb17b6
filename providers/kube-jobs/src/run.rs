//! run, poll and cancel.

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use polysync_provider_api::{CancelOutcome, ErrorKind, ProviderError, RunHandle, RunRequest, RunSource, RunStatus};

use crate::KubeJobs;
use crate::entry::CRONJOB_PREFIX;
use crate::error::{CallError, from_call};
use crate::labels::{IDEMPOTENCY_KEY, RUN};
use crate::naming::run_name;
use crate::spec::{self, RunIdentity, SourceKind};
use crate::status;

pub(crate) async fn run(k: &KubeJobs, request: RunRequest) -> Result<RunHandle, ProviderError> {
    spec::validate(&request)?;
    let ns = k.namespace.as_str();
    let (source, kind) = match request.external_id.strip_prefix(CRONJOB_PREFIX) {
        Some(name) => (name, SourceKind::CronJob),
        None => (request.external_id.as_str(), SourceKind::Job),
    };
    let client = k.client().await?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);

    // The source first: its shape decides the name (Indexed Jobs need room
    // for their pods' hostnames).
    enum Source {
        Job(Box<Job>),
        CronJob(Box<CronJob>),
        Fallback,
    }
    let found = match kind {
        SourceKind::Job => {
            let what = format!("reading source Job {source} in namespace {ns}");
            k.retry
                .run(&what, || jobs.get_opt(source))
                .await
                .map_err(|e| unsent(e, &what))?
                .map(|j| Source::Job(Box::new(j)))
        }
        SourceKind::CronJob => {
            let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), ns);
            let what = format!("reading source CronJob {source} in namespace {ns}");
            k.retry
                .run(&what, || cronjobs.get_opt(source))
                .await
                .map_err(|e| unsent(e, &what))?
                .map(|c| Source::CronJob(Box::new(c)))
        }
    };
    let found = match (found, &request.fallback) {
        (Some(s), _) => s,
        (None, Some(_)) => Source::Fallback,
        (None, None) => {
            return Err(ProviderError::not_found(format!(
                "{} {source} no longer exists in namespace {ns} and no fallback attributes were stored; run discover again",
                if kind == SourceKind::CronJob { "CronJob" } else { "Job" }
            )));
        }
    };
    let job_spec = match &found {
        Source::Job(j) => j.spec.clone(),
        Source::CronJob(c) => c.spec.job_template.spec.clone(),
        Source::Fallback => request.fallback.as_ref().and_then(spec::fallback_spec),
    };
    let indexed = job_spec
        .as_ref()
        .filter(|s| s.completion_mode.as_deref() == Some("Indexed"))
        .map(|s| s.completions.unwrap_or(1));
    let name = run_name(source, &request.idempotency_key, indexed);
    let id = RunIdentity { name: &name, namespace: ns, source, kind, idempotency_key: &request.idempotency_key };
    let (job, source_kind) = match found {
        Source::Job(job) => (spec::from_job(&job, &id, &request.parameters)?, RunSource::Live),
        Source::CronJob(c) => {
            let mut job = spec::from_template(&c.spec.job_template, &id, &request.parameters)?;
            spec::inherit_outputs(&mut job, &c.metadata);
            (job, RunSource::Live)
        }
        Source::Fallback => {
            tracing::info!(source, "the source is gone; running from the stored template");
            let fallback = request.fallback.as_ref().expect("checked above");
            (spec::from_fallback(fallback, &id, &request.parameters)?, RunSource::Fallback)
        }
    };
    let what = format!("creating Job {name} in namespace {ns}");
    let post = PostParams::default();
    let adopted = match k.retry.run(&what, || jobs.create(&post, &job)).await {
        Ok(_) => false,
        Err(e) if e.code() == Some(409) => {
            // A retried run: adopt the Job the first attempt made.
            let existing = k.retry.call(&what, || jobs.get(&name)).await?;
            let key = existing.metadata.annotations.as_ref().and_then(|a| a.get(IDEMPOTENCY_KEY));
            if key != Some(&request.idempotency_key) {
                return Err(ProviderError::new(
                    ErrorKind::Conflict,
                    format!(
                        "a Job named {name} already exists in namespace {ns} and was not created for this run; delete it or run with another idempotency key"
                    ),
                ));
            }
            true
        }
        Err(e) => return Err(from_call(e, &what)),
    };
    Ok(RunHandle {
        run_id: name.clone(),
        external_id: request.external_id.clone(),
        source: source_kind,
        adopted,
        monitor_url: k.monitor.run(ns, &name),
    })
}

/// An error reading the source, before anything is created: when the API
/// server refused the connection, nothing reached it, and the run was
/// certainly not made ([`ProviderError::not_applied`]). Other errors (a 503,
/// a timeout) say as much too, but may clear: the host keeps those pending.
fn unsent(err: CallError, what: &str) -> ProviderError {
    let refused = matches!(&err, CallError::Kube(e) if crate::error::connection_refused(e));
    let e = from_call(err, what);
    if refused { e.not_applied() } else { e }
}

pub(crate) fn not_found(run_id: &str, ns: &str) -> ProviderError {
    ProviderError::not_found(format!(
        "run {run_id} does not exist in namespace {ns} (it was deleted, or never created here)"
    ))
}

/// The run's pods.
pub(crate) async fn pods_of(k: &KubeJobs, client: &kube::Client, run_id: &str) -> Result<Vec<Pod>, ProviderError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &k.namespace);
    let params = ListParams::default().labels(&format!("{RUN}={run_id}"));
    let what = format!("listing the pods of run {run_id}");
    let mut list = k.retry.call(&what, || pods.list(&params)).await?.items;
    list.sort_by(|a, b| {
        a.metadata.creation_timestamp.cmp(&b.metadata.creation_timestamp).then(a.metadata.name.cmp(&b.metadata.name))
    });
    Ok(list)
}

pub(crate) async fn get_job(k: &KubeJobs, client: &kube::Client, run_id: &str) -> Result<Option<Job>, ProviderError> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), &k.namespace);
    k.retry.call(&format!("reading run {run_id}"), || jobs.get_opt(run_id)).await
}

pub(crate) async fn poll(k: &KubeJobs, run_id: &str) -> Result<RunStatus, ProviderError> {
    let client = k.client().await?;
    let job = get_job(k, &client, run_id).await?.ok_or_else(|| not_found(run_id, &k.namespace))?;
    let pods = pods_of(k, &client, run_id).await?;
    let mut facts = status::JobFacts::from(&job);
    if pods.is_empty() && facts.awaits_pods() {
        // No pod: the job controller's FailedCreate events say why, if it
        // was refused. One list, made only while the run has no pod.
        let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), &k.namespace);
        let what = format!("reading why run {run_id} has no pods");
        facts.refused = k.retry.call(&what, || crate::refusals::read(&events, Some(run_id))).await?.remove(run_id);
    }
    let units = pods.iter().map(status::unit).collect();
    let mut status = status::status_of(run_id, &facts, units);
    if status.state.is_terminal() {
        let api: Api<Pod> = Api::namespaced(client, &k.namespace);
        (status.outputs, status.output_error) = crate::outputs::read(&api, &(&job).into(), &pods).await;
    }
    Ok(status)
}

/// Delete the run's Job (pods follow in the background). A finished run is
/// left alone unless `delete` asks for it, so its logs stay readable; a run
/// already gone is success.
pub(crate) async fn cancel(k: &KubeJobs, run_id: &str, delete: bool) -> Result<CancelOutcome, ProviderError> {
    let client = k.client().await?;
    let Some(job) = get_job(k, &client, run_id).await? else { return Ok(CancelOutcome::AlreadyDone) };
    let finished = status::job_state(&job).0.is_terminal();
    if finished && !delete {
        return Ok(CancelOutcome::AlreadyDone);
    }
    let jobs: Api<Job> = Api::namespaced(client, &k.namespace);
    let what = format!("deleting run {run_id}");
    let background = DeleteParams::background();
    match k.retry.run(&what, || jobs.delete(run_id, &background)).await {
        Ok(_) if finished => Ok(CancelOutcome::AlreadyDone),
        Ok(_) => Ok(CancelOutcome::Cancelled),
        Err(e) if e.code() == Some(404) => Ok(CancelOutcome::AlreadyDone),
        Err(e) => Err(from_call(e, &what)),
    }
}
