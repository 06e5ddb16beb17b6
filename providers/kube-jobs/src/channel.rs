//! A stream fed by a task, for streams whose producer is easier to write as
//! a loop. Dropping the stream aborts the task.

use futures::StreamExt;
use polysync_provider_api::{ProviderError, ResultStream};
use tokio::sync::mpsc;

/// Sends items to the stream; `false` once the stream is gone.
#[derive(Debug, Clone)]
pub struct Sink<T>(mpsc::Sender<Result<T, ProviderError>>);

impl<T> Sink<T> {
    pub async fn send(&self, item: T) -> bool {
        self.0.send(Ok(item)).await.is_ok()
    }

    pub async fn fail(&self, err: ProviderError) {
        let _ = self.0.send(Err(err)).await;
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A stream of what `produce` sends; it ends when `produce` returns.
pub fn stream<T, F>(produce: impl FnOnce(Sink<T>) -> F) -> ResultStream<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    let task = tokio::spawn(produce(Sink(tx)));
    let guard = AbortOnDrop(task.abort_handle());
    futures::stream::unfold(
        (rx, guard),
        |(mut rx, guard)| async move { rx.recv().await.map(|item| (item, (rx, guard))) },
    )
    .boxed()
}
