//! The one way to keep a copy of a key-value bucket current: start watching, read a snapshot,
//! apply the changes; after any gap (the watch ended or failed, NATS went away) start again
//! with a fresh snapshot, after a back-off that resets once a snapshot succeeded.
//!
//! Watching before reading the snapshot means no change is missed: a change made between the
//! two is in the snapshot and then arrives again, and applying a put or a delete twice is
//! harmless.

use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;

use crate::error::Result;

/// Something whose state can be read whole and whose changes can be watched.
pub trait Followed: Send + Sync {
    type Snapshot: Send;
    type Change: Send;

    /// The whole state now.
    fn snapshot(&self) -> BoxFuture<'_, Result<Self::Snapshot>>;

    /// Every change from now on; the stream ends at a gap.
    fn changes(&self) -> BoxFuture<'_, Result<BoxStream<'static, Self::Change>>>;

    /// Whether the state is out of reach because this side is cut off from it (a leaf
    /// without its hub), which a follower waits out by asking often rather than backing off.
    fn partitioned(&self) -> BoxFuture<'_, bool> {
        Box::pin(async { false })
    }
}

/// What a follower hands on: the whole state (at start and after every gap), then changes.
#[derive(Clone, Debug, PartialEq)]
pub enum Update<S, C> {
    Snapshot(S),
    Change(C),
}

/// Exponential back-off between attempts, reset after a success.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }

    /// The pause before the next attempt; each call doubles the one after, up to the maximum.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

impl Default for Backoff {
    /// 100 ms doubling to 5 s.
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(5))
    }
}

/// Follows `source` until `shutdown`, handing every [`Update`] to `apply` in order.
pub async fn follow<F, A>(source: F, shutdown: CancellationToken, mut apply: A)
where
    F: Followed,
    A: FnMut(Update<F::Snapshot, F::Change>) + Send,
{
    let mut backoff = Backoff::default();
    // An outage is said once (a leaf cut off from its hub can last hours), its end too.
    let failing = std::sync::atomic::AtomicBool::new(false);
    let mut apply_noting = |update| {
        if failing.swap(false, std::sync::atomic::Ordering::Relaxed) {
            tracing::info!("following the lattice state again");
        }
        apply(update)
    };
    loop {
        let gap = tokio::select! {
            _ = shutdown.cancelled() => return,
            gap = follow_once(&source, &mut backoff, &mut apply_noting) => gap,
        };
        match gap {
            Ok(()) => tracing::debug!("the watch ended; reading a fresh snapshot"),
            Err(err) if failing.load(std::sync::atomic::Ordering::Relaxed) => {
                tracing::debug!(%err, "still cannot follow the lattice state")
            }
            Err(err) => {
                failing.store(true, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(%err, "cannot follow the lattice state; retrying until it is reachable");
            }
        }
        if failing.load(std::sync::atomic::Ordering::Relaxed) && source.partitioned().await {
            // Cut off: try again as soon as the other side answers.
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(super::partition::PROBE_INTERVAL) => {}
                }
                if !source.partitioned().await {
                    break;
                }
            }
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// One watch: snapshot, then changes until the watch ends (`Ok`) or cannot start (`Err`).
async fn follow_once<F, A>(source: &F, backoff: &mut Backoff, apply: &mut A) -> Result<()>
where
    F: Followed,
    A: FnMut(Update<F::Snapshot, F::Change>),
{
    let mut changes = source.changes().await?;
    let snapshot = source.snapshot().await?;
    apply(Update::Snapshot(snapshot));
    backoff.reset();
    while let Some(change) = changes.next().await {
        apply(Update::Change(change));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures::FutureExt as _;
    use tokio::sync::mpsc;

    use super::*;
    use crate::error::Error;

    /// A source whose state is a number; each watch is a channel the test feeds, and reads
    /// fail while `down` is set.
    #[derive(Default)]
    struct Counter {
        value: Mutex<u32>,
        down: Mutex<bool>,
        watches: Mutex<Vec<mpsc::UnboundedSender<u32>>>,
        snapshots_at: Mutex<Vec<tokio::time::Instant>>,
        /// Whether `down` says so: cut off rather than failing.
        cut_off: bool,
    }

    impl Followed for Arc<Counter> {
        type Snapshot = u32;
        type Change = u32;

        fn snapshot(&self) -> BoxFuture<'_, Result<u32>> {
            async move {
                self.snapshots_at
                    .lock()
                    .unwrap()
                    .push(tokio::time::Instant::now());
                if *self.down.lock().unwrap() {
                    return Err(Error::nats("down"));
                }
                Ok(*self.value.lock().unwrap())
            }
            .boxed()
        }

        fn changes(&self) -> BoxFuture<'_, Result<BoxStream<'static, u32>>> {
            async move {
                let (tx, rx) = mpsc::unbounded_channel();
                self.watches.lock().unwrap().push(tx);
                Ok(tokio_stream_from(rx))
            }
            .boxed()
        }

        fn partitioned(&self) -> BoxFuture<'_, bool> {
            async move { self.cut_off && *self.down.lock().unwrap() }.boxed()
        }
    }

    fn tokio_stream_from(mut rx: mpsc::UnboundedReceiver<u32>) -> BoxStream<'static, u32> {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn snapshot_then_changes_and_a_fresh_snapshot_after_a_gap() {
        let source = Arc::new(Counter::default());
        *source.value.lock().unwrap() = 7;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(follow(Arc::clone(&source), shutdown.clone(), {
            let seen = Arc::clone(&seen);
            move |u| seen.lock().unwrap().push(u)
        }));
        settle().await;
        source.watches.lock().unwrap()[0].send(8).unwrap();
        settle().await;
        // The watch ends (a gap): the follower reads the state again.
        *source.value.lock().unwrap() = 9;
        source.watches.lock().unwrap().clear();
        tokio::time::sleep(Duration::from_secs(1)).await;
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            vec![Update::Snapshot(7), Update::Change(8), Update::Snapshot(9)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn backs_off_while_failing_and_resets_after_a_success() {
        let source = Arc::new(Counter::default());
        *source.down.lock().unwrap() = true;
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(follow(Arc::clone(&source), shutdown.clone(), |_| {}));
        let start = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(1600)).await;
        // Attempts at 0, 100, 300, 700, 1500 ms: the pause doubles.
        let gaps: Vec<u128> = source
            .snapshots_at
            .lock()
            .unwrap()
            .iter()
            .map(|t| (*t - start).as_millis())
            .collect();
        assert_eq!(gaps, vec![0, 100, 300, 700, 1500]);
        // Back up: one success resets the back-off, so the next gap waits 100 ms again.
        *source.down.lock().unwrap() = false;
        tokio::time::sleep(Duration::from_millis(3200)).await;
        let resumed = *source.snapshots_at.lock().unwrap().last().unwrap();
        source.watches.lock().unwrap().clear();
        settle().await;
        let gap_at = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(150)).await;
        let again = *source.snapshots_at.lock().unwrap().last().unwrap();
        assert!(again > resumed);
        assert_eq!((again - gap_at).as_millis(), 100);
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn cut_off_it_resumes_as_soon_as_the_other_side_answers() {
        let source = Arc::new(Counter {
            cut_off: true,
            ..Counter::default()
        });
        *source.down.lock().unwrap() = true;
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(follow(Arc::clone(&source), shutdown.clone(), |_| {}));
        // A long cut: a back-off would have grown to its 5 s maximum by now.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(
            source.snapshots_at.lock().unwrap().len(),
            1,
            "no snapshot is read while the other side does not answer"
        );
        *source.down.lock().unwrap() = false;
        let back = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(250)).await;
        let resumed = *source.snapshots_at.lock().unwrap().last().unwrap();
        assert!(
            resumed >= back && resumed - back <= crate::kv::partition::PROBE_INTERVAL,
            "read again {:?} after the link returned",
            resumed - back
        );
        shutdown.cancel();
        task.await.unwrap();
    }
}
