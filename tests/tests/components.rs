//! Starting components where they belong and calling them, in Rust and Python.

use std::time::Duration;

use trellis_lattice::control::ScaleComponent;
use trellis_tests::{component_ref, init_logging, Cli, HostProcess, InProcessHost, NatsServer};

#[tokio::test]
async fn start_by_constraint_lands_on_the_matching_host() {
    init_logging();
    let nats = NatsServer::start().await;
    let _cloud = HostProcess::start(&nats.url(), "place", &[("tier", "cloud")], &[]).await;
    let edge = HostProcess::start(&nats.url(), "place", &[("tier", "edge")], &[]).await;
    let cli = Cli::new(&nats.url(), "place");
    let greeter = trellis_tests::component("greeter").display().to_string();

    let out = cli
        .run(&[
            "component",
            "start",
            &greeter,
            "--id",
            "greeter",
            "--constraint",
            "tier=edge",
            "-o",
            "json",
        ])
        .await
        .ok()
        .json();
    assert_eq!(out["host_id"], edge.id());
    assert_eq!(out["replicas"], 1);
    assert!(out["digest"]
        .as_str()
        .is_some_and(|d| d.starts_with("sha256:")));

    let inv = cli
        .run(&["get", "inventory", edge.id(), "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(inv["host_id"], edge.id());
    assert_eq!(inv["labels"]["tier"], "edge");
    assert_eq!(inv["components"][0]["id"], "greeter");
    assert_eq!(inv["components"][0]["replicas"], 1);
    assert!(inv["components"][0]["image"]
        .as_str()
        .is_some_and(|i| i.ends_with("greeter.wasm")));

    let err = cli
        .run(&[
            "component",
            "start",
            &greeter,
            "--id",
            "g2",
            "--constraint",
            "tier=mars",
        ])
        .await
        .err();
    assert!(
        err.contains("no host in lattice `place` matches tier=mars"),
        "{err}"
    );

    // Scale and stop.
    let out = cli
        .run(&[
            "component",
            "scale",
            "greeter",
            "--replicas",
            "3",
            "-o",
            "json",
        ])
        .await
        .ok()
        .json();
    assert_eq!(out["replicas"], 3);
    cli.run(&["component", "stop", "greeter"]).await.ok();
    let inv = cli
        .run(&["get", "inventory", edge.id(), "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(inv["components"], serde_json::json!([]));
}

#[tokio::test]
async fn call_greeters_in_rust_and_python() {
    init_logging();
    let nats = NatsServer::start().await;
    let host = InProcessHost::start(&nats.url(), "call", &[]).await;
    let cli = Cli::new(&nats.url(), "call");
    for (id, name) in [("greeter", "greeter"), ("greeter-py", "greeter-py")] {
        cli.run(&[
            "component",
            "start",
            &component_ref(name),
            "--id",
            id,
            "--host",
            &host.id(),
        ])
        .await
        .ok();
        let out = cli.run(&["call", id, "greet", "\"Ada\""]).await.ok();
        assert_eq!(out.stdout.trim(), "\"Hello, Ada!\"", "{id}");
    }
    let err = cli.run(&["call", "greeter", "greet", "42"]).await.err();
    assert!(
        err.contains("argument `name`: expected string, found number 42"),
        "{err}"
    );
    let err = cli
        .run(&["call", "greeter", "greet", "not json"])
        .await
        .err();
    assert!(err.contains("not JSON"), "{err}");
    let err = cli.run(&["call", "nobody", "greet", "\"x\""]).await.err();
    assert!(err.contains("no running instance of `nobody`"), "{err}");
    host.stop().await;
}

#[tokio::test]
async fn calls_keep_succeeding_while_a_host_is_killed() {
    init_logging();
    let nats = NatsServer::start().await;
    let a = HostProcess::start(&nats.url(), "ha", &[], &[]).await;
    let mut b = HostProcess::start(&nats.url(), "ha", &[], &[]).await;
    let client = nats.client("ha").await;
    // One component on both hosts, each copy configured with the name of its host, so every
    // answer says which host served it.
    for (host, name) in [(a.id(), "a"), (b.id(), "b")] {
        let config = format!("on-{name}");
        client
            .put_config(&config, [("host".to_string(), name.to_string())].into())
            .await
            .expect("config");
        client
            .scale_component(
                host,
                &ScaleComponent {
                    component_id: "where".into(),
                    image: component_ref("settings"),
                    replicas: 4,
                    config: vec![config],
                    max_memory_bytes: None,
                    timeout_ms: None,
                    annotations: Default::default(),
                    ..Default::default()
                },
            )
            .await
            .expect("scale");
    }
    let args = [serde_json::json!("host")];
    let mut failures = Vec::new();
    let mut served = [
        std::collections::BTreeMap::<String, u32>::new(),
        Default::default(),
    ];
    for i in 0..400 {
        let after_kill = usize::from(i >= 150);
        if i == 150 {
            b.kill();
        }
        match client.call("where", "setting", &args).await {
            Ok(v) => {
                let host = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{v}"));
                *served[after_kill].entry(host).or_default() += 1;
            }
            Err(e) => failures.push(format!("call {i}: {e}")),
        }
        if i % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    assert!(failures.is_empty(), "failed calls: {failures:#?}");
    eprintln!(
        "served before the kill: {:?}, after: {:?}",
        served[0], served[1]
    );
    assert!(
        served[0].get("b").is_some_and(|n| *n > 0) && served[0].get("a").is_some_and(|n| *n > 0),
        "both hosts served calls before the kill: {:?}",
        served[0]
    );
    assert_eq!(
        served[1].keys().collect::<Vec<_>>(),
        ["a"],
        "{:?}",
        served[1]
    );
    drop(a);
}
