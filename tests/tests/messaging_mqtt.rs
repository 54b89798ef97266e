//! The MQTT provider (`builtin://mqtt`) with the `relay` component and a real `mosquitto`: a
//! message published on `in/...` comes back on `out/...` through a subscription link, the
//! component and its producer link; sessions, restarts and relinking while messages flow.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt as _;
use trellis_lattice::LatticeClient;
use trellis_provider_mqtt::testing::{Mosquitto, Probe, Properties, Qos};
use trellis_tests::messaging::{health, messaging_link, relay_through};
use trellis_tests::{init_logging, wait_for, HostProcess, NatsServer};

async fn publish(probe: &mut Probe, topic: &str, payload: &str) {
    probe
        .publish(
            topic,
            payload.to_string(),
            Qos::AtLeastOnce,
            Properties::default(),
        )
        .await;
}

/// Publishes probes on `in/probe/temp` until one comes back on `out/probe/temp`.
async fn until_relayed(probe: &mut Probe) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay never answered"
        );
        publish(probe, "in/probe/temp", "probe").await;
        if let Some(m) = probe.next_within(Duration::from_millis(500)).await {
            if &m.topic[..] == b"out/probe/temp" {
                break;
            }
        }
    }
    while probe
        .next_within(Duration::from_millis(300))
        .await
        .is_some()
    {}
}

struct Setup {
    broker: Mosquitto,
    _nats: NatsServer,
    host: HostProcess,
    client: LatticeClient,
    raw: async_nats::Client,
    probe: Probe,
}

async fn setup(broker: Mosquitto, subscriptions: &str) -> Setup {
    init_logging();
    let nats = NatsServer::start().await;
    let host = HostProcess::start(&nats.url(), "mqtt", &[], &[]).await;
    let client = nats.client("mqtt").await;
    let raw = nats.connect().await;
    let url = broker.url();
    relay_through(
        &client,
        host.id(),
        "mqtt",
        "builtin://mqtt",
        &[("url", &url)],
        subscriptions,
    )
    .await;
    let mut probe = Probe::connect(&broker, "probe").await;
    probe.subscribe("out/#").await;
    until_relayed(&mut probe).await;
    Setup {
        broker,
        _nats: nats,
        host,
        client,
        raw,
        probe,
    }
}

#[tokio::test]
async fn messages_go_through_the_component_by_wildcard_in_order_with_their_properties() {
    let mut s = setup(Mosquitto::start().await, "in/+/temp,alerts/#").await;
    for i in 0..30 {
        let props = Properties {
            content_type: Some("text/plain".into()),
            user_properties: vec![("seq".into(), i.to_string())],
            ..Default::default()
        };
        s.probe
            .publish(
                "in/line1/temp",
                format!("reading {i}"),
                Qos::AtLeastOnce,
                props,
            )
            .await;
    }
    for i in 0..30 {
        let m = s.probe.next().await;
        assert_eq!(&m.topic[..], b"out/line1/temp");
        assert_eq!(m.payload, format!("reading {i}").as_bytes(), "in order");
        let props = m.properties.expect("properties carried");
        assert_eq!(props.content_type.as_deref(), Some("text/plain"));
        assert!(props
            .user_properties
            .contains(&("seq".into(), i.to_string())));
    }
    publish(&mut s.probe, "alerts/fire/hall2", "fire").await;
    let m = s.probe.next().await;
    assert_eq!(
        (&m.topic[..], &m.payload[..]),
        (&b"out/alerts/fire/hall2"[..], &b"fire"[..])
    );
    // Not subscribed: nothing comes back for it, and the next subscribed one does.
    publish(&mut s.probe, "in/line1/humidity", "ignored").await;
    publish(&mut s.probe, "in/line2/temp", "marker").await;
    let m = s.probe.next().await;
    assert_eq!(
        (&m.topic[..], &m.payload[..]),
        (&b"out/line2/temp"[..], &b"marker"[..])
    );
}

#[tokio::test]
async fn a_message_the_component_traps_on_does_not_stop_the_next() {
    let mut s = setup(Mosquitto::start().await, "in/#").await;
    for payload in ["trap", "fail", "after"] {
        publish(&mut s.probe, "in/t", payload).await;
    }
    let m = s.probe.next().await;
    assert_eq!(&m.payload[..], b"after", "only the last one is relayed");
    let report = wait_for(
        "the provider counts the failures",
        Duration::from_secs(20),
        || async {
            let m = health(&s.raw, "mqtt", s.host.id(), "mqtt").await?.message?;
            m.contains("2 failed").then_some(m)
        },
    )
    .await;
    assert!(report.contains("0 dropped"), "{report}");
}

#[tokio::test]
async fn qos1_messages_wait_in_the_session_across_a_provider_stop_and_a_broker_restart() {
    let mut s = setup(Mosquitto::start().await, "in/#").await;
    s.client
        .stop_provider(s.host.id(), "mqtt")
        .await
        .expect("provider stops");
    // The provider is away; its durable session collects what arrives meanwhile.
    let mut device = Probe::connect(&s.broker, "device").await;
    for i in 0..20 {
        publish(&mut device, "in/q/temp", &i.to_string()).await;
    }
    drop(device);
    s.broker.restart().await;
    let mut probe = Probe::connect(&s.broker, "probe-2").await;
    probe.subscribe("out/#").await;
    s.client
        .start_provider(
            &trellis_lattice::Placement::Host(s.host.id().to_string()),
            &trellis_lattice::control::StartProvider {
                provider_id: "mqtt".into(),
                image: "builtin://mqtt".into(),
                config: vec![],
                annotations: Default::default(),
            },
        )
        .await
        .expect("provider starts again");
    for i in 0..20 {
        let m = probe.next().await;
        assert_eq!(&m.topic[..], b"out/q/temp");
        assert_eq!(
            m.payload,
            i.to_string().as_bytes(),
            "every message, in order"
        );
    }
}

#[tokio::test]
async fn a_broker_that_forgot_the_session_gets_the_subscriptions_again() {
    let mut s = setup(Mosquitto::start_volatile().await, "in/#").await;
    s.broker.restart().await;
    let mut probe = Probe::connect(&s.broker, "probe-2").await;
    probe.subscribe("out/#").await;
    until_relayed(&mut probe).await;
}

/// Relinks the relay's producer from MQTT to the lattice's NATS and back while QoS 1
/// messages flow in: every one comes out, on one side or the other.
#[tokio::test]
async fn relinking_the_producer_between_mqtt_and_nats_loses_no_message() {
    let mut s = setup(Mosquitto::start().await, "in/#").await;
    s.client
        .start_provider(
            &trellis_lattice::Placement::Host(s.host.id().to_string()),
            &trellis_lattice::control::StartProvider {
                provider_id: "msg-nats".into(),
                image: "builtin://messaging-nats".into(),
                config: vec![],
                annotations: Default::default(),
            },
        )
        .await
        .expect("nats provider starts");
    let mut nats_out = s.raw.subscribe("out/swap").await.expect("subscribe");
    s.raw.flush().await.expect("flush");
    let key = messaging_link("relay", "mqtt", "producer", &[], &["relay-broker"]).key();

    let mut device = Probe::connect(&s.broker, "device").await;
    const N: usize = 300;
    for i in 0..N {
        publish(&mut device, "in/swap", &i.to_string()).await;
        if i == N / 3 {
            s.client
                .retarget_link(key.clone(), "msg-nats", Some(vec!["relay-broker".into()]))
                .await
                .expect("to nats: the same named config (its mqtt:// url is not for NATS)");
        }
        if i == 2 * N / 3 {
            s.client
                .retarget_link(key.clone(), "mqtt", Some(vec!["relay-broker".into()]))
                .await
                .expect("back to mqtt");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut seen = BTreeSet::new();
    let (mut via_mqtt, mut via_nats) = (0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < N && tokio::time::Instant::now() < deadline {
        tokio::select! {
            Some(m) = s.probe.next_within(Duration::from_millis(200)) => {
                via_mqtt += 1;
                seen.insert(String::from_utf8_lossy(&m.payload).parse::<usize>().expect("a number"));
            }
            Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), nats_out.next()) => {
                via_nats += 1;
                seen.insert(String::from_utf8_lossy(&m.payload).parse::<usize>().expect("a number"));
            }
            else => {}
        }
    }
    let missing: Vec<usize> = (0..N).filter(|i| !seen.contains(i)).collect();
    assert!(
        missing.is_empty(),
        "lost {missing:?} (mqtt {via_mqtt}, nats {via_nats})"
    );
    assert!(
        via_nats > 0 && via_mqtt > 0,
        "both providers carried messages: mqtt {via_mqtt}, nats {via_nats}"
    );
}

/// A burst of QoS 1 messages far beyond the link's queue: the broker holds what the
/// provider cannot (its receive maximum is the queue) and every message comes out once.
#[tokio::test]
async fn a_qos1_burst_beyond_the_queue_loses_nothing() {
    let mut s = setup(Mosquitto::start().await, "in/#").await;
    s.client
        .put_config(
            "relay-subs",
            trellis_tests::messaging::config(&[("subscriptions", "in/#"), ("queue", "4")]),
        )
        .await
        .expect("a small queue");
    // The subscription restarts with the new config: wait until it answers again.
    until_relayed(&mut s.probe).await;
    const N: usize = 500;
    let mut device = Probe::connect(&s.broker, "device").await;
    for i in 0..N {
        device
            .publish_nowait(&format!("in/b{}", i % 5), i.to_string(), Qos::AtLeastOnce)
            .await;
    }
    let mut seen = BTreeSet::new();
    while seen.len() < N {
        let m = s.probe.next().await;
        seen.insert(String::from_utf8_lossy(&m.payload).to_string());
    }
    let report = health(&s.raw, "mqtt", s.host.id(), "mqtt")
        .await
        .and_then(|h| h.message)
        .unwrap_or_default();
    assert!(report.contains(" 0 dropped"), "{report}");
}

/// A subscription whose topics change keeps its durable session but drops the filters it no
/// longer has.
#[tokio::test]
async fn changing_the_subscriptions_drops_the_old_filters_from_the_session() {
    let mut s = setup(Mosquitto::start().await, "in/#").await;
    s.client
        .put_config(
            "relay-subs",
            trellis_tests::messaging::config(&[("subscriptions", "in/kept/#")]),
        )
        .await
        .expect("narrower subscriptions");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new filter never answered"
        );
        publish(&mut s.probe, "in/kept/x", "k").await;
        if let Some(m) = s.probe.next_within(Duration::from_millis(500)).await {
            if &m.topic[..] == b"out/kept/x" {
                break;
            }
        }
    }
    while s
        .probe
        .next_within(Duration::from_millis(300))
        .await
        .is_some()
    {}
    publish(&mut s.probe, "in/gone/x", "no longer").await;
    publish(&mut s.probe, "in/kept/x", "marker").await;
    let m = s.probe.next().await;
    assert_eq!(
        (&m.topic[..], &m.payload[..]),
        (&b"out/kept/x"[..], &b"marker"[..]),
        "the old filter delivers nothing"
    );
}
