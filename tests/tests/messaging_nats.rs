//! The NATS messaging provider (`builtin://messaging-nats`) with the `relay` component: a
//! message published on `in.X` comes back on `out.X` through a subscription link, the
//! component and its producer link.

use std::time::Duration;

use futures::StreamExt as _;
use trellis_tests::messaging::{health, relay_through};
use trellis_tests::{init_logging, wait_for, HostProcess, NatsServer};

async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(Duration::from_secs(20), sub.next())
        .await
        .expect("a relayed message within 20 s")
        .expect("subscription open")
}

/// Publishes probes on `in.probe` until one comes back: the subscription is live.
async fn until_relayed(nats: &async_nats::Client, out: &mut async_nats::Subscriber) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay never answered"
        );
        nats.publish("in.probe", "probe".into())
            .await
            .expect("publish");
        if let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(500), out.next()).await {
            if msg.subject.as_str() == "out.probe" {
                break;
            }
        }
    }
    // Later probes may still be on their way.
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), out.next()).await {}
}

struct Setup {
    _nats: NatsServer,
    host: HostProcess,
    client: trellis_lattice::LatticeClient,
    raw: async_nats::Client,
    out: async_nats::Subscriber,
}

/// A host running `relay` behind `builtin://messaging-nats`, subscribed to `in.>`, and a
/// subscriber on `out.>` that has seen it answer.
async fn setup() -> Setup {
    init_logging();
    let nats = NatsServer::start().await;
    let host = HostProcess::start(&nats.url(), "msg", &[], &[]).await;
    let client = nats.client("msg").await;
    let raw = nats.connect().await;
    let mut out = raw.subscribe("out.>").await.expect("subscribe");
    relay_through(
        &client,
        host.id(),
        "msg-nats",
        "builtin://messaging-nats",
        &[],
        "in.>",
    )
    .await;
    until_relayed(&raw, &mut out).await;
    Setup {
        _nats: nats,
        host,
        client,
        raw,
        out,
    }
}

#[tokio::test]
async fn messages_go_through_the_component_in_order_with_their_headers() {
    let mut s = setup().await;
    let (raw, out) = (&s.raw, &mut s.out);

    for i in 0..50 {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Content-Type", "text/plain");
        headers.insert("x-seq", i.to_string().as_str());
        raw.publish_with_headers("in.line1.temp", headers, format!("reading {i}").into())
            .await
            .expect("publish");
    }
    for i in 0..50 {
        let msg = next(out).await;
        assert_eq!(msg.subject.as_str(), "out.line1.temp");
        assert_eq!(msg.payload, format!("reading {i}").as_bytes(), "in order");
        let h = msg.headers.expect("headers carried");
        assert_eq!(
            h.get("Content-Type").map(|v| v.as_str()),
            Some("text/plain")
        );
        assert_eq!(
            h.get("x-seq").map(|v| v.as_str()),
            Some(i.to_string().as_str())
        );
    }
}

#[tokio::test]
async fn a_message_the_component_traps_on_does_not_stop_the_next() {
    let mut s = setup().await;
    let (raw, out, host) = (&s.raw, &mut s.out, &s.host);

    for payload in ["trap", "fail", "after"] {
        raw.publish("in.t", payload.into()).await.expect("publish");
    }
    let msg = next(out).await;
    assert_eq!(
        msg.payload,
        "after".as_bytes(),
        "only the last one is relayed"
    );
    let health = wait_for(
        "the provider counts the failures",
        Duration::from_secs(20),
        || async {
            let h = health(raw, "msg", host.id(), "msg-nats").await?;
            let m = h.message.unwrap_or_default();
            m.contains("2 failed").then_some(m)
        },
    )
    .await;
    assert!(health.contains("0 dropped"), "{health}");
}

#[tokio::test]
async fn deleting_the_subscription_link_stops_delivery_and_relinking_resumes_it() {
    let mut s = setup().await;
    let (client, raw, out) = (&s.client, &s.raw, &mut s.out);

    let sub = trellis_tests::messaging::messaging_link(
        "msg-nats",
        "relay",
        "incoming-handler",
        &["relay-broker", "relay-subs"],
        &[],
    );
    client.delete_link(sub.key()).await.expect("delete");
    // The provider hears of the deletion through its watch; probes stop coming back.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "delivery never stopped"
        );
        raw.publish("in.gone", "x".into()).await.expect("publish");
        if tokio::time::timeout(Duration::from_millis(500), out.next())
            .await
            .is_err()
        {
            break;
        }
    }

    raw.publish("in.gone", "while unlinked".into())
        .await
        .expect("publish");
    assert!(
        tokio::time::timeout(Duration::from_secs(1), out.next())
            .await
            .is_err(),
        "nothing is delivered without the link"
    );
    client.put_link(sub).await.expect("relink");
    until_relayed(raw, out).await;
}
