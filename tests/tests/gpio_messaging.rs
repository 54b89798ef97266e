//! A GPIO component's messages across a transport swap: `button`'s producer link relinked
//! from MQTT to the lattice's NATS and back while edges are driven; every press arrives
//! exactly once, on one side or the other.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt as _;
use trellis_lattice::LatticeClient;
use trellis_provider_mqtt::testing::{Mosquitto, Probe};
use trellis_tests::messaging::{config, messaging_link};
use trellis_tests::{init_logging, scale_request, start_provider_on, HostProcess, NatsServer};

async fn press(client: &LatticeClient, host: &str) {
    client.gpio_set(host, "sim0", 0, true).await.expect("rise");
    client.gpio_set(host, "sim0", 0, false).await.expect("fall");
}

#[tokio::test]
async fn relinking_button_between_mqtt_and_nats_while_pressed_loses_and_repeats_nothing() {
    init_logging();
    let broker = Mosquitto::start().await;
    let nats = NatsServer::start().await;
    let host = HostProcess::start(&nats.url(), "swap", &[], &["--gpio-sim", "sim0=8"]).await;
    let client = nats.client("swap").await;
    let raw = nats.connect().await;
    let topic = "trellis/demo/button";
    client
        .put_config("broker", config(&[("url", &broker.url())]))
        .await
        .expect("config");
    client
        .put_config(
            "button-cfg",
            config(&[("pins", "button:sim0:0"), ("topic", topic)]),
        )
        .await
        .expect("config");
    start_provider_on(&client, host.id(), "mqtt", "builtin://mqtt").await;
    start_provider_on(&client, host.id(), "msg", "builtin://messaging-nats").await;
    let link = messaging_link("button", "mqtt", "producer", &[], &["broker"]);
    client.put_link(link.clone()).await.expect("link");
    let mut req = scale_request("button", "button", 1);
    req.config = vec!["button-cfg".into()];
    client
        .scale_component(host.id(), &req)
        .await
        .expect("button");

    let mut mqtt = Probe::connect(&broker, "listener").await;
    mqtt.subscribe(topic).await;
    let mut on_nats = raw.subscribe(topic).await.expect("subscribe");
    raw.flush().await.expect("flush");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no press arrived");
        press(&client, host.id()).await;
        if mqtt.next_within(Duration::from_millis(500)).await.is_some() {
            break;
        }
    }
    while mqtt.next_within(Duration::from_millis(300)).await.is_some() {}

    const N: usize = 60;
    for i in 0..N {
        if i == N / 3 {
            client
                .retarget_link(link.key(), "msg", Some(vec!["broker".into()]))
                .await
                .expect("to NATS");
        }
        if i == 2 * N / 3 {
            client
                .retarget_link(link.key(), "mqtt", Some(vec!["broker".into()]))
                .await
                .expect("back to MQTT");
        }
        press(&client, host.id()).await;
    }
    // Each press carries its edge's timestamp: one message per edge, none twice.
    let mut stamps = BTreeSet::new();
    let (mut via_mqtt, mut via_nats) = (0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while via_mqtt + via_nats < N && tokio::time::Instant::now() < deadline {
        tokio::select! {
            Some(m) = mqtt.next_within(Duration::from_millis(200)) => {
                via_mqtt += 1;
                let props = m.properties.expect("properties");
                let stamp = props.user_properties.iter().find(|(k, _)| k == "edge-ns").map(|(_, v)| v.clone()).expect("edge-ns");
                assert!(stamps.insert(stamp), "a press arrived twice");
            }
            Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), on_nats.next()) => {
                via_nats += 1;
                let stamp = m.headers.as_ref().and_then(|h| h.get("edge-ns")).map(|v| v.as_str().to_string()).expect("edge-ns");
                assert!(stamps.insert(stamp), "a press arrived twice");
            }
            else => {}
        }
    }
    assert_eq!(
        stamps.len(),
        N,
        "every press arrived (mqtt {via_mqtt}, nats {via_nats})"
    );
    assert!(
        via_mqtt > 0 && via_nats > 0,
        "both transports carried presses: mqtt {via_mqtt}, nats {via_nats}"
    );
    assert!(
        mqtt.next_within(Duration::from_millis(500)).await.is_none(),
        "nothing more"
    );
}

/// Two boards, each with its LED component and its MQTT provider: a message drives every
/// board's LED, because each provider delivers to the instance on its own host.
#[tokio::test]
async fn each_boards_provider_drives_its_own_boards_led() {
    use trellis_provider_mqtt::testing::{Properties, Qos};
    init_logging();
    let broker = Mosquitto::start().await;
    let nats = NatsServer::start().await;
    let boards = [
        HostProcess::start(&nats.url(), "boards", &[], &["--gpio-sim", "sim0=8"]).await,
        HostProcess::start(&nats.url(), "boards", &[], &["--gpio-sim", "sim0=8"]).await,
    ];
    let client = nats.client("boards").await;
    client
        .put_config("broker", config(&[("url", &broker.url())]))
        .await
        .expect("config");
    client
        .put_config("topics", config(&[("subscriptions", "trellis/demo/led")]))
        .await
        .expect("config");
    client
        .put_config("led-pins", config(&[("pins", "led:sim0:1")]))
        .await
        .expect("config");
    for board in &boards {
        start_provider_on(&client, board.id(), "mqtt", "builtin://mqtt").await;
        let mut req = scale_request("led", "led", 1);
        req.config = vec!["led-pins".into()];
        client.scale_component(board.id(), &req).await.expect("led");
    }
    client
        .put_link(messaging_link(
            "mqtt",
            "led",
            "incoming-handler",
            &["broker", "topics"],
            &[],
        ))
        .await
        .expect("link");
    let mut device = Probe::connect(&broker, "switch").await;
    // Warm up: repeat until both boards follow, so both subscriptions are live.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the boards never followed"
        );
        device
            .publish(
                "trellis/demo/led",
                "off",
                Qos::AtLeastOnce,
                Properties::default(),
            )
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut off = 0;
        for board in &boards {
            let list = client.gpio_list(board.id()).await.expect("list");
            // Held as an output by the LED component: it has handled a message.
            off += usize::from(list.chips[0].lines[1].used_by.is_some());
        }
        if off == boards.len() {
            break;
        }
    }
    for round in 0..6 {
        let on = round % 2 == 0;
        let text = if on { "on" } else { "off" };
        // One message per round: each board's provider must deliver it to its own LED.
        device
            .publish(
                "trellis/demo/led",
                text,
                Qos::AtLeastOnce,
                Properties::default(),
            )
            .await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut levels = Vec::new();
            for board in &boards {
                levels.push(
                    client
                        .gpio_get(board.id(), "sim0", 1)
                        .await
                        .expect("get")
                        .value,
                );
            }
            if levels.iter().all(|v| *v == u8::from(on)) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {round}: boards show {levels:?} after `{text}`"
            );
        }
    }
}
