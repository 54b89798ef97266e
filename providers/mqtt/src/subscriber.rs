//! One subscription link's own connection: a durable session (`clean_start=false`, a stable
//! client id, the link's `session-expiry`), QoS 1 messages acknowledged only after the
//! component handled them, and the broker never sending more unacknowledged messages than
//! the link's queue holds (`receive_maximum`). Reconnects with back-off and subscribes
//! again whenever the broker lost the session.

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, RetainForwardRule, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::Outgoing;
use tokio_util::sync::CancellationToken;
use trellis_lattice::trace::{TraceContext, TRACEPARENT};
use trellis_provider_messaging::{Incoming, Message, Sink};

use crate::backoff::Backoff;
use crate::topic;

pub struct Subscription {
    pub name: String,
    pub broker: String,
    pub filters: Vec<String>,
    pub qos: QoS,
    pub sink: Sink,
    pub stop: CancellationToken,
    pub unsubscribe: CancellationToken,
    /// Filters the link's previous subscription left in the durable session.
    pub forget: Vec<String>,
}

/// Requests the subscriber makes itself (subscribe, acks, unsubscribe): few.
const REQUEST_CAPACITY: usize = 256;

pub fn spawn(mut options: MqttOptions, session_expiry: u32, sub: Subscription) {
    options.set_clean_start(false);
    options.set_session_expiry_interval(Some(session_expiry));
    options.set_manual_acks(true);
    options.set_receive_maximum(Some(sub.sink.capacity().clamp(1, u16::MAX as usize) as u16));
    tokio::spawn(run(options, sub));
}

fn filters(sub: &Subscription) -> Vec<Filter> {
    sub.filters
        .iter()
        .map(|f| {
            let mut filter = Filter::new(f.clone(), sub.qos);
            // Resubscribing after a reconnect must not deliver retained messages again.
            filter.retain_forward_rule = RetainForwardRule::OnNewSubscribe;
            filter
        })
        .collect()
}

async fn run(options: MqttOptions, sub: Subscription) {
    let (client, mut events) = AsyncClient::new(options, REQUEST_CAPACITY);
    let mut backoff = Backoff::default();
    let mut first = true;
    let mut connected = false;
    loop {
        let event = tokio::select! {
            () = sub.stop.cancelled() => break,
            e = events.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff.reset();
                connected = true;
                // A session the broker kept still holds the subscriptions; the first
                // connection subscribes anyway, since the link's topics may have changed.
                if first && ack.session_present {
                    for f in &sub.forget {
                        let _ = client.try_unsubscribe(f.clone());
                    }
                }
                if first || !ack.session_present {
                    if let Err(e) = client.try_subscribe_many(filters(&sub)) {
                        tracing::warn!(subscription = sub.name, error = %e, "cannot subscribe");
                    }
                }
                tracing::info!(
                    subscription = sub.name,
                    broker = sub.broker,
                    session_present = ack.session_present,
                    "subscriber connected"
                );
                first = false;
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                for (code, filter) in ack.return_codes.iter().zip(&sub.filters) {
                    if !matches!(code, SubscribeReasonCode::Success(_)) {
                        tracing::warn!(subscription = sub.name, filter, reason = ?code, "the broker refused a subscription");
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => receive(&client, &sub, p),
            Ok(_) => {}
            Err(e) => {
                if connected {
                    tracing::warn!(subscription = sub.name, broker = sub.broker, error = %e, "subscriber disconnected; reconnecting");
                } else {
                    tracing::debug!(subscription = sub.name, broker = sub.broker, error = %e, "subscriber cannot connect; trying again");
                }
                connected = false;
                tokio::select! {
                    () = sub.stop.cancelled() => break,
                    () = tokio::time::sleep(backoff.pause()) => {}
                }
            }
        }
    }
    if connected && sub.unsubscribe.is_cancelled() {
        leave(&client, &mut events, &sub).await;
    } else {
        let _ = client.try_disconnect();
    }
}

/// The link went away or changed: unsubscribe (so the durable session stops collecting
/// messages for it) and disconnect, within a short bound.
async fn leave(client: &AsyncClient, events: &mut rumqttc::v5::EventLoop, sub: &Subscription) {
    for f in &sub.filters {
        let _ = client.try_unsubscribe(f.clone());
    }
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        loop {
            match events.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
}

fn receive(client: &AsyncClient, sub: &Subscription, p: Publish) {
    let Ok(topic) = std::str::from_utf8(&p.topic).map(str::to_string) else {
        tracing::warn!(
            subscription = sub.name,
            "a message with a topic that is not UTF-8 was skipped"
        );
        let _ = client.try_ack(&p);
        return;
    };
    let mut content_type = None;
    let mut metadata = Vec::new();
    let mut trace = None;
    if let Some(props) = &p.properties {
        content_type = props.content_type.clone();
        for (k, v) in &props.user_properties {
            if k.eq_ignore_ascii_case(TRACEPARENT) {
                trace = TraceContext::parse(v);
            } else {
                metadata.push((k.clone(), v.clone()));
            }
        }
    }
    // A retained message was stored long ago: its trace is not this delivery's.
    if p.retain {
        trace = None;
    }
    let filter = sub
        .filters
        .iter()
        .find(|f| topic::matches(f, &topic))
        .or(sub.filters.first())
        .map(|f| f.as_str().into())
        .unwrap_or_else(|| topic.as_str().into());
    let ack: Option<trellis_provider_messaging::Ack> = (p.qos != QoS::AtMostOnce).then(|| {
        let client = client.clone();
        let mut handle = Publish::new("", p.qos, Bytes::new(), None);
        handle.pkid = p.pkid;
        Box::new(move || {
            Box::pin(async move {
                let _ = client.ack(&handle).await;
            }) as futures::future::BoxFuture<'static, ()>
        }) as trellis_provider_messaging::Ack
    });
    sub.sink.offer(Incoming {
        message: Message {
            topic,
            data: p.payload,
            content_type,
            metadata,
        },
        filter,
        trace,
        ack,
    });
}
