//! Running the invocation streams that `wit-bindgen-wrpc`'s generated `serve` returns: every
//! item is one call's future, which must be awaited (not just collected) for the handler to
//! run. Calls run concurrently up to a bound; shutdown stops accepting and lets the calls in
//! flight finish, for a bounded time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// One call: decode, run the handler, write the results.
pub type InvocationFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'static>>;
/// The calls of one function.
pub type InvocationStream =
    Pin<Box<dyn Stream<Item = anyhow::Result<InvocationFuture>> + Send + 'static>>;
/// `(instance, function, calls)` for every function served, as the generated `serve`
/// returns them.
pub type Invocations = Vec<(&'static str, &'static str, InvocationStream)>;

/// Limits of [`serve_invocations`].
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// Calls running at once, over all functions; further calls wait in NATS.
    pub max_concurrent: usize,
    /// How long calls in flight may take to finish after shutdown begins.
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_concurrent: 1024,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `invocations` until `shutdown`, then drops them (unsubscribing, so NATS sends new
/// calls to other instances) and waits for the calls in flight, at most
/// `options.drain_timeout`. Returns how many calls were still running when it gave up.
pub async fn serve_invocations<S, F>(
    invocations: impl IntoIterator<Item = (&'static str, &'static str, S)>,
    options: ServeOptions,
    shutdown: CancellationToken,
) -> usize
where
    S: Stream<Item = anyhow::Result<F>> + Send + Unpin + 'static,
    F: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(options.max_concurrent.max(1)));
    let calls = TaskTracker::new();
    let accept = TaskTracker::new();
    let mut serving = false;
    for (instance, function, stream) in invocations {
        serving = true;
        accept.spawn(accept_calls(
            instance,
            function,
            stream,
            Arc::clone(&permits),
            calls.clone(),
            shutdown.clone(),
        ));
    }
    if !serving {
        // A provider that serves no exports (an HTTP server calling components) still runs
        // until it is told to stop.
        shutdown.cancelled().await;
        return 0;
    }
    accept.close();
    accept.wait().await;
    calls.close();
    if calls.is_empty() {
        return 0;
    }
    tracing::info!(in_flight = calls.len(), "waiting for calls in flight");
    match tokio::time::timeout(options.drain_timeout, calls.wait()).await {
        Ok(()) => 0,
        Err(_) => {
            let left = calls.len();
            tracing::warn!(
                left,
                timeout = ?options.drain_timeout,
                "calls still running after the drain timeout; abandoning them"
            );
            left
        }
    }
}

async fn accept_calls<S, F>(
    instance: &'static str,
    function: &'static str,
    mut stream: S,
    permits: Arc<Semaphore>,
    calls: TaskTracker,
    shutdown: CancellationToken,
) where
    S: Stream<Item = anyhow::Result<F>> + Send + Unpin + 'static,
    F: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_closed) => break,
            },
        };
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = stream.next() => next,
        };
        match next {
            Some(Ok(call)) => {
                calls.spawn(async move {
                    let _permit = permit;
                    if let Err(err) = call.await {
                        tracing::debug!(
                            instance,
                            function,
                            err = format!("{err:#}"),
                            "call failed"
                        );
                    }
                });
            }
            Some(Err(err)) => {
                tracing::warn!(
                    instance,
                    function,
                    err = format!("{err:#}"),
                    "could not accept a call"
                );
            }
            None => {
                tracing::warn!(instance, function, "the subscription ended");
                break;
            }
        }
    }
    drop(stream);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn calls(
        n: usize,
        running: Arc<AtomicUsize>,
        peak: Arc<AtomicUsize>,
        done: Arc<AtomicUsize>,
        each: Duration,
    ) -> InvocationStream {
        Box::pin(
            futures::stream::iter((0..n).map(move |_| {
                let (running, peak, done) = (running.clone(), peak.clone(), done.clone());
                let call: InvocationFuture = Box::pin(async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(each).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    done.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                });
                Ok(call)
            }))
            .chain(futures::stream::pending()),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn bounded_concurrency_and_drain() {
        let (running, peak, done) = (
            Arc::default(),
            Arc::default(),
            Arc::<AtomicUsize>::default(),
        );
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve_invocations(
            vec![
                (
                    "a",
                    "f",
                    calls(
                        10,
                        Arc::clone(&running),
                        Arc::clone(&peak),
                        Arc::clone(&done),
                        Duration::from_secs(1),
                    ),
                ),
                (
                    "a",
                    "g",
                    calls(
                        10,
                        Arc::clone(&running),
                        Arc::clone(&peak),
                        Arc::clone(&done),
                        Duration::from_secs(1),
                    ),
                ),
            ],
            ServeOptions {
                max_concurrent: 4,
                drain_timeout: Duration::from_secs(30),
            },
            shutdown.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        shutdown.cancel();
        let left = task.await.unwrap();
        assert_eq!(left, 0);
        assert_eq!(peak.load(Ordering::SeqCst), 4);
        // Calls accepted before shutdown finished; no new ones started after it.
        let finished = done.load(Ordering::SeqCst);
        assert!((8..=12).contains(&finished), "{finished}");
        assert_eq!(running.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn drain_gives_up_after_its_timeout() {
        let (running, peak, done) = (
            Arc::default(),
            Arc::default(),
            Arc::<AtomicUsize>::default(),
        );
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve_invocations(
            vec![(
                "a",
                "slow",
                calls(2, running, peak, done, Duration::from_secs(3600)),
            )],
            ServeOptions {
                max_concurrent: 8,
                drain_timeout: Duration::from_secs(1),
            },
            shutdown.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(10)).await;
        shutdown.cancel();
        assert_eq!(task.await.unwrap(), 2);
    }
}
