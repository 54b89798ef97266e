//! The example applications in `examples/apps/`, deployed with the CLI as a user would.

use std::path::PathBuf;
use std::time::Duration;

use trellis_tests::{component_ref, init_logging, Cli, HostProcess, ManagerProcess, NatsServer};

fn example(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/apps")
        .join(name);
    assert!(path.is_file(), "{} is missing", path.display());
    path.display().to_string()
}

#[tokio::test]
async fn every_example_manifest_is_valid() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/apps");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/apps") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let out = Cli::new("nats://127.0.0.1:1", "default")
                .run(&["app", "validate", path.to_str().unwrap()])
                .await
                .ok();
            assert!(out.stdout.contains("valid"), "{out:?}");
            n += 1;
        }
    }
    assert!(n >= 3, "only {n} example manifests");
}

#[tokio::test]
async fn the_greeter_example_deploys_and_answers() {
    init_logging();
    let nats = NatsServer::start().await;
    let lattice = "ex-greeter";
    let _a = HostProcess::start(&nats.url(), lattice, &[], &[]).await;
    let _b = HostProcess::start(&nats.url(), lattice, &[], &[]).await;
    let _manager = ManagerProcess::start(&nats.url(), lattice, &[]).await;
    let cli = Cli::new(&nats.url(), lattice);
    // The manifest names its image relative to itself; the CLI makes it absolute.
    cli.run(&["app", "deploy", &example("greeter.yaml"), "--wait"])
        .await
        .ok();
    let out = cli
        .run(&["call", "greeter-greeter", "greet", "\"example\""])
        .await
        .ok();
    assert!(out.stdout.contains("Hello, example!"), "{out:?}");
    let st = cli
        .run(&["app", "status", "greeter", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(st["status"], "deployed");
    assert_eq!(st["scalers"][0]["actual"], 4);
}

#[tokio::test]
async fn the_counter_example_counts_in_a_nats_bucket() {
    init_logging();
    let nats = NatsServer::start().await;
    let lattice = "ex-counter";
    let _a = HostProcess::start(&nats.url(), lattice, &[], &[]).await;
    let _b = HostProcess::start(&nats.url(), lattice, &[], &[]).await;
    let _manager = ManagerProcess::start(&nats.url(), lattice, &[]).await;
    let cli = Cli::new(&nats.url(), lattice);
    cli.run(&["app", "deploy", &example("counter.yaml"), "--wait"])
        .await
        .ok();
    let mut last = 0;
    for _ in 0..6 {
        let out = cli
            .run(&[
                "call",
                "counter-counter",
                "increment",
                "\"visits\"",
                "-o",
                "json",
            ])
            .await
            .ok();
        let n = out.json().as_u64().expect("a count");
        assert_eq!(n, last + 1);
        last = n;
    }
    // The count lives in the bucket the link names, whichever host answered.
    let js = async_nats::jetstream::new(nats.connect().await);
    let kv = js
        .get_key_value("counter")
        .await
        .expect("the counter bucket");
    let stored = kv.get("visits").await.expect("reading").expect("a value");
    assert_eq!(
        std::str::from_utf8(&stored).ok(),
        Some(last.to_string().as_str()),
        "the bucket holds the count the calls returned"
    );
}

#[tokio::test]
async fn the_hello_http_example_answers_over_http() {
    init_logging();
    let nats = NatsServer::start().await;
    let lattice = "ex-http";
    let _a = HostProcess::start(&nats.url(), lattice, &[], &[]).await;
    let _b = HostProcess::start(&nats.url(), lattice, &[], &[]).await;
    let _manager = ManagerProcess::start(&nats.url(), lattice, &[]).await;
    // The example as written, on a free port.
    let addr = format!("127.0.0.1:{}", trellis_tests::free_port());
    let text = std::fs::read_to_string(example("hello-http.yaml"))
        .unwrap()
        .replace("127.0.0.1:8080", &addr)
        .replace(
            "../../target/components/hello-http.wasm",
            &component_ref("hello-http"),
        );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hello-http.yaml");
    std::fs::write(&file, text).unwrap();
    let cli = Cli::new(&nats.url(), lattice);
    cli.run(&["app", "deploy", file.to_str().unwrap(), "--wait"])
        .await
        .ok();
    let body = tokio::time::timeout(Duration::from_secs(60), async {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut s = tokio::net::TcpStream::connect(&addr).await?;
        s.write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    })
    .await
    .expect("an answer within 10s")
    .expect("an HTTP answer");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    // Undeploying stops the server with the rest.
    cli.run(&["app", "undeploy", "hello-http", "--wait"])
        .await
        .ok();
    assert!(tokio::net::TcpStream::connect(&addr).await.is_err());
}

/// The README's GPIO walkthrough: a host with a simulated chip and one without, the broker
/// config, the app deployed; a press reaches MQTT, an MQTT message drives the LED.
#[tokio::test]
async fn the_gpio_mqtt_example_lands_on_the_gpio_host_and_works_end_to_end() {
    use trellis_provider_mqtt::testing::{Mosquitto, Probe, Properties, Qos};
    init_logging();
    let broker = Mosquitto::start().await;
    let nats = NatsServer::start().await;
    let lattice = "ex-gpio";
    let board = HostProcess::start(&nats.url(), lattice, &[], &["--gpio-sim", "sim0=8"]).await;
    let plain = HostProcess::start(&nats.url(), lattice, &[], &[]).await;
    let cli = Cli::new(&nats.url(), lattice);
    let url = format!("url={}", broker.url());
    cli.run(&["config", "put", "mqtt-broker", &url]).await.ok();
    let _manager = ManagerProcess::start(&nats.url(), lattice, &[]).await;
    cli.run(&["app", "deploy", &example("gpio-mqtt.yaml"), "--wait"])
        .await
        .ok();
    let inventory = |id: &str| {
        let cli = &cli;
        let id = id.to_string();
        async move {
            cli.run(&["get", "inventory", &id, "-o", "json"])
                .await
                .ok()
                .json()
        }
    };
    let on_board = inventory(board.id()).await.to_string();
    assert!(
        on_board.contains("gpio-mqtt-button") && on_board.contains("gpio-mqtt-led"),
        "{on_board}"
    );
    let on_plain = inventory(plain.id()).await.to_string();
    assert!(
        !on_plain.contains("gpio-mqtt-"),
        "nothing of the app where there is no GPIO: {on_plain}"
    );

    let mut sub = Probe::connect(&broker, "mosquitto-sub").await;
    sub.subscribe("trellis/demo/button").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let got = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no `pressed` on MQTT"
        );
        cli.run(&["gpio", "set", board.id(), "sim0:0", "1"])
            .await
            .ok();
        cli.run(&["gpio", "set", board.id(), "sim0:0", "0"])
            .await
            .ok();
        if let Some(m) = sub.next_within(Duration::from_millis(500)).await {
            break m;
        }
    };
    assert_eq!(&got.payload[..], b"pressed");

    let mut pubr = Probe::connect(&broker, "mosquitto-pub").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the LED never came on"
        );
        pubr.publish(
            "trellis/demo/led",
            "on",
            Qos::AtLeastOnce,
            Properties::default(),
        )
        .await;
        let level = cli
            .run(&["gpio", "get", board.id(), "sim0:1"])
            .await
            .ok()
            .stdout;
        if level.trim() == "1" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    pubr.publish(
        "trellis/demo/led",
        "off",
        Qos::AtLeastOnce,
        Properties::default(),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while cli
        .run(&["gpio", "get", board.id(), "sim0:1"])
        .await
        .ok()
        .stdout
        .trim()
        != "0"
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the LED never went off"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
