//! Bounded export queues drained by tokio tasks. The SDK's own batch processors run on
//! threads of their own and keep their drop count to themselves; these count what they drop
//! (a full queue while the collector is slow or away) so it can be reported as a metric.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

/// Queue size, batch size and delay of one signal, from the standard variables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchConfig {
    pub capacity: usize,
    pub batch: usize,
    pub delay: Duration,
}

impl BatchConfig {
    /// `prefix` is `OTEL_BSP` (spans) or `OTEL_BLRP` (logs); defaults per the specification.
    pub fn from_env(prefix: &str, default_delay_ms: u64) -> Self {
        Self::from_lookup(prefix, default_delay_ms, |k| std::env::var(k).ok())
    }

    fn from_lookup(
        prefix: &str,
        default_delay_ms: u64,
        get: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let num = |name: &str, default: u64, max: u64| {
            get(&format!("{prefix}_{name}"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|v| *v > 0)
                .unwrap_or(default)
                .min(max)
        };
        let capacity = num("MAX_QUEUE_SIZE", 2048, 1 << 20) as usize;
        let batch = (num("MAX_EXPORT_BATCH_SIZE", 512, 1 << 16) as usize).min(capacity);
        let delay = Duration::from_millis(num("SCHEDULE_DELAY", default_delay_ms, 3_600_000));
        Self {
            capacity,
            batch,
            delay,
        }
    }
}

/// Counts of one queue, shared with the metric that reports them.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
}

/// What the pushing side and the draining task share. Items wait in a plain vector: a push
/// takes an uncontended lock and wakes the task only when a batch is full (a channel would
/// wake it for every span, a task poll per span on the request path); otherwise the task
/// wakes on its schedule.
#[derive(Debug)]
struct Shared<T> {
    items: Mutex<Vec<T>>,
    full: Notify,
    counts: Arc<Counts>,
    capacity: usize,
    batch: usize,
}

impl<T> Shared<T> {
    fn items(&self) -> MutexGuard<'_, Vec<T>> {
        // A panic while holding the lock leaves a vector, still a valid one.
        self.items
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Everything queued. While items flow it leaves room for a full batch, so pushes do
    /// not regrow (and copy) the vector on the request path; an idle queue holds no memory.
    fn take(&self) -> Vec<T> {
        let mut items = self.items();
        let room = if items.is_empty() { 0 } else { self.batch };
        std::mem::replace(&mut *items, Vec::with_capacity(room))
    }
}

/// The sending half: never blocks, drops (and counts) when full.
#[derive(Debug)]
pub(crate) struct Queue<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The task draining a queue; stop it with [`Drain::stop`].
pub(crate) struct Drain {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl<T: Send + 'static> Queue<T> {
    /// Starts the draining task: `export` gets batches of at most `config.batch`, as soon as
    /// a batch is full and otherwise every `config.delay`.
    pub fn start<F, Fut>(config: BatchConfig, mut export: F) -> (Self, Drain)
    where
        F: FnMut(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send,
    {
        let shared = Arc::new(Shared {
            items: Mutex::new(Vec::new()),
            full: Notify::new(),
            counts: Arc::new(Counts::default()),
            capacity: config.capacity,
            batch: config.batch,
        });
        let (stop, mut stopped) = oneshot::channel();
        let task_shared = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            loop {
                let stopping = tokio::select! {
                    biased;
                    _ = &mut stopped => true,
                    _ = task_shared.full.notified() => false,
                    _ = tokio::time::sleep(config.delay) => false,
                };
                for chunk in split(task_shared.take(), config.batch) {
                    let n = chunk.len() as u64;
                    if let Err(err) = export(chunk).await {
                        task_shared.counts.failed.fetch_add(n, Ordering::Relaxed);
                        tracing::debug!(target: "trellis_telemetry", %err, items = n, "export failed");
                    }
                }
                if stopping {
                    return;
                }
            }
        });
        (Self { shared }, Drain { stop, task })
    }

    pub fn push(&self, item: T) {
        let mut items = self.shared.items();
        if items.len() >= self.shared.capacity {
            drop(items);
            self.shared.counts.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        items.push(item);
        let full = items.len() == self.shared.batch;
        drop(items);
        if full {
            self.shared.full.notify_one();
        }
    }

    pub fn counts(&self) -> Arc<Counts> {
        Arc::clone(&self.shared.counts)
    }
}

/// Batches of at most `size`, in order, each item moved once.
fn split<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    if items.len() <= size {
        return if items.is_empty() {
            Vec::new()
        } else {
            vec![items]
        };
    }
    let mut out = Vec::with_capacity(items.len().div_ceil(size));
    let mut rest = items.into_iter();
    loop {
        let chunk: Vec<T> = rest.by_ref().take(size).collect();
        if chunk.is_empty() {
            return out;
        }
        out.push(chunk);
    }
}

impl Drain {
    /// Exports what is queued, waiting at most `deadline`.
    pub async fn stop(self, deadline: Duration) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(deadline, &mut task).await.is_err() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn config_from_variables() {
        let env = |k: &str| match k {
            "OTEL_BSP_SCHEDULE_DELAY" => Some("250".to_string()),
            "OTEL_BSP_MAX_QUEUE_SIZE" => Some("100".to_string()),
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE" => Some("junk".to_string()),
            _ => None,
        };
        let c = BatchConfig::from_lookup("OTEL_BSP", 5000, env);
        assert_eq!(c.delay, Duration::from_millis(250));
        assert_eq!(c.capacity, 100);
        assert_eq!(c.batch, 100, "a batch is never larger than the queue");
        let d = BatchConfig::from_lookup("OTEL_BLRP", 1000, |_| None);
        assert_eq!(
            (d.capacity, d.batch, d.delay),
            (2048, 512, Duration::from_secs(1))
        );
    }

    #[tokio::test]
    async fn full_queue_drops_and_counts_then_drains_on_stop() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (gate_tx, gate_rx) = tokio::sync::watch::channel(false);
        let config = BatchConfig {
            capacity: 4,
            batch: 2,
            delay: Duration::from_secs(3600),
        };
        let sink = seen.clone();
        let (queue, drain) = Queue::start(config, move |batch: Vec<u32>| {
            let sink = sink.clone();
            let mut gate = gate_rx.clone();
            async move {
                // The first export blocks like an unreachable collector until released.
                let _ = gate.wait_for(|open| *open).await;
                sink.lock().unwrap().extend(batch);
                Ok(())
            }
        });
        for i in 0..2 {
            queue.push(i);
        }
        // Wait until the task took the first batch (queue empty again), then overfill.
        while !queue.shared.items().is_empty() {
            tokio::task::yield_now().await;
        }
        for i in 2..10 {
            queue.push(i);
        }
        assert_eq!(queue.counts().dropped.load(Ordering::Relaxed), 4);
        gate_tx.send(true).unwrap();
        drain.stop(Duration::from_secs(30)).await;
        let mut got = seen.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, vec![0, 1, 2, 3, 4, 5]);
    }

    /// A batch that never fills leaves on the schedule, and pushes below a full batch wake
    /// nothing before then.
    #[tokio::test(start_paused = true)]
    async fn a_partial_batch_leaves_on_schedule() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let config = BatchConfig {
            capacity: 100,
            batch: 10,
            delay: Duration::from_secs(5),
        };
        let sink = seen.clone();
        let (queue, drain) = Queue::start(config, move |batch: Vec<u32>| {
            sink.lock().unwrap().push(batch);
            async { Ok(()) }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        for i in 0..3 {
            queue.push(i);
        }
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(seen.lock().unwrap().is_empty(), "exported before the delay");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(*seen.lock().unwrap(), vec![vec![0, 1, 2]]);
        // A full batch leaves at once.
        for i in 0..10 {
            queue.push(i);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(seen.lock().unwrap().len(), 2);
        drain.stop(Duration::from_secs(30)).await;
    }

    #[test]
    fn take_keeps_room_for_a_batch_only_while_items_flow() {
        let shared = Shared {
            items: Mutex::new(vec![1u32, 2]),
            full: Notify::new(),
            counts: Arc::new(Counts::default()),
            capacity: 100,
            batch: 10,
        };
        assert_eq!(shared.take(), vec![1, 2]);
        assert!(shared.items().capacity() >= 10);
        assert!(shared.take().is_empty());
        assert_eq!(
            shared.items().capacity(),
            0,
            "an idle queue holds no memory"
        );
    }

    #[test]
    fn splits_into_batches() {
        assert_eq!(
            split(vec![1, 2, 3, 4, 5], 2),
            vec![vec![1, 2], vec![3, 4], vec![5]]
        );
        assert_eq!(split(vec![1, 2], 2), vec![vec![1, 2]]);
        assert_eq!(split(vec![1, 2, 3, 4], 2), vec![vec![1, 2], vec![3, 4]]);
        assert!(split(Vec::<u8>::new(), 2).is_empty());
    }
}
