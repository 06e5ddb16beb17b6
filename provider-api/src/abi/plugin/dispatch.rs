//! Decode a request, call the provider, encode the result or stream items.

use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Emitter;
use crate::abi::Op;
use crate::{API_VERSION, Provider, ProviderError, ResultStream};

/// Run operation `op` and return the terminal body (empty for streams).
pub(super) async fn dispatch(
    provider: &dyn Provider,
    op: u32,
    request: &[u8],
    out: &Emitter,
) -> Result<Vec<u8>, ProviderError> {
    let Some(op) = Op::from_u32(op) else {
        return Err(ProviderError::unsupported(format!(
            "operation number {op} is not known to this plugin (built for API {API_VERSION}); upgrade the plugin"
        )));
    };
    match op {
        Op::Discover => encode(op, &provider.discover(decode(op, request)?).await?),
        Op::Run => encode(op, &provider.run(decode(op, request)?).await?),
        Op::Poll => encode(op, &provider.poll(decode(op, request)?).await?),
        Op::Cancel => encode(op, &provider.cancel(decode(op, request)?).await?),
        Op::MonitorUrl => encode(op, &provider.monitor_url(decode(op, request)?).await?),
        Op::ListClusters => encode(op, &provider.list_clusters(decode(op, request)?).await?),
        Op::Watch => pump(op, provider.watch(decode(op, request)?).await?, out).await,
        Op::Logs => pump(op, provider.logs(decode(op, request)?).await?, out).await,
        Op::Events => pump(op, provider.events(decode(op, request)?).await?, out).await,
    }
}

fn decode<T: DeserializeOwned>(op: Op, request: &[u8]) -> Result<T, ProviderError> {
    serde_json::from_slice(request).map_err(|e| {
        ProviderError::invalid_input(format!(
            "the {} request does not match API {API_VERSION} ({e}); check that host and plugin versions match",
            op.name()
        ))
    })
}

fn encode<T: Serialize>(op: Op, value: &T) -> Result<Vec<u8>, ProviderError> {
    serde_json::to_vec(value)
        .map_err(|e| ProviderError::internal(format!("the plugin could not encode its {} answer: {e}", op.name())))
}

/// Forward every item; stop early once the host has aborted the call.
async fn pump<T: Serialize>(op: Op, mut stream: ResultStream<T>, out: &Emitter) -> Result<Vec<u8>, ProviderError> {
    while let Some(item) = stream.next().await {
        if !out.item(&encode(op, &item?)?) {
            return Err(ProviderError::cancelled());
        }
    }
    Ok(Vec::new())
}
