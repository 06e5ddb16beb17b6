//! Run and cancel.
//!
//! A run is RunTask of the entry's task definition with the parameters as
//! a container override of its first container. ECS itself replaces an
//! overridden variable by name and appends new ones, so only the
//! parameters are sent: the whole environment would spend ECS's 8,192
//! characters of overrides on values the task definition already has.
//!
//! Retries start no second task: `clientToken` is derived from the
//! idempotency key (ECS answers a repeated RunTask with the first task),
//! and `startedBy` carries a digest of it too, so a retry after the
//! client-token window, or against an ECS-compatible API that ignores
//! client tokens, finds and adopts the task with ListTasks first.

use polysync_aws::from_sdk;
use polysync_provider_api::{CancelOutcome, ErrorKind, ProviderError, Result, RunHandle, RunRequest, RunSource};

use crate::Ecs;
use crate::client::{Task, digest, overrides, start_task, tag};

pub(crate) async fn run(ecs: &Ecs, request: RunRequest) -> Result<RunHandle> {
    check(&request)?;
    let client = ecs.client().await?;
    let what = format!("running task definition {}", request.external_id);
    let described = client
        .describe_task_definition()
        .task_definition(&request.external_id)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .map_err(|e| {
            let err = from_sdk(e, "ecs:DescribeTaskDefinition", &what);
            if err.kind() == ErrorKind::InvalidInput {
                ProviderError::not_found(format!(
                    "{what}: ECS has no ACTIVE task definition {:?}; register one or run `polysync discover` again",
                    request.external_id
                ))
            } else {
                err
            }
        })?;
    let td = described
        .task_definition
        .as_ref()
        .ok_or_else(|| ProviderError::not_found(format!("{what}: no task definition in the answer")))?;
    let container = td
        .container_definitions()
        .first()
        .and_then(|c| c.name())
        .ok_or_else(|| ProviderError::invalid_input(format!("{what}: the task definition has no containers")))?
        .to_owned();
    crate::definition::remember(ecs, td, described.tags());
    let overrides = overrides(&container, &request.parameters)?;
    let digest = digest(&request.idempotency_key);
    let started_by = format!("polysync-{}", &digest[..27]);
    if let Some(arn) = find_started(ecs, &client, &started_by).await? {
        return Ok(handle(ecs, &request, arn, true));
    }
    let sent = crate::status::env_digest(request.parameters.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let source = request.external_id.split(':').next().unwrap_or_default();
    let task = Task {
        task_definition: td.task_definition_arn().unwrap_or(&request.external_id),
        overrides,
        client_token: &digest,
        started_by: &started_by,
        tags: vec![
            tag("polysync:managed-by", "polysync"),
            tag("polysync:source", source),
            tag("polysync:run-key", &digest[..32]),
            tag(crate::status::SENT_TAG, &sent),
        ],
    };
    let arn = start_task(ecs, &client, task, &what).await?;
    Ok(handle(ecs, &request, arn, false))
}

fn handle(ecs: &Ecs, request: &RunRequest, arn: String, adopted: bool) -> RunHandle {
    RunHandle {
        monitor_url: Some(crate::console::run(ecs, &arn)),
        run_id: arn,
        external_id: request.external_id.clone(),
        source: RunSource::Live,
        adopted,
    }
}

/// A task this idempotency key already started, running or stopped.
async fn find_started(ecs: &Ecs, client: &aws_sdk_ecs::Client, started_by: &str) -> Result<Option<String>> {
    use aws_sdk_ecs::types::DesiredStatus;
    for desired in [DesiredStatus::Running, DesiredStatus::Stopped] {
        let out = client
            .list_tasks()
            .cluster(&ecs.settings.cluster)
            .started_by(started_by)
            .desired_status(desired)
            .send()
            .await
            .map_err(|e| from_sdk(e, "ecs:ListTasks", "looking for a task this run already started"))?;
        if let Some(arn) = out.task_arns().first() {
            return Ok(Some(arn.clone()));
        }
    }
    Ok(None)
}

fn check(request: &RunRequest) -> Result<()> {
    if request.idempotency_key.is_empty() {
        return Err(ProviderError::invalid_input("the run has an empty idempotency key; give every run a unique key"));
    }
    let family = request.external_id.split(':').next().unwrap_or_default();
    if family.is_empty()
        || family.len() > 255
        || !family.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ProviderError::invalid_input(format!(
            "{:?} is not a task definition family (or family:revision)",
            request.external_id
        )));
    }
    for name in request.parameters.keys() {
        if name.is_empty()
            || name.len() > 255
            || name.contains('=')
            || name.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ProviderError::invalid_input(format!(
                "parameter {name:?} is not an environment variable name (no '=', spaces or control characters)"
            )));
        }
    }
    Ok(())
}

pub(crate) async fn cancel(ecs: &Ecs, run_id: &str, reason: Option<&str>) -> Result<CancelOutcome> {
    // Idempotent: a task that has stopped, or that ECS no longer knows
    // (it forgets stopped tasks after about an hour), is done.
    // A run restarted after a Spot interruption is its latest attempt.
    let task = match crate::track::current(ecs, run_id).await {
        Ok(now) if now.status.state.is_terminal() => return Ok(CancelOutcome::AlreadyDone),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(CancelOutcome::AlreadyDone),
        Err(e) => return Err(e),
        Ok(now) => now.current,
    };
    let reason = reason.unwrap_or("cancelled through polysync");
    ecs.client()
        .await?
        .stop_task()
        .cluster(&ecs.settings.cluster)
        .task(&task)
        .reason(reason.chars().take(255).collect::<String>())
        .send()
        .await
        .map_err(|e| from_sdk(e, "ecs:StopTask", &format!("stopping task {run_id}")))?;
    Ok(CancelOutcome::Cancelled)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::client::{OVERRIDES_LIMIT, placement_failure};

    fn request(params: &[(&str, &str)]) -> RunRequest {
        RunRequest {
            external_id: "nightly-report".into(),
            parameters: params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
            idempotency_key: "k-1".into(),
            fallback: None,
        }
    }

    #[test]
    fn overrides_carry_the_parameters_for_the_first_container() {
        let o = overrides("main", &request(&[("DATE", "2026-11-23"), ("MODE", "full")]).parameters).unwrap();
        let c = &o.container_overrides()[0];
        assert_eq!(c.name(), Some("main"));
        let env: Vec<_> = c.environment().iter().map(|kv| (kv.name().unwrap(), kv.value().unwrap())).collect();
        assert_eq!(env, [("DATE", "2026-11-23"), ("MODE", "full")]);
    }

    #[test]
    fn overrides_over_8_kib_are_refused_before_any_call() {
        // {"containerOverrides":[{"environment":[{"name":"BLOB","value":""}],"name":"main"}]}
        let overhead = 83;
        let exactly = "x".repeat(OVERRIDES_LIMIT - overhead);
        overrides("main", &request(&[("BLOB", &exactly)]).parameters).expect("8,192 characters are allowed");
        let over = "x".repeat(OVERRIDES_LIMIT - overhead + 1);
        let err = overrides("main", &request(&[("BLOB", &over)]).parameters).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.message().contains("8193 characters; ECS allows 8192"), "{err}");
    }

    #[test]
    fn every_placement_failure_says_what_to_do() {
        for (reason, kind, says) in [
            ("RESOURCE:MEMORY", ErrorKind::Unavailable, "enough free memory"),
            ("RESOURCE:CPU", ErrorKind::Unavailable, "enough free cpu"),
            ("AGENT", ErrorKind::Unavailable, "agent"),
            ("ATTRIBUTE", ErrorKind::InvalidInput, "placement constraints"),
            ("MISSING", ErrorKind::NotFound, "polysync discover"),
            ("Capacity is unavailable at this time", ErrorKind::Unavailable, "on-demand capacity"),
        ] {
            let e = placement_failure(reason, Some("arn:aws:ecs:x"), "running nightly");
            assert_eq!(e.kind(), kind, "{reason}");
            assert!(e.message().contains(says) && e.message().contains(reason), "{reason}: {e}");
        }
    }

    #[test]
    fn client_tokens_are_stable_64_character_digests() {
        let a = digest("run-1");
        assert_eq!(a.len(), 64);
        assert_eq!(a, digest("run-1"));
        assert_ne!(a, digest("run-2"));
    }

    #[test]
    fn bad_requests_are_invalid_input() {
        let mut r = request(&[("NOT A NAME=", "x")]);
        assert_eq!(check(&r).unwrap_err().kind(), ErrorKind::InvalidInput);
        r.parameters.clear();
        r.idempotency_key.clear();
        assert_eq!(check(&r).unwrap_err().kind(), ErrorKind::InvalidInput);
        r.idempotency_key = "k".into();
        r.external_id = "family:12".into();
        check(&r).unwrap();
    }
}
