//! GPIO on simulated chips through the whole host: labels, `trellis gpio`, `wasi:gpio`
//! served to components with grants, edges delivered as calls, grants moved while edges
//! are driven.

use std::time::Duration;

use futures::StreamExt as _;
use trellis_lattice::LatticeClient;
use trellis_tests::gpio::message_json;
use trellis_tests::messaging::{config, messaging_link};
use trellis_tests::{
    init_logging, scale_request, start_provider_on, wait_for, Cli, HostProcess, NatsServer,
};

const PATIENCE: Duration = Duration::from_secs(30);

async fn start(client: &LatticeClient, host: &str, id: &str, component: &str, configs: &[&str]) {
    let mut req = scale_request(id, component, 1);
    req.config = configs.iter().map(|s| s.to_string()).collect();
    client
        .scale_component(host, &req)
        .await
        .unwrap_or_else(|e| panic!("{id} starts: {e}"));
}

/// `led`'s `handle` called directly: `{"ok": null}` or `{"err": ...}`.
async fn switch(client: &LatticeClient, id: &str, text: &str) -> serde_json::Value {
    client
        .call(
            id,
            "trellis:messaging/incoming-handler@0.1.0#handle",
            &[message_json("t", text)],
        )
        .await
        .unwrap_or_else(|e| panic!("calling {id}: {e}"))
}

#[tokio::test]
async fn simulated_chips_are_labelled_listed_read_and_driven() {
    init_logging();
    let nats = NatsServer::start().await;
    let host = HostProcess::start(
        &nats.url(),
        "gpio",
        &[],
        &["--gpio-sim", "sim0=8", "--gpio-sim", "sim1=4"],
    )
    .await;
    let plain = HostProcess::start(&nats.url(), "gpio", &[], &[]).await;
    let client = nats.client("gpio").await;
    let hosts = client.hosts().await.expect("hosts");
    let labels = |id: &str| {
        hosts
            .iter()
            .find(|h| h.id == id)
            .map(|h| h.labels.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        labels(host.id()).get("trellis.gpio").map(String::as_str),
        Some("present")
    );
    assert_eq!(
        labels(host.id())
            .get("trellis.gpio.chips")
            .map(String::as_str),
        Some("sim0,sim1")
    );
    assert!(
        !labels(plain.id()).contains_key("trellis.gpio"),
        "no chips, no label"
    );

    let cli = Cli::new(&nats.url(), "gpio");
    assert_eq!(
        cli.run(&["gpio", "get", host.id(), "sim0:0"])
            .await
            .ok()
            .stdout
            .trim(),
        "0"
    );
    assert_eq!(
        cli.run(&["gpio", "set", host.id(), "sim0:0", "1"])
            .await
            .ok()
            .stdout
            .trim(),
        "1"
    );
    assert_eq!(
        cli.run(&["gpio", "get", host.id(), "sim0:0"])
            .await
            .ok()
            .stdout
            .trim(),
        "1"
    );
    let json = cli
        .run(&["gpio", "get", host.id(), "sim0:0", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(
        (
            json["chip"].as_str(),
            json["line"].as_u64(),
            json["value"].as_u64()
        ),
        (Some("sim0"), Some(0), Some(1))
    );
    let list = cli
        .run(&["gpio", "list", host.id(), "-o", "json"])
        .await
        .ok()
        .json();
    let chips = list["chips"].as_array().expect("chips");
    assert_eq!(chips.len(), 2);
    assert_eq!(chips[0]["lines"].as_array().map(Vec::len), Some(8));
    assert_eq!(chips[0]["lines"][0]["value"].as_u64(), Some(1));
    let table = cli.run(&["gpio", "list", host.id()]).await.ok().stdout;
    assert!(
        table.contains("sim0 (simulated)") && table.contains("sim1 (simulated)"),
        "{table}"
    );

    // Refused at the edge of the protocol, each with its exit code.
    let out = cli.run(&["gpio", "set", host.id(), "sim0:99", "1"]).await;
    assert_eq!(out.code, Some(3), "no such line: {out:?}");
    let out = cli.run(&["gpio", "set", host.id(), "nope:0", "1"]).await;
    assert_eq!(out.code, Some(3), "no such chip: {out:?}");
    let out = cli.run(&["gpio", "set", host.id(), "sim0:0", "7"]).await;
    assert_eq!(out.code, Some(2), "not a level: {out:?}");
    let out = cli.run(&["gpio", "list", plain.id()]).await.ok();
    assert!(out.stdout.contains("no GPIO chips"), "{out:?}");
    // A raw request naming a path instead of a chip is refused before any handler runs.
    let raw = nats.connect().await;
    let subject = trellis_lattice::Subjects::new("gpio").gpio_set(host.id());
    let reply = raw
        .request(
            subject,
            r#"{"chip":"../../dev/mem","line":0,"value":1}"#.into(),
        )
        .await
        .expect("answered");
    let text = String::from_utf8_lossy(&reply.payload);
    assert!(
        text.contains("invalid") && text.contains("chip name"),
        "{text}"
    );
}

#[tokio::test]
async fn components_use_granted_pins_only_and_one_pin_serves_one_component() {
    init_logging();
    let nats = NatsServer::start().await;
    let host = HostProcess::start(&nats.url(), "gpio", &[], &["--gpio-sim", "sim0=8"]).await;
    let client = nats.client("gpio").await;
    let cli = Cli::new(&nats.url(), "gpio");
    client
        .put_config("led-pins", config(&[("pins", "led:sim0:1")]))
        .await
        .expect("config");
    start(&client, host.id(), "led", "led", &["led-pins"]).await;

    assert_eq!(
        switch(&client, "led", "on").await,
        serde_json::json!({"ok": null})
    );
    assert_eq!(
        cli.run(&["gpio", "get", host.id(), "sim0:1"])
            .await
            .ok()
            .stdout
            .trim(),
        "1"
    );
    let list = cli
        .run(&["gpio", "list", host.id(), "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(
        list["chips"][0]["lines"][1]["used_by"].as_str(),
        Some("component `led`")
    );
    assert_eq!(
        list["chips"][0]["lines"][1]["direction"].as_str(),
        Some("out")
    );
    assert_eq!(
        switch(&client, "led", "off").await,
        serde_json::json!({"ok": null})
    );
    assert_eq!(
        cli.run(&["gpio", "get", host.id(), "sim0:1"])
            .await
            .ok()
            .stdout
            .trim(),
        "0"
    );

    // The same pin granted to a second component: already in use.
    start(&client, host.id(), "led2", "led", &["led-pins"]).await;
    let err = switch(&client, "led2", "on").await.to_string();
    assert!(
        err.contains("already-in-use") || err.contains("AlreadyInUse"),
        "{err}"
    );

    // A line of this host that was not granted, and a label nobody knows.
    client
        .put_config(
            "sneaky",
            config(&[("pins", "led:sim0:1"), ("pin", "sim0:2")]),
        )
        .await
        .expect("config");
    start(&client, host.id(), "sneaky", "led", &["sneaky"]).await;
    let err = switch(&client, "sneaky", "on").await.to_string();
    assert!(
        err.contains("pin-not-allowed") || err.contains("PinNotAllowed"),
        "{err}"
    );
    client
        .put_config("lost", config(&[("pin", "nowhere")]))
        .await
        .expect("config");
    start(&client, host.id(), "lost", "led", &["lost"]).await;
    let err = switch(&client, "lost", "on").await.to_string();
    assert!(
        err.contains("undefined-pin-label") || err.contains("UndefinedPinLabel"),
        "{err}"
    );
    assert_eq!(
        cli.run(&["gpio", "get", host.id(), "sim0:2"])
            .await
            .ok()
            .stdout
            .trim(),
        "0",
        "untouched"
    );

    // Stopping the holder frees the pin for the other.
    let mut stop = scale_request("led", "led", 0);
    stop.image = String::new();
    client
        .scale_component(host.id(), &stop)
        .await
        .expect("stop");
    wait_for("led2 gets the pin", PATIENCE, || async {
        (switch(&client, "led2", "on").await == serde_json::json!({"ok": null})).then_some(())
    })
    .await;
    assert_eq!(
        cli.run(&["gpio", "get", host.id(), "sim0:1"])
            .await
            .ok()
            .stdout
            .trim(),
        "1"
    );
}

/// The button component on `host`, sending through the NATS messaging provider to subject
/// `topic`.
async fn button_on_nats(client: &LatticeClient, host: &str, pins: &str, topic: &str) {
    client
        .put_config("button-cfg", config(&[("pins", pins), ("topic", topic)]))
        .await
        .expect("config");
    start_provider_on(client, host, "msg", "builtin://messaging-nats").await;
    client
        .put_link(messaging_link("button", "msg", "producer", &[], &[]))
        .await
        .expect("link");
    start(client, host, "button", "button", &["button-cfg"]).await;
}

/// Receives `n` messages, then none more for `quiet`.
async fn receive_exactly(sub: &mut async_nats::Subscriber, n: usize, quiet: Duration, what: &str) {
    for _ in 0..n {
        tokio::time::timeout(PATIENCE, sub.next())
            .await
            .unwrap_or_else(|_| panic!("{what}: fewer than {n} messages"));
    }
    assert!(
        tokio::time::timeout(quiet, sub.next()).await.is_err(),
        "{what}: more than {n} messages"
    );
}

async fn press(cli: &Cli, host: &str, line: &str) {
    cli.run(&["gpio", "set", host, line, "1"]).await.ok();
    cli.run(&["gpio", "set", host, line, "0"]).await.ok();
}

#[tokio::test]
async fn edges_become_calls_and_a_regrant_moves_the_watch_without_repeats() {
    init_logging();
    let nats = NatsServer::start().await;
    let host = HostProcess::start(
        &nats.url(),
        "gpio",
        &[],
        &["--gpio-sim", "sim0=8", "--gpio-sim", "sim1=8"],
    )
    .await;
    let client = nats.client("gpio").await;
    let cli = Cli::new(&nats.url(), "gpio");
    let raw = nats.connect().await;
    let mut pressed = raw.subscribe("presses").await.expect("subscribe");
    raw.flush().await.expect("flush");
    button_on_nats(&client, host.id(), "button:sim0:0", "presses").await;

    // The watch starts with the component: press until one arrives, then count exactly.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no press ever arrived"
        );
        press(&cli, host.id(), "sim0:0").await;
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(500), pressed.next()).await
        {
            assert_eq!(&m.payload[..], b"pressed");
            let edge_ns: u64 = m
                .headers
                .as_ref()
                .and_then(|h| h.get("edge-ns"))
                .and_then(|v| v.as_str().parse().ok())
                .expect("edge-ns");
            assert!(edge_ns > 0, "the edge's monotonic timestamp travels along");
            break;
        }
    }
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), pressed.next()).await {
    }
    for _ in 0..5 {
        press(&cli, host.id(), "sim0:0").await;
    }
    receive_exactly(
        &mut pressed,
        5,
        Duration::from_millis(500),
        "one press per rising edge, none per falling",
    )
    .await;

    // Re-point the grant to another chip: the old line is released, the new one watched.
    client
        .put_config(
            "button-cfg",
            config(&[("pins", "button:sim1:0"), ("topic", "presses")]),
        )
        .await
        .expect("regrant");
    wait_for("the old line is released", PATIENCE, || async {
        let list = client.gpio_list(host.id()).await.ok()?;
        let old = &list.chips.iter().find(|c| c.name == "sim0")?.lines[0];
        let new = &list.chips.iter().find(|c| c.name == "sim1")?.lines[0];
        (old.used_by.is_none() && new.used_by.is_some()).then_some(())
    })
    .await;
    press(&cli, host.id(), "sim0:0").await;
    for _ in 0..3 {
        press(&cli, host.id(), "sim1:0").await;
    }
    receive_exactly(
        &mut pressed,
        3,
        Duration::from_secs(1),
        "presses of the new line only",
    )
    .await;
}

#[tokio::test]
async fn the_edge_handler_cannot_be_called_over_the_lattice() {
    init_logging();
    let nats = NatsServer::start().await;
    let host = HostProcess::start(&nats.url(), "gpio", &[], &["--gpio-sim", "sim0=8"]).await;
    let client = nats.client("gpio").await;
    client
        .put_config("button-cfg", config(&[("pins", "button:sim0:0")]))
        .await
        .expect("config");
    start(&client, host.id(), "button", "button", &["button-cfg"]).await;
    let event = serde_json::json!({"pin": "button", "edge": "rising", "timestamp-ns": 1});
    let err = client
        .call(
            "button",
            "trellis:gpio/edge-handler@0.1.0#on-edge",
            &[event],
        )
        .await
        .expect_err("edges come from the host's chips only");
    assert!(err.to_string().contains("on-edge"), "{err}");
}
