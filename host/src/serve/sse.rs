//! Status streams: run status changes as Server-Sent Events. They read
//! the catalog, not this replica's memory, so any replica streams any run,
//! whichever replica follows it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;

use super::AppState;
use crate::store::{Stamp, StoredRun};

/// How often the catalog is read for changes.
const POLL: Duration = Duration::from_millis(250);

struct Cursor {
    state: AppState,
    run: Option<i64>,
    since: Stamp,
    /// What was last sent of each run (its `updated_at`), so a change is
    /// sent once although the cursor re-reads its own millisecond.
    sent: HashMap<i64, Stamp>,
    pending: std::collections::VecDeque<StoredRun>,
    done: bool,
}

fn event(state: &AppState, run: &StoredRun) -> Event {
    let view = super::views::RunView::of(state.host.config.secrets.run(run));
    Event::default().event("status").id(format!("{}:{}", run.id, run.updated_at)).json_data(&view).unwrap_or_default()
}

/// Where a client that reconnects left off: the `id` of the last event it
/// got (`Last-Event-ID`), `<run>:<updated_at>`.
pub fn resume_point(last_event_id: Option<&str>) -> Option<(i64, Stamp)> {
    let (run, at) = last_event_id?.split_once(':')?;
    Some((run.parse().ok()?, Stamp::parse(at)?))
}

/// Changes of `run` (starting with its current status, ending after its
/// final one), or of every run from now on; after `resume` (a reconnecting
/// client's last event), only what it has not seen.
pub fn status(
    state: AppState,
    run: Option<StoredRun>,
    resume: Option<(i64, Stamp)>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut cursor = Cursor {
        state,
        run: run.as_ref().map(|r| r.id),
        since: Stamp::now(),
        sent: HashMap::new(),
        pending: Default::default(),
        done: false,
    };
    if let Some((id, at)) = &resume {
        cursor.since = *at;
        cursor.sent.insert(*id, *at);
    }
    if let Some(r) = run {
        let seen = resume.as_ref().is_some_and(|(id, at)| *id == r.id && *at >= r.updated_at);
        cursor.since = r.updated_at;
        cursor.sent.insert(r.id, r.updated_at);
        cursor.done = r.is_final();
        if !seen {
            cursor.pending.push_back(r);
        }
    }
    let stream = futures::stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(run) = c.pending.pop_front() {
                let e = event(&c.state, &run);
                return Some((Ok(e), c));
            }
            if c.done {
                return None;
            }
            tokio::time::sleep(POLL).await;
            let Ok(store) = c.state.host.store().await else { continue };
            let Ok(changed) = store.runs_changed(c.since, c.run, 500).await else { continue };
            for run in changed {
                if c.sent.get(&run.id) == Some(&run.updated_at) {
                    continue;
                }
                if run.updated_at > c.since {
                    c.since = run.updated_at;
                }
                c.sent.insert(run.id, run.updated_at);
                if c.run.is_some() && run.is_final() {
                    c.done = true;
                }
                c.pending.push_back(run);
            }
            if c.sent.len() > 100_000 {
                let since = c.since;
                c.sent.retain(|_, at| *at >= since);
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
