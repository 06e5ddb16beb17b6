//! Syncs and entries in PostgreSQL.

use std::time::Duration;

use polysync_provider_api::CatalogEntry;
use tokio_postgres::types::ToSql;

use super::PostgresStore;
use crate::error::Result;
use crate::store::rows::{self, ENTRY_COLUMNS, SYNC_COLUMNS, kind_str};
use crate::store::{
    EntryFilter, EntryState, PageCounts, Stamp, StoredEntry, SyncRecord, SyncStatus, json, ms, now_ms, sync_busy,
    sync_holder_gone, unreadable,
};

pub(super) async fn begin_sync(store: &PostgresStore, connection: &str, owner: &str, lease: Duration) -> Result<i64> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(store.fail())?;
    // One sync per connection: serialize the check on a per-connection lock.
    tx.execute("SELECT pg_advisory_xact_lock(hashtext('polysync-sync:' || $1))", &[&connection])
        .await
        .map_err(store.fail())?;
    let now_ms = now_ms();
    let running = tx
        .query(
            "SELECT id, owner, lease_until FROM syncs WHERE status = $2 AND connection = $1",
            &[&connection, &SyncStatus::Running],
        )
        .await
        .map_err(store.fail())?;
    for row in running {
        let (id, holder, until): (i64, Option<String>, Option<i64>) = (row.get(0), row.get(1), row.get(2));
        if sync_holder_gone(holder.as_deref(), until, now_ms) {
            tx.execute(
                "UPDATE syncs SET status = $4, finished_at = $2, error = $3 WHERE id = $1",
                &[&id, &Stamp::now(), &crate::store::model::INTERRUPTED, &SyncStatus::Failed],
            )
            .await
            .map_err(store.fail())?;
        } else {
            let row = tx
                .query_one("SELECT id, owner, started_at FROM syncs WHERE id = $1", &[&id])
                .await
                .map_err(store.fail())?;
            let (holder, since) = rows::sync_holder(&row).map_err(|e| unreadable(&store.shown, e))?;
            return Err(sync_busy(connection, holder.as_deref(), since));
        }
    }
    let id: i64 = tx
        .query_one(
            "INSERT INTO syncs (connection, started_at, status, pid, owner, lease_until) VALUES ($1, $2, $6, $3, $4, $5) RETURNING id",
            &[&connection, &Stamp::now(), &i64::from(std::process::id()), &owner, &(now_ms + ms(lease)), &SyncStatus::Running],
        )
        .await
        .map_err(store.fail())?
        .get(0);
    tx.commit().await.map_err(store.fail())?;
    Ok(id)
}

pub(super) async fn upsert_page(
    store: &PostgresStore,
    sync_id: i64,
    entries: &[CatalogEntry],
    lease: Duration,
) -> Result<PageCounts> {
    let at = Stamp::now();
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(store.fail())?;
    let connection: String =
        tx.query_one("SELECT connection FROM syncs WHERE id = $1", &[&sync_id]).await.map_err(store.fail())?.get(0);
    let ids: Vec<&str> = entries.iter().map(|e| e.external_id.as_str()).collect();
    // What the page's entries were, in one round trip.
    let before: std::collections::HashMap<String, (Vec<Option<String>>, String)> = tx
        .query(
            "SELECT external_id, kind, display_name, namespace, cluster, parameters, fallback, fingerprint, labels, state
             FROM entries WHERE connection = $1 AND external_id = ANY($2)",
            &[&connection, &ids],
        )
        .await
        .map_err(store.fail())?
        .iter()
        .map(|r| (r.get(0), ((1..9).map(|i| r.get::<_, Option<String>>(i)).collect(), r.get(9))))
        .collect();
    let upsert = tx
        .prepare_cached(
            "INSERT INTO entries (connection, external_id, kind, display_name, namespace, cluster, parameters, fallback, fingerprint, labels, state, first_seen, last_seen, last_sync)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $13, $11, $11, $12)
             ON CONFLICT (connection, external_id) DO UPDATE SET
                kind = excluded.kind, display_name = excluded.display_name, namespace = excluded.namespace,
                cluster = excluded.cluster, parameters = excluded.parameters, fallback = excluded.fallback,
                fingerprint = excluded.fingerprint, labels = excluded.labels, state = $13,
                last_seen = excluded.last_seen, last_sync = excluded.last_sync",
        )
        .await
        .map_err(store.fail())?;
    let mut counts = PageCounts::default();
    let rows: Vec<[Option<String>; 8]> = entries
        .iter()
        .map(|e| {
            [
                Some(kind_str(e.kind)),
                Some(e.display_name.clone()),
                e.namespace.clone(),
                e.cluster.clone(),
                Some(json(&e.parameters)),
                Some(json(&e.fallback)),
                Some(e.fingerprint.clone()),
                Some(json(&e.labels)),
            ]
        })
        .collect();
    for (e, row) in entries.iter().zip(&rows) {
        match before.get(&e.external_id) {
            None => counts.added += 1,
            Some((stored, state)) if stored.as_slice() == row.as_slice() && state == EntryState::Active.as_str() => {
                counts.unchanged += 1
            }
            Some(_) => counts.updated += 1,
        }
    }
    // Pipelined: every upsert of the page in flight at once.
    let params: Vec<[&(dyn ToSql + Sync); 13]> = entries
        .iter()
        .zip(&rows)
        .map(|(e, row)| {
            [
                &connection as &(dyn ToSql + Sync),
                &e.external_id,
                &row[0],
                &row[1],
                &row[2],
                &row[3],
                &row[4],
                &row[5],
                &row[6],
                &row[7],
                &at,
                &sync_id,
                &EntryState::Active,
            ]
        })
        .collect();
    let writes = params.iter().map(|p| tx.execute(&upsert, p));
    futures::future::try_join_all(writes).await.map_err(store.fail())?;
    tx.execute(
        "UPDATE syncs SET pages = pages + 1, seen = seen + $2, added = added + $3, updated = updated + $4, unchanged = unchanged + $5, lease_until = $6 WHERE id = $1",
        &[
            &sync_id,
            &(entries.len() as i64),
            &(counts.added as i64),
            &(counts.updated as i64),
            &(counts.unchanged as i64),
            &(now_ms() + ms(lease)),
        ],
    )
    .await
    .map_err(store.fail())?;
    tx.commit().await.map_err(store.fail())?;
    Ok(counts)
}

pub(super) async fn restart_sync_counts(store: &PostgresStore, sync_id: i64) -> Result<()> {
    store
        .execute("UPDATE syncs SET seen = 0, added = 0, updated = 0, unchanged = 0 WHERE id = $1", &[&sync_id])
        .await
        .map(drop)
}

pub(super) async fn finish_sync(
    store: &PostgresStore,
    sync_id: i64,
    complete: bool,
    error: Option<&str>,
) -> Result<SyncRecord> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(store.fail())?;
    let missing = if complete {
        tx.execute(
            "UPDATE entries SET state = $2 WHERE connection = (SELECT connection FROM syncs WHERE id = $1) AND last_sync != $1 AND state = $3",
            &[&sync_id, &EntryState::Missing, &EntryState::Active],
        )
        .await
        .map_err(store.fail())?
    } else {
        0
    };
    tx.execute(
        "UPDATE syncs SET finished_at = $2, status = $3, missing = $4, error = $5, lease_until = NULL WHERE id = $1",
        &[&sync_id, &Stamp::now(), &SyncStatus::ended(complete), &(missing as i64), &error],
    )
    .await
    .map_err(store.fail())?;
    tx.commit().await.map_err(store.fail())?;
    drop(client);
    sync_record(store, sync_id).await?.ok_or_else(|| store.vanished(format!("sync {sync_id}")))
}

pub(super) async fn sync_record(store: &PostgresStore, sync_id: i64) -> Result<Option<SyncRecord>> {
    let client = store.client().await?;
    let row = client
        .query_opt(&format!("SELECT {SYNC_COLUMNS} FROM syncs WHERE id = $1"), &[&sync_id])
        .await
        .map_err(store.fail())?;
    row.as_ref().map(rows::sync).transpose().map_err(|e| unreadable(&store.shown, e))
}

pub(super) async fn entry(store: &PostgresStore, connection: &str, external_id: &str) -> Result<Option<StoredEntry>> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(&format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE connection = $1 AND external_id = $2"))
        .await
        .map_err(store.fail())?;
    let row = client.query_opt(&stmt, &[&connection, &external_id]).await.map_err(store.fail())?;
    row.as_ref().map(rows::entry).transpose().map_err(|e| unreadable(&store.shown, e))
}

pub(super) async fn entries(store: &PostgresStore, filter: &EntryFilter) -> Result<Vec<StoredEntry>> {
    let client = store.client().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {ENTRY_COLUMNS} FROM entries WHERE ($1::text IS NULL OR connection = $1) AND ($2::text IS NULL OR state = $2)
                 AND ($3::text IS NULL OR (connection, external_id) > ($3, $4::text)) ORDER BY connection, external_id LIMIT $5"
            ),
            &[
                &filter.connection,
                &filter.state,
                &filter.after.as_ref().map(|a| a.0.as_str()),
                &filter.after.as_ref().map(|a| a.1.as_str()),
                &filter.limit.map(|l| l as i64),
            ],
        )
        .await
        .map_err(store.fail())?;
    rows.iter().map(rows::entry).collect::<Result<_, _>>().map_err(|e| unreadable(&store.shown, e))
}
