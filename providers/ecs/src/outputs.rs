//! Outputs of ECS runs (API 1.3): `::polysync-output NAME=VALUE` lines in
//! container[0]'s CloudWatch Logs stream, read once the task has stopped.
//! Only for task definitions that declare outputs (docker label or tag
//! `polysync.io/outputs`): CloudWatch Logs allows ~25 GetLogEvents a second
//! per account and region, so reading every stopped task's log to find
//! nothing would throttle the logs of everything else. Undeclared markers
//! in a declaring task's log are reported too.

use polysync_aws::from_sdk;
use polysync_provider_api::outputs::parse_markers;
use polysync_provider_api::{ErrorKind, RunState, RunStatus};

use crate::Ecs;
use crate::definition::Definition;
use crate::status::task_id;

/// Pages of a log stream read for markers (10,000 events or 1 MB each).
const MAX_PAGES: usize = 20;

/// Add the outputs of a run that just ended to its status.
pub(crate) async fn attach(ecs: &Ecs, def: &Definition, task_arn: &str, status: &mut RunStatus) {
    if def.declared.is_empty() || !status.state.is_terminal() {
        return;
    }
    let Some(source) = &def.main_log else {
        status.output_error = Some(format!(
            "the task definition declares outputs ({}) but its first container does not log to CloudWatch Logs with a stream prefix, where they are read; set logConfiguration {{logDriver: awslogs, options: awslogs-group, awslogs-region, awslogs-stream-prefix}}",
            def.declared.join(", ")
        ));
        return;
    };
    let stream = source.stream(task_id(task_arn));
    match read(ecs, source.region.as_deref(), &source.group, &stream).await {
        Ok(text) => status.outputs = parse_markers(&text),
        Err(e) => {
            status.output_error = Some(format!("reading the outputs from log stream {stream} failed: {e}"));
            return;
        }
    }
    let missing: Vec<&str> =
        def.declared.iter().filter(|d| !status.outputs.contains_key(*d)).map(String::as_str).collect();
    if !missing.is_empty() && status.state == RunState::Success {
        status.output_error = Some(format!(
            "declared outputs not written: {} (print `::polysync-output NAME=VALUE` lines from container {})",
            missing.join(", "),
            source.container
        ));
    }
}

/// The stream's text from its start; a stream that does not exist is empty.
async fn read(ecs: &Ecs, region: Option<&str>, group: &str, stream: &str) -> polysync_provider_api::Result<String> {
    let client = crate::client::logs_client(ecs, region).await?;
    let mut text = String::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let call = client
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .start_from_head(true)
            .set_next_token(token.clone());
        let page = match crate::client::with_backoff(|| async {
            call.clone().send().await.map_err(|e| from_sdk(e, "logs:GetLogEvents", "reading output markers"))
        })
        .await
        {
            Ok(p) => p,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(text),
            Err(e) => return Err(e),
        };
        for m in page.events().iter().filter_map(|e| e.message()) {
            text.push_str(m);
            text.push('\n');
        }
        let next = page.next_forward_token().map(str::to_owned);
        if page.events().is_empty() || next.is_none() || next == token {
            break;
        }
        token = next;
    }
    Ok(text)
}
