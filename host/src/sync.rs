//! Sync: discovery pages streamed into the catalog, one transaction per
//! page. Only a sync that reached the last page marks unseen entries
//! missing; one that fails midway says how far it got and marks nothing.

use polysync_provider_api::{DiscoverRequest, Provider};

use crate::catalog::{Catalog, SyncRecord};
use crate::error::{Error, Result};

/// Sync `connection` through `provider`. `progress(pages, entries)` is
/// called after every page.
pub async fn sync(
    catalog: &mut Catalog,
    connection: &str,
    provider: &dyn Provider,
    page_size: Option<u32>,
    mut progress: impl FnMut(usize, usize),
) -> Result<SyncRecord> {
    let sync_id = catalog.begin_sync(connection)?;
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
                catalog.finish_sync(connection, sync_id, false, Some(&message))?;
                return Err(Error::Provider(polysync_provider_api::ProviderError::new(e.kind(), message)));
            }
        };
        if page.restarted {
            // The listing started over: count entries, not re-reads.
            catalog.restart_sync_counts(sync_id)?;
            seen = 0;
        }
        catalog.upsert_page(connection, sync_id, &page.entries)?;
        pages += 1;
        seen += page.entries.len();
        progress(pages, seen);
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    catalog.finish_sync(connection, sync_id, true, None)
}
