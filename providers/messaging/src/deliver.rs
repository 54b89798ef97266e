//! Delivery of received messages to one subscribed component: each message one call of its
//! `incoming-handler.handle`, one topic's messages one after the other and in order,
//! different topics side by side, and never more than the link's `queue` waiting (the rest
//! dropped and counted).

use std::hash::{Hash as _, Hasher as _};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use trellis_lattice::rpc::{CallContext, CallError, CallReader, RemoteErrorKind};
use trellis_lattice::trace::TraceContext;
use trellis_provider::Caller;
use trellis_telemetry::{context, spans};

use crate::bindings::trellis::messaging::incoming_handler;
use crate::bindings::Message;
use crate::config;
use crate::observe;

/// Tells the broker a message was handled (MQTT QoS 1 `PUBACK`). Not called for a message
/// that was dropped or could not reach the component, so the broker delivers it again.
pub type Ack = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// One received message on its way to the component.
pub struct Incoming {
    pub message: Message,
    /// The subscription's filter it matched (names the span; `factory/+/temp`).
    pub filter: Arc<str>,
    /// The sender's trace, where the transport carries one.
    pub trace: Option<TraceContext>,
    pub ack: Option<Ack>,
}

/// What happened to the messages of one link.
#[derive(Debug, Default)]
pub struct Counters {
    /// Handled by the component without error.
    pub delivered: AtomicU64,
    /// Handled with an error, or the component trapped: logged, acknowledged.
    pub failed: AtomicU64,
    /// Dropped because the queue was full or the link went away.
    pub dropped: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.delivered.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        )
    }
}

/// Who receives: the component, over which link, from which provider.
#[derive(Clone)]
pub struct Target {
    pub caller: Caller,
    pub provider_id: Arc<str>,
    pub link_name: Arc<str>,
    /// `mqtt`, `nats`: `messaging.system` on spans and metrics.
    pub system: &'static str,
}

impl Target {
    pub fn component(&self) -> &str {
        self.caller.target()
    }
}

/// The receiving end a transport hands messages to; cheap to clone.
#[derive(Clone)]
pub struct Sink {
    lanes: Arc<[mpsc::UnboundedSender<Incoming>]>,
    /// Messages queued or being handled, over every lane; at most `limit`.
    waiting: Arc<AtomicUsize>,
    limit: usize,
    counters: Arc<Counters>,
    target: Target,
}

impl Sink {
    /// Starts the delivery tasks of one link; they end when `stop` fires or every clone of
    /// the sink is gone.
    pub fn start(target: Target, delivery: &config::Delivery, stop: CancellationToken) -> Self {
        let lanes = delivery.concurrency.max(1);
        let limit = delivery.queue.max(1);
        let counters = Arc::new(Counters::default());
        let waiting = Arc::new(AtomicUsize::new(0));
        let senders: Vec<_> = (0..lanes)
            .map(|_| {
                // Unbounded by count here: `waiting` bounds what is not acknowledged, the
                // broker's receive maximum what is.
                let (tx, rx) = mpsc::unbounded_channel();
                let lane_state = Lane {
                    target: target.clone(),
                    counters: counters.clone(),
                    waiting: waiting.clone(),
                };
                tokio::spawn(lane(rx, lane_state, stop.clone()));
                tx
            })
            .collect();
        Self {
            lanes: senders.into(),
            waiting,
            limit,
            counters,
            target,
        }
    }

    /// Queues a message for the component without waiting: `false` when it was dropped
    /// (queue full, delivery stopped).
    pub fn offer(&self, incoming: Incoming) -> bool {
        // A message the broker waits an acknowledgement for is always taken: the broker
        // bounds those itself (the subscriber's receive maximum is the queue; what a resumed
        // session resends is bounded by the previous connection's), and dropping one would
        // leave it unacknowledged until the next reconnect.
        let must_take = incoming.ack.is_some();
        self.admit(incoming, must_take)
    }

    /// [`Self::offer`] within the queue's limit even for a message with an acknowledgement:
    /// for senders that send again what was not acknowledged, and that nothing else bounds
    /// (any NATS client can send a request).
    pub fn offer_bounded(&self, incoming: Incoming) -> bool {
        self.admit(incoming, false)
    }

    fn admit(&self, incoming: Incoming, acknowledged: bool) -> bool {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        incoming.message.topic.hash(&mut h);
        let lane = (h.finish() % self.lanes.len() as u64) as usize;
        let admitted = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (acknowledged || n < self.limit).then_some(n + 1)
            })
            .is_ok();
        let queued = admitted && self.lanes[lane].send(incoming).is_ok();
        if admitted && !queued {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
        }
        match queued {
            true => true,
            false => {
                let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                observe::dropped(&self.target);
                // Every drop is counted; the log says so at the first and then every 1000th.
                if dropped == 1 || dropped % 1000 == 0 {
                    tracing::warn!(
                        component_id = self.target.component(),
                        link_name = &*self.target.link_name,
                        dropped,
                        "messages dropped: the component's queue is full"
                    );
                }
                false
            }
        }
    }

    /// How many messages may wait for the component (the link's `queue`).
    pub fn capacity(&self) -> usize {
        self.limit
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    pub fn target(&self) -> &Target {
        &self.target
    }
}

struct Lane {
    target: Target,
    counters: Arc<Counters>,
    waiting: Arc<AtomicUsize>,
}

async fn lane(mut rx: mpsc::UnboundedReceiver<Incoming>, lane: Lane, stop: CancellationToken) {
    loop {
        let incoming = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            next = rx.recv() => match next {
                Some(i) => i,
                None => break,
            },
        };
        let ack = deliver(&lane.target, &lane.counters, incoming, &stop).await;
        // Room first, then the acknowledgement: the broker sends the next message as soon
        // as it has the ack, and that message must find the room.
        lane.waiting.fetch_sub(1, Ordering::AcqRel);
        if let Some(ack) = ack {
            ack().await;
        }
    }
    // What still waits is dropped unacknowledged: a broker that acknowledges sends it again.
    rx.close();
    while rx.try_recv().is_ok() {
        lane.counters.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// How one attempt ended.
enum Outcome {
    Handled,
    /// The component ran and said no (or trapped): not sent again.
    Rejected(String),
    /// The call never reached a component (none running, NATS away): tried again.
    Undeliverable(String),
}

fn outcome(result: anyhow::Result<Result<(), crate::bindings::Error>>) -> Outcome {
    match result {
        Ok(Ok(())) => Outcome::Handled,
        Ok(Err(e)) => Outcome::Rejected(format!("the handler returned {e:?}")),
        Err(err) => {
            let failure = err
                .downcast_ref::<CallError>()
                .or_else(|| err.chain().find_map(|e| CallReader::failure(e)));
            match failure {
                Some(
                    CallError::NoResponders { .. }
                    | CallError::Partitioned { .. }
                    | CallError::Transport { .. },
                ) => Outcome::Undeliverable(format!("{err:#}")),
                Some(CallError::Remote(r)) if r.kind == RemoteErrorKind::Unavailable => {
                    Outcome::Undeliverable(format!("{err:#}"))
                }
                _ => Outcome::Rejected(format!("{err:#}")),
            }
        }
    }
}

const FIRST_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_secs(2);

/// Delivers one message; returns its acknowledgement when it was handled (or rejected),
/// `None` when it never reached the component.
async fn deliver(
    target: &Target,
    counters: &Counters,
    incoming: Incoming,
    stop: &CancellationToken,
) -> Option<Ack> {
    let Incoming {
        message,
        filter,
        trace,
        ack,
    } = incoming;
    let span = if trellis_telemetry::sampling::decide(trace.as_ref()) {
        spans::message_process(
            target.system,
            &filter,
            &message.topic,
            &target.provider_id,
            target.component(),
        )
    } else {
        tracing::Span::none()
    };
    let trace = if span.is_disabled() {
        trace.map(|t| t.child())
    } else {
        Some(context::continue_remote(&span, trace))
    };
    let cx = CallContext {
        trace,
        source: Some(target.provider_id.to_string()),
        link: Some(target.link_name.to_string()),
        depth: 0,
        budget: None,
    };
    let mut wait = FIRST_RETRY;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let result = incoming_handler::handle(&target.caller, cx.clone(), &message)
            .instrument(span.clone())
            .await;
        match outcome(result) {
            Outcome::Handled => {
                counters.delivered.fetch_add(1, Ordering::Relaxed);
                observe::processed(target, None);
                break;
            }
            Outcome::Rejected(reason) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                observe::processed(target, Some("handler"));
                spans::fail(&span, "handler", &reason);
                span.in_scope(|| {
                    tracing::warn!(
                        component_id = target.component(),
                        link_name = &*target.link_name,
                        topic = message.topic,
                        %reason,
                        "a message was not handled"
                    )
                });
                break;
            }
            Outcome::Undeliverable(reason) => {
                if attempts == 1 || attempts % 20 == 0 {
                    tracing::warn!(
                        component_id = target.component(),
                        link_name = &*target.link_name,
                        topic = message.topic,
                        attempts,
                        %reason,
                        "cannot reach the component; trying again"
                    );
                }
                tokio::select! {
                    () = stop.cancelled() => {
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                        return None;
                    }
                    () = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(MAX_RETRY);
            }
        }
    }
    ack
}
