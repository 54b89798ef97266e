//! One connection to a broker that publishes for every link naming it. A send returns once
//! the broker has the message (QoS 0: written to the connection; QoS 1: `PUBACK`), fails at
//! once while the broker is away, and never queues without bound: rumqttc keeps what it
//! could not write for the next connection, so nothing is handed to it while disconnected.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, Request};
use rumqttc::Outgoing;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;
use trellis_provider_messaging::Error;

use crate::backoff::Backoff;

/// How long a send may wait for the broker (the first connection included).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Publishes handed to the connection and not yet written.
const REQUEST_CAPACITY: usize = 1024;

type Reply = oneshot::Sender<Result<(), Error>>;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Link {
    Connecting,
    Up,
    Down(String),
}

#[derive(Default)]
struct Waiting {
    /// Replies for publishes handed to rumqttc, in the order it writes them.
    queued: VecDeque<(QoS, Reply)>,
    /// QoS 1 publishes written, by packet id, until their `PUBACK`.
    inflight: HashMap<u16, Reply>,
    /// Publishes rumqttc resends from the previous session: their replies were failed when
    /// it ended, so their writes pair with nothing.
    resending: usize,
}

impl Waiting {
    fn fail_all(&mut self, error: &Error) {
        for (_, reply) in self.queued.drain(..) {
            let _ = reply.send(Err(error.clone()));
        }
        for (_, reply) in self.inflight.drain() {
            let _ = reply.send(Err(error.clone()));
        }
    }
}

pub struct Publisher {
    client: AsyncClient,
    broker: String,
    max_payload: usize,
    waiting: Arc<Mutex<Waiting>>,
    link: watch::Receiver<Link>,
    stop: CancellationToken,
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A message as MQTT sends it.
pub struct Outbound {
    pub topic: String,
    pub payload: Bytes,
    pub properties: PublishProperties,
    pub qos: QoS,
    pub retain: bool,
}

impl Publisher {
    pub fn start(options: rumqttc::v5::MqttOptions, broker: String, max_payload: usize) -> Self {
        let (client, events) = AsyncClient::new(options, REQUEST_CAPACITY);
        let waiting = Arc::new(Mutex::new(Waiting::default()));
        let (tx, link) = watch::channel(Link::Connecting);
        let stop = CancellationToken::new();
        tokio::spawn(drive(
            events,
            client.clone(),
            waiting.clone(),
            tx,
            broker.clone(),
            stop.clone(),
        ));
        Self {
            client,
            broker,
            max_payload,
            waiting,
            link,
            stop,
        }
    }

    pub async fn send(&self, message: Outbound) -> Result<(), Error> {
        if message.payload.len() > self.max_payload {
            return Err(Error::MessageTooLarge(self.max_payload as u64));
        }
        let mut link = self.link.clone();
        let state = tokio::time::timeout(SEND_TIMEOUT, link.wait_for(|l| *l != Link::Connecting))
            .await
            .map_err(|_| {
                Error::Connection(format!("cannot connect to {} (timed out)", self.broker))
            })?
            .map_err(|_| Error::Connection(format!("the connection to {} is closed", self.broker)))?
            .clone();
        if let Link::Down(why) = state {
            return Err(Error::Connection(format!(
                "not connected to {}: {why}",
                self.broker
            )));
        }
        let (reply, answer) = oneshot::channel();
        {
            // Pairing a reply with its write relies on both queues having the same order:
            // push and hand over under one lock.
            let mut waiting = self
                .waiting
                .lock()
                .map_err(|_| Error::Other("publisher state lost".into()))?;
            waiting.queued.push_back((message.qos, reply));
            let handed = self.client.try_publish_with_properties(
                message.topic,
                message.qos,
                message.retain,
                message.payload,
                message.properties,
            );
            if let Err(e) = handed {
                waiting.queued.pop_back();
                return Err(match e {
                    rumqttc::v5::ClientError::TryRequest(_) => {
                        Error::Other(format!("too many messages waiting for {}", self.broker))
                    }
                    other => Error::Other(format!("cannot publish: {other}")),
                });
            }
        }
        match tokio::time::timeout(SEND_TIMEOUT, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Connection(format!(
                "the connection to {} closed",
                self.broker
            ))),
            Err(_) => Err(Error::Timeout),
        }
    }
}

fn puback(reason: PubAckReason) -> Result<(), Error> {
    match reason {
        PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Ok(()),
        PubAckReason::NotAuthorized => Err(Error::PermissionDenied(
            "the broker refused the publish: not authorized".into(),
        )),
        PubAckReason::TopicNameInvalid => Err(Error::Other("the broker refused the topic".into())),
        other => Err(Error::Other(format!(
            "the broker refused the publish: {other:?}"
        ))),
    }
}

async fn drive(
    mut events: EventLoop,
    client: AsyncClient,
    waiting: Arc<Mutex<Waiting>>,
    link: watch::Sender<Link>,
    broker: String,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::default();
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => break,
            e = events.poll() => e,
        };
        let pause = {
            let Ok(mut w) = waiting.lock() else { break };
            handle(&mut w, event, &events, &link, &broker, &mut backoff)
        };
        if let Some(pause) = pause {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
    let _ = client.try_disconnect();
}

/// Applies one event; returns how long to wait before polling again after a failure.
fn handle(
    w: &mut Waiting,
    event: Result<Event, rumqttc::v5::ConnectionError>,
    events: &EventLoop,
    link: &watch::Sender<Link>,
    broker: &str,
    backoff: &mut Backoff,
) -> Option<Duration> {
    {
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff.reset();
                w.resending = events
                    .pending
                    .iter()
                    .filter(|r| matches!(r, Request::Publish(_)))
                    .count();
                link.send_replace(Link::Up);
                tracing::debug!(broker, "publisher connected");
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                if w.resending > 0 {
                    w.resending -= 1;
                } else if let Some((qos, reply)) = w.queued.pop_front() {
                    if qos == QoS::AtMostOnce {
                        let _ = reply.send(Ok(()));
                    } else {
                        w.inflight.insert(pkid, reply);
                    }
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                if let Some(reply) = w.inflight.remove(&ack.pkid) {
                    let _ = reply.send(puback(ack.reason));
                }
            }
            Ok(_) => {}
            Err(e) => {
                let why = e.to_string();
                // What was in flight may or may not have arrived: its senders hear so now,
                // not after a timeout.
                w.fail_all(&Error::Connection(format!(
                    "lost the connection to {broker}: {why}"
                )));
                let was_up = *link.borrow() == Link::Up;
                link.send_replace(Link::Down(why.clone()));
                if was_up {
                    tracing::warn!(broker, error = %why, "publisher disconnected; reconnecting");
                } else {
                    tracing::debug!(broker, error = %why, "publisher cannot connect; trying again");
                }
                return Some(backoff.pause());
            }
        }
    }
    None
}
