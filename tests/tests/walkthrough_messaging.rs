//! The README's walkthrough, continued: `relay` wired to MQTT by a named config and two
//! links, a message from `mosquitto_pub` coming back on `out/...`, then the producer link
//! retargeted to the NATS messaging provider with the same config.

mod walkthrough_support;

use std::time::Duration;

use futures::StreamExt as _;
use trellis_provider_mqtt::testing::{Mosquitto, Probe};
use trellis_tests::{init_logging, require_program, HostProcess, NatsServer};
use walkthrough_support::{cli, readme_component};

#[tokio::test]
async fn relay_answers_over_mqtt_then_over_nats_after_a_retarget() {
    init_logging();
    let broker = Mosquitto::start().await;
    let nats = NatsServer::start().await;
    let _host = HostProcess::start(&nats.url(), "default", &[], &[]).await;
    let shell = cli(&nats.url(), "default");
    let url = format!("url={}", broker.url());
    let relay = readme_component("relay");
    for args in [
        &["config", "put", "plant-mqtt", &url][..],
        &["config", "put", "relay-topics", "subscriptions=in/#"],
        &["provider", "start", "builtin://mqtt", "--id", "mqtt"],
        &["component", "start", &relay, "--id", "relay"],
        &[
            "link",
            "put",
            "relay",
            "mqtt",
            "trellis:messaging",
            "--interface",
            "producer",
            "--target-config",
            "plant-mqtt",
        ],
        &[
            "link",
            "put",
            "mqtt",
            "relay",
            "trellis:messaging",
            "--interface",
            "incoming-handler",
            "--source-config",
            "plant-mqtt",
            "--source-config",
            "relay-topics",
        ],
    ] {
        shell.run(args).await.ok();
    }
    let mut sub = Probe::connect(&broker, "mosquitto-sub").await;
    sub.subscribe("out/#").await;
    let mosquitto_pub = require_program("mosquitto_pub", "apt-get install mosquitto-clients");
    let publish = |topic: &'static str, message: &'static str| {
        let status = std::process::Command::new(&mosquitto_pub)
            .args([
                "-p",
                &broker.port().to_string(),
                "-q",
                "1",
                "-t",
                topic,
                "-m",
                message,
            ])
            .status()
            .expect("mosquitto_pub runs");
        assert!(status.success(), "mosquitto_pub {topic}");
    };
    // The subscription starts when the provider sees the link: publish until it answers.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let got = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "relay never answered over MQTT"
        );
        publish("in/line1/temp", "21.5");
        if let Some(m) = sub.next_within(Duration::from_millis(500)).await {
            break m;
        }
    };
    assert_eq!(
        (&got.topic[..], &got.payload[..]),
        (&b"out/line1/temp"[..], &b"21.5"[..])
    );

    let raw = nats.connect().await;
    let mut on_nats = raw.subscribe("out/line1/temp").await.expect("subscribe");
    raw.flush().await.expect("flush");
    shell
        .run(&[
            "provider",
            "start",
            "builtin://messaging-nats",
            "--id",
            "nats-msg",
        ])
        .await
        .ok();
    shell
        .run(&[
            "link",
            "retarget",
            "relay",
            "trellis:messaging",
            "nats-msg",
            "--target-config",
            "plant-mqtt",
        ])
        .await
        .ok();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "relay never answered over NATS"
        );
        publish("in/line1/temp", "22.0");
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(500), on_nats.next()).await
        {
            assert_eq!(&m.payload[..], b"22.0");
            break;
        }
    }
}
