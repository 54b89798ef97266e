//! The forwarder of an outbox: fetches one stored message at a time, hands it on as a
//! request, acknowledges it once answered; tells a partition from an absent subscriber.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::header::HeaderMap;
use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;

use trellis_lattice::kv::partition;

use super::{OutboxCounters, FORWARD_TIMEOUT, MESSAGE_ID, TOPIC};

/// Hands an outbox's messages on in order.
pub(super) struct Forwarder {
    pub(super) client: async_nats::Client,
    pub(super) stream: stream::Stream,
    pub(super) id_prefix: String,
    pub(super) hub_probe: Option<String>,
    pub(super) patience_ms: Arc<AtomicU64>,
    pub(super) counters: Arc<OutboxCounters>,
}

impl Forwarder {
    /// Whether the hub is out of reach (so a message nobody answers waits for it).
    async fn partitioned(&self) -> bool {
        // Only an answer says the hub is there: a slow or failed probe keeps the message.
        partition::cut_off(&self.client, self.hub_probe.as_deref()).await
    }

    pub(super) async fn run(self, stop: CancellationToken) {
        let mut backoff =
            trellis_lattice::kv::Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        // The last sequence handed on (or found acknowledged): a jump past it is what the
        // budget dropped.
        let mut last: Option<u64> = None;
        loop {
            let run = self.forward(&mut last, &mut backoff, &stop);
            tokio::select! {
                _ = stop.cancelled() => return,
                result = run => if let Err(err) = result {
                    tracing::warn!(%err, "outbox forwarder restarting");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }

    async fn forward(
        &self,
        last: &mut Option<u64>,
        backoff: &mut trellis_lattice::kv::Backoff,
        stop: &CancellationToken,
    ) -> Result<(), String> {
        let consumer: consumer::PullConsumer = self
            .stream
            .get_or_create_consumer(
                "forwarder",
                consumer::pull::Config {
                    durable_name: Some("forwarder".into()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    // One at a time: the order is kept, and a message is not given to the
                    // forwarder again while it is still trying to hand it on.
                    max_ack_pending: 1,
                    // A message taken by a forwarder that stopped mid-send (a power cut)
                    // comes back soon after its restart.
                    ack_wait: FORWARD_TIMEOUT * 2,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        if last.is_none() {
            let info = self.stream.cached_info();
            // Everything before the first stored message that was never acknowledged is
            // gone; what the consumer acknowledged was forwarded.
            *last = Some(info.state.first_sequence.saturating_sub(1));
        }
        // The message nobody subscribes to, and since when.
        let mut unanswered: Option<(u64, tokio::time::Instant)> = None;
        loop {
            // One message per fetch, asked for afresh after every attempt: what the budget
            // dropped meanwhile is never handed out, and the oldest kept message is next.
            let mut batch = consumer
                .fetch()
                .max_messages(1)
                .expires(Duration::from_secs(5))
                .messages()
                .await
                .map_err(|e| e.to_string())?;
            let next = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                next = batch.next() => next,
            };
            let Some(next) = next else {
                continue;
            };
            let msg = next.map_err(|e| e.to_string())?;
            let seq = msg
                .info()
                .map(|i| i.stream_sequence)
                .map_err(|e| e.to_string())?;
            if let Some(prev) = *last {
                if seq > prev + 1 {
                    let lost = seq - prev - 1;
                    self.counters.dropped.fetch_add(lost, Ordering::Relaxed);
                    tracing::warn!(lost, "outbox full: the oldest messages were dropped before they could be forwarded");
                }
            }
            *last = Some(seq.saturating_sub(1).max(last.unwrap_or(0)));
            let Some((topic, mut headers)) = msg.headers.as_ref().and_then(split_topic) else {
                // Not one of ours (published by hand on the outbox's subject): skipped.
                msg.ack().await.map_err(|e| e.to_string())?;
                *last = Some(seq);
                continue;
            };
            if crate::check_publish(&topic).is_err() {
                // Stored by hand with a topic no message can have: it would never go.
                msg.ack().await.map_err(|e| e.to_string())?;
                *last = Some(seq);
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("outbox: a stored message names no valid topic; dropped");
                continue;
            }
            headers.insert(MESSAGE_ID, format!("{}.{seq}", self.id_prefix).as_str());
            let request = async_nats::Request::new()
                .headers(headers)
                .payload(msg.payload.clone())
                .timeout(Some(FORWARD_TIMEOUT));
            let sent = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                sent = self.client.send_request(topic.clone(), request) => sent,
            };
            match sent {
                Ok(_) => {
                    unanswered = None;
                    msg.ack().await.map_err(|e| e.to_string())?;
                    *last = Some(seq);
                    self.counters.forwarded.fetch_add(1, Ordering::Relaxed);
                    backoff.reset();
                }
                Err(e)
                    if e.kind() == async_nats::RequestErrorKind::NoResponders
                        && !self.partitioned().await =>
                {
                    // The hub is there and nobody subscribes to the topic: wait a while (a
                    // receiver restarting), then let it go as core NATS would.
                    let since = *unanswered.get_or_insert((seq, tokio::time::Instant::now()));
                    let patience = Duration::from_millis(self.patience_ms.load(Ordering::Relaxed));
                    if since.0 == seq && since.1.elapsed() >= patience {
                        msg.ack().await.map_err(|e| e.to_string())?;
                        *last = Some(seq);
                        unanswered = None;
                        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            topic,
                            ?patience,
                            "outbox: nobody subscribes to the topic; message dropped"
                        );
                        continue;
                    }
                    if since.0 != seq {
                        unanswered = Some((seq, tokio::time::Instant::now()));
                    }
                    let _ = msg.ack_with(jetstream::AckKind::Nak(None)).await;
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
                Err(e) => {
                    // Cut off from the hub (no responders), or no answer in time: the
                    // message goes back, to be fetched again once the hub answers (or after
                    // a pause when there is no hub to ask). Time cut off does not count
                    // towards the patience for an absent subscriber.
                    unanswered = None;
                    tracing::debug!(err = %e, topic, "outbox: not handed on yet");
                    let _ = msg.ack_with(jetstream::AckKind::Nak(None)).await;
                    if let Some(probe) = self.hub_probe.as_deref() {
                        if self.partitioned().await {
                            // Fetched again as soon as the hub answers.
                            if !partition::hub_back(&self.client, probe, stop).await {
                                return Ok(());
                            }
                            continue;
                        }
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            }
        }
    }
}

/// A stored message's topic and the headers to forward with it.
fn split_topic(stored: &HeaderMap) -> Option<(String, HeaderMap)> {
    let mut topic = None;
    let mut headers = HeaderMap::new();
    for (name, values) in stored.iter() {
        for value in values {
            if AsRef::<str>::as_ref(name) == TOPIC {
                topic = Some(value.as_str().to_string());
            } else {
                headers.append(name.clone(), value.clone());
            }
        }
    }
    Some((topic?, headers))
}
