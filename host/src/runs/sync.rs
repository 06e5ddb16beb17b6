//! Sync: discovery pages streamed into the catalog, one transaction per
//! page. Only a sync that reached the last page marks unseen entries
//! missing; one that fails midway says how far it got and marks nothing.
//! One sync per connection runs at a time across every host on the
//! catalog; a second waits for the first to end, then runs its own.

use std::time::Duration;

use polysync_provider_api::{DiscoverRequest, ProviderError};

use crate::Host;
use crate::error::{Error, Result};
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
    mut progress: impl FnMut(usize, usize),
) -> Result<SyncRecord> {
    let provider = host.provider(connection)?;
    let store = host.store().await?;
    let sync_id = loop {
        match store.begin_sync(connection, host.id().as_str(), SYNC_LEASE).await {
            Ok(id) => break id,
            Err(Error::Conflict(why)) => {
                tracing::info!("{why}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
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
