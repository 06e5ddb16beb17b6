//! Discovery: Jobs, then CronJobs, page by page with `limit` and `continue`.
//!
//! The page token says which listing it continues (`jobs:` or `cronjobs:`
//! plus the API server's continue token). A `410 Expired` continue token
//! restarts the listing — as client-go's pager does, in one unpaged list, so
//! a server whose tokens keep expiring cannot make discovery loop — and marks
//! the page `restarted`, so the host starts its count again instead of
//! failing a long sync.

use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{Api, ListParams, ObjectList};
use polysync_provider_api::{DiscoverPage, DiscoverRequest, ProviderError};

use crate::KubeJobs;
use crate::entry;
use crate::error::from_call;

const JOBS: &str = "jobs:";
const CRONJOBS: &str = "cronjobs:";

async fn page<K>(
    k: &KubeJobs,
    api: &Api<K>,
    limit: u32,
    token: Option<&str>,
    what: &str,
) -> Result<(ObjectList<K>, bool), ProviderError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = |token: Option<&str>| {
        let p = ListParams::default().limit(limit);
        match token {
            Some(t) => p.continue_token(t),
            None => p,
        }
    };
    let first = params(token);
    match k.retry.run(what, || api.list(&first)).await {
        Ok(list) => Ok((list, false)),
        Err(e) if e.code() == Some(410) && token.is_some() => {
            tracing::info!("{what}: the continue token expired; listing everything at once");
            let whole = ListParams::default();
            let list = k.retry.call(what, || api.list(&whole)).await?;
            Ok((list, true))
        }
        Err(e) => Err(from_call(e, what)),
    }
}

fn next(list_continue: Option<&String>, prefix: &str) -> Option<String> {
    list_continue.filter(|c| !c.is_empty()).map(|c| format!("{prefix}{c}"))
}

pub(crate) async fn discover(k: &KubeJobs, request: DiscoverRequest) -> Result<DiscoverPage, ProviderError> {
    let limit = request.page_size.unwrap_or(100).clamp(1, 500);
    let (cronjobs, token) = match request.page_token.as_deref() {
        None => (false, None),
        Some(t) => match (t.strip_prefix(JOBS), t.strip_prefix(CRONJOBS)) {
            (Some(rest), _) => (false, Some(rest)),
            (_, Some(rest)) => (true, (!rest.is_empty()).then_some(rest)),
            _ => {
                return Err(ProviderError::invalid_input(format!(
                    "page token {t:?} was not issued by this provider; start the listing again without one"
                )));
            }
        },
    };
    let client = k.client().await?;
    let ns = &k.namespace;
    if !cronjobs {
        let api: Api<Job> = Api::namespaced(client, ns);
        let (list, restarted) = page(k, &api, limit, token, &format!("listing Jobs in namespace {ns}")).await?;
        let entries = list.items.iter().filter_map(|j| entry::from_job(j, ns)).collect();
        let next_page_token =
            next(list.metadata.continue_.as_ref(), JOBS).or_else(|| k.include_cronjobs.then(|| CRONJOBS.to_owned()));
        return Ok(DiscoverPage { entries, next_page_token, restarted });
    }
    let api: Api<CronJob> = Api::namespaced(client, ns);
    let (list, restarted) = page(k, &api, limit, token, &format!("listing CronJobs in namespace {ns}")).await?;
    let entries = list.items.iter().filter_map(|c| entry::from_cronjob(c, ns)).collect();
    Ok(DiscoverPage { entries, next_page_token: next(list.metadata.continue_.as_ref(), CRONJOBS), restarted })
}
