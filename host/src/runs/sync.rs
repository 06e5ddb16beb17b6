//! Sync: discovery pages streamed into the catalog, one transaction per
//! page. Only a sync that reached the last page marks unseen entries
//! missing; one that fails midway says how far it got and marks nothing.
//! One sync per connection runs at a time across every host on the
//! catalog; a second waits for the first to end, then runs its own.

use std::time::Duration;

use polysync_provider_api::{DiscoverRequest, ProviderError};

use crate::Host;
use crate::error::{Clash, Error, Result};
use crate::store::SyncRecord;

/// How long a sync may go without finishing a page before another host
/// may take the connection over.
const SYNC_LEASE: Duration = Duration::from_secs(120);

/// Sync `connection`. `progress(pages, entries)` is called after every
/// page.
pub async fn sync_connection(
    host: &Host,
    connection: &str,
    page_size: Option<u32>,
    progress: impl FnMut(usize, usize),
) -> Result<SyncRecord> {
    let sync_id = loop {
        match start_sync(host, connection).await {
            Ok(id) => break id,
            Err(Error::Conflict(why @ Clash::SyncRunning { .. })) => {
                tracing::info!("{why}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    };
    continue_sync(host, connection, sync_id, page_size, progress).await
}

/// Record the start of a sync of `connection`, or Conflict if one is
/// running (on any host). [`continue_sync`] does the work.
pub async fn start_sync(host: &Host, connection: &str) -> Result<i64> {
    host.config.connection(connection)?;
    host.store().await?.begin_sync(connection, host.id().as_str(), SYNC_LEASE).await
}

/// Discover `connection` into the sync `sync_id` that [`start_sync`]
/// recorded, to its end.
pub async fn continue_sync(
    host: &Host,
    connection: &str,
    sync_id: i64,
    page_size: Option<u32>,
    mut progress: impl FnMut(usize, usize),
) -> Result<SyncRecord> {
    let store = host.store().await?;
    let provider = match host.provider(connection) {
        Ok(p) => p,
        Err(e) => {
            store.finish_sync(sync_id, false, Some(&e.to_string())).await?;
            return Err(e);
        }
    };
    let (mut pages, mut seen) = (0, 0);
    let mut token = None;
    loop {
        let page = match provider.discover(DiscoverRequest { page_token: token.clone(), page_size }).await {
            Ok(page) => page,
            Err(e) => {
                let message = format!(
                    "discovery of {connection} failed after {pages} pages ({seen} entries): {}; nothing was marked missing",
                    e.message()
                );
                store.finish_sync(sync_id, false, Some(&message)).await?;
                return Err(Error::Provider(ProviderError::new(e.kind(), message)));
            }
        };
        if page.restarted {
            // The listing started over: count entries, not re-reads.
            store.restart_sync_counts(sync_id).await?;
            seen = 0;
        }
        store.upsert_page(sync_id, &page.entries, SYNC_LEASE).await?;
        pages += 1;
        seen += page.entries.len();
        progress(pages, seen);
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    store.finish_sync(sync_id, true, None).await
}
