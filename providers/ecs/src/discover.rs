//! Discover: one ListTaskDefinitionFamilies page (ACTIVE families, the
//! connection's prefix) per contract page, then the latest ACTIVE revision
//! of each family, described concurrently.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use polysync_aws::from_sdk;
use polysync_provider_api::{
    CatalogEntry, DiscoverPage, DiscoverRequest, EntryKind, FallbackAttributes, Parameter, ProviderError, Result,
};

use crate::Ecs;

/// DescribeTaskDefinition calls in flight during discovery.
const CONCURRENCY: usize = 8;

/// Page tokens this provider issues: ECS's own, marked, so a token from
/// elsewhere (another connection's, a truncated one) is refused up front
/// instead of being sent to AWS.
const TOKEN_PREFIX: &str = "ecs1.";

pub(crate) async fn discover(ecs: &Ecs, request: DiscoverRequest) -> Result<DiscoverPage> {
    let token = match &request.page_token {
        None => None,
        Some(t) => Some(t.strip_prefix(TOKEN_PREFIX).map(str::to_owned).ok_or_else(|| {
            ProviderError::invalid_input(
                "the page token was not issued by this ecs connection; start discovery again without one",
            )
        })?),
    };
    let client = ecs.client().await?;
    let page = client
        .list_task_definition_families()
        .status(aws_sdk_ecs::types::TaskDefinitionFamilyStatus::Active)
        .set_family_prefix(ecs.settings.family_prefix.clone())
        .set_next_token(token)
        .max_results(polysync_aws::page_size(request.page_size))
        .send()
        .await
        .map_err(|e| from_sdk(e, "ecs:ListTaskDefinitionFamilies", "listing ECS task definition families"))?;
    let families = page.families.unwrap_or_default();
    let entries: Vec<Option<CatalogEntry>> = futures::stream::iter(families)
        .map(|family| {
            let client = client.clone();
            async move {
                let described = client
                    .describe_task_definition()
                    .task_definition(&family)
                    .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
                    .send()
                    .await;
                match described {
                    Ok(out) => Ok(out.task_definition.as_ref().map(|td| entry(ecs, &family, td, out.tags()))),
                    // Deregistered between the listing and now: not an entry.
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_client_exception()) => Ok(None),
                    Err(e) => {
                        Err(from_sdk(e, "ecs:DescribeTaskDefinition", &format!("describing task definition {family}")))
                    }
                }
            }
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    Ok(DiscoverPage {
        entries: entries.into_iter().flatten().collect(),
        next_page_token: page.next_token.map(|t| format!("{TOKEN_PREFIX}{t}")),
        restarted: false,
    })
}

/// A task definition as a catalog entry: parameters and fallback from its
/// first container; declared outputs as `Output` parameters (`InputOutput`
/// when also an environment variable).
pub(crate) fn entry(
    ecs: &Ecs,
    family: &str,
    td: &aws_sdk_ecs::types::TaskDefinition,
    tags: &[aws_sdk_ecs::types::Tag],
) -> CatalogEntry {
    let first = td.container_definitions().first();
    let mut parameters: Vec<Parameter> = first
        .map(|c| {
            c.environment()
                .iter()
                .filter_map(|kv| Some(Parameter::input(kv.name()?, kv.value().unwrap_or_default())))
                .collect()
        })
        .unwrap_or_default();
    for name in crate::definition::declared(td, tags) {
        match parameters.iter_mut().find(|p| p.name == name) {
            Some(p) => p.direction = polysync_provider_api::Direction::InputOutput,
            None => parameters.push(Parameter::output(name)),
        }
    }
    let fallback = first
        .map(|c| FallbackAttributes {
            image: c.image().map(str::to_owned),
            command: c.entry_point().to_vec(),
            args: c.command().to_vec(),
            env: BTreeMap::new(),
            template: None,
        })
        .unwrap_or_default();
    let mut labels = BTreeMap::new();
    labels.insert("revision".to_owned(), td.revision().to_string());
    if let Some(mode) = td.network_mode() {
        labels.insert("network_mode".to_owned(), mode.as_str().to_owned());
    }
    CatalogEntry {
        external_id: family.to_owned(),
        kind: EntryKind::TaskDefinition,
        display_name: format!("{family}:{}", td.revision()),
        namespace: None,
        cluster: Some(ecs.settings.cluster.clone()),
        parameters,
        fallback,
        fingerprint: td.task_definition_arn().unwrap_or_default().to_owned(),
        labels,
    }
}
