//! The MQTT provider's producer against a real `mosquitto`, called as a linked component's
//! host calls it.

use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::PublishProperties;
use rumqttc::v5::mqttbytes::QoS;
use trellis_provider::testing::{free_port, LinkedClient, RunningProvider, TestLattice};
use trellis_provider_messaging::testing::{send, text, Error, Message};
use trellis_provider_mqtt::testing::{Mosquitto, Probe};

const MQTT: &str = "mqtt";

async fn start(lattice: &TestLattice, broker: &[(&str, &str)]) -> (RunningProvider, LinkedClient) {
    lattice.put_config("broker", broker).await;
    lattice
        .put_link(
            "app",
            "default",
            MQTT,
            ("trellis", "messaging"),
            &["producer"],
            &["broker"],
        )
        .await;
    let provider = lattice
        .start_provider(MQTT, &[], trellis_provider_mqtt::run)
        .await;
    let client = lattice.client(MQTT, Some("app"), Some("default")).await;
    (provider, client)
}

/// `send` with a deadline that only stops a hung test.
async fn send_now(client: &LinkedClient, message: &Message) -> Result<(), Error> {
    tokio::time::timeout(Duration::from_secs(60), send(client, (), message))
        .await
        .expect("send returns")
        .expect("the call itself succeeds")
}

#[tokio::test]
async fn sends_reach_the_broker_with_content_type_metadata_and_retain() {
    let broker = Mosquitto::start().await;
    let lattice = TestLattice::start().await;
    let url = broker.url();
    let (_p, client) = start(&lattice, &[("url", &url), ("retain", "true")]).await;
    let mut probe = Probe::connect(&broker, "probe").await;
    probe.subscribe("factory/#").await;

    let message = Message {
        content_type: Some("application/json".into()),
        metadata: vec![("line".into(), "1".into())],
        ..text("factory/line1/temp", "{\"c\":21.5}")
    };
    send_now(&client, &message).await.expect("sent");
    let got = probe.next().await;
    assert_eq!(&got.topic[..], b"factory/line1/temp");
    assert_eq!(&got.payload[..], b"{\"c\":21.5}");
    assert_eq!(got.qos, QoS::AtLeastOnce, "QoS 1 unless the link says 0");
    let props = got.properties.expect("MQTT 5 properties");
    assert_eq!(props.content_type.as_deref(), Some("application/json"));
    assert!(props.user_properties.contains(&("line".into(), "1".into())));

    // Retained: a subscriber that comes later still gets it, marked retained.
    let mut late = Probe::connect(&broker, "late").await;
    late.subscribe("factory/line1/temp").await;
    let got = late.next().await;
    assert!(got.retain, "the link's retain=true reached the broker");
}

#[tokio::test]
async fn a_broker_that_is_down_fails_sends_at_once_and_a_restarted_one_is_used_again() {
    let mut broker = Mosquitto::start().await;
    let lattice = TestLattice::start().await;
    let url = broker.url();
    let (_p, client) = start(&lattice, &[("url", &url)]).await;
    send_now(&client, &text("a/b", "up"))
        .await
        .expect("sent while up");

    broker.stop();
    // The connection's loss is noticed at once (the socket closes); from then on every send
    // fails with the reason instead of waiting.
    let err = loop {
        match send_now(&client, &text("a/b", "down")).await {
            Err(e) => break e,
            Ok(()) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    match err {
        Error::Connection(m) => assert!(m.contains(&format!("127.0.0.1:{}", broker.port())), "{m}"),
        other => panic!("expected a connection error, got {other:?}"),
    }

    broker.restart().await;
    let mut probe = Probe::connect(&broker, "probe").await;
    probe.subscribe("a/#").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while send_now(&client, &text("a/b", "again")).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the provider never reconnected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(&probe.next().await.payload[..], b"again");
}

#[tokio::test]
async fn a_broker_nobody_runs_is_a_connection_error_naming_it() {
    let lattice = TestLattice::start().await;
    let port = free_port();
    let url = format!("mqtt://127.0.0.1:{port}");
    let (_p, client) = start(&lattice, &[("url", &url)]).await;
    match send_now(&client, &text("a/b", "x")).await {
        Err(Error::Connection(m)) => assert!(m.contains(&format!("127.0.0.1:{port}")), "{m}"),
        other => panic!("expected a connection error, got {other:?}"),
    }
}

#[tokio::test]
async fn payloads_over_the_limit_bad_topics_and_bad_configs_are_refused() {
    let broker = Mosquitto::start().await;
    let lattice = TestLattice::start().await;
    let url = broker.url();
    let (_p, client) = start(
        &lattice,
        &[("url", &url), ("max-payload", "16"), ("qos", "0")],
    )
    .await;
    let mut probe = Probe::connect(&broker, "probe").await;
    probe.subscribe("#").await;

    assert!(matches!(
        send_now(&client, &text("big", "seventeen bytes!!")).await,
        Err(Error::MessageTooLarge(16))
    ));

    send_now(&client, &text("big", "sixteen bytes!!!"))
        .await
        .expect("at the limit");
    let got = probe.next().await;
    assert_eq!(&got.payload[..], b"sixteen bytes!!!");
    assert_eq!(got.qos, QoS::AtMostOnce, "qos=0 from the link");

    assert!(matches!(
        send_now(&client, &text("a/+", "x")).await,
        Err(Error::Other(_))
    ));
    assert!(matches!(
        send_now(&client, &text("", "x")).await,
        Err(Error::Other(_))
    ));

    lattice
        .put_config("broker", &[("url", "http://nope")])
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match send_now(&client, &text("a", "x")).await {
            Err(Error::Other(m)) => {
                assert!(m.contains("url"), "{m}");
                break;
            }
            _ => assert!(
                tokio::time::Instant::now() < deadline,
                "the config change never arrived"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = probe
        .publish("x", "y", QoS::AtMostOnce, PublishProperties::default())
        .await;
}

#[tokio::test]
async fn mqtts_with_the_links_ca_file_and_a_clear_error_with_the_wrong_one() {
    let broker = Mosquitto::start_tls().await;
    let lattice = TestLattice::start().await;
    let url = broker.url();
    assert!(url.starts_with("mqtts://"), "{url}");
    let ca = broker.ca_file().display().to_string();
    let (_p, client) = start(&lattice, &[("url", &url), ("ca-file", &ca)]).await;
    send_now(&client, &text("secure/a", "over TLS"))
        .await
        .expect("sent over TLS with the link's CA");

    // Another broker's CA: the handshake fails, and the send says so instead of hanging.
    let other = Mosquitto::start_tls().await;
    let wrong = other.ca_file().display().to_string();
    lattice
        .put_config("broker", &[("url", &url), ("ca-file", &wrong)])
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match send_now(&client, &text("secure/a", "x")).await {
            Err(Error::Connection(m)) => {
                assert!(
                    m.to_lowercase().contains("tls") || m.contains("certificate"),
                    "{m}"
                );
                break;
            }
            _ => assert!(
                tokio::time::Instant::now() < deadline,
                "the new CA never applied"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// QoS 1 messages a component cannot take yet wait at the broker (its receive maximum is
/// the link's queue): none is dropped, however many arrive.
#[tokio::test]
async fn qos1_messages_beyond_the_queue_wait_at_the_broker_instead_of_being_dropped() {
    let broker = Mosquitto::start().await;
    let lattice = TestLattice::start().await;
    let url = broker.url();
    lattice
        .put_config(
            "sub",
            &[("url", &url), ("subscriptions", "in/#"), ("queue", "10")],
        )
        .await;
    // The subscribed component runs nowhere: every delivery waits and holds its lane.
    let link = trellis_lattice::link::Link {
        source_id: MQTT.into(),
        target_id: "absent".into(),
        name: "default".into(),
        wit_namespace: "trellis".into(),
        wit_package: "messaging".into(),
        interfaces: vec!["incoming-handler".into()],
        source_config: vec!["sub".into()],
        target_config: vec![],
    };
    lattice.store.put_link(&link).await.expect("link");
    let _p = lattice
        .start_provider(MQTT, &[], trellis_provider_mqtt::run)
        .await;
    let mut probe = Probe::connect(&broker, "device").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..200 {
        probe
            .publish(
                &format!("in/t{}", i % 7),
                i.to_string(),
                QoS::AtLeastOnce,
                PublishProperties::default(),
            )
            .await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let health = lattice
        .health(trellis_provider::testing::TEST_HOST, MQTT)
        .await
        .expect("health");
    let message = health.message.unwrap_or_default();
    assert!(message.contains("0 dropped"), "{message}");
}
