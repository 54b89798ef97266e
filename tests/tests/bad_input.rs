//! Bad input gets a clear error and a `component_scale_failed` event; the host keeps serving.

use std::time::Duration;

use trellis_lattice::control::ScaleComponent;
use trellis_lattice::event::Event;
use trellis_tests::{component_ref, init_logging, Cli, EventLog, HostProcess, NatsServer};

fn scale(id: &str, image: &str) -> ScaleComponent {
    ScaleComponent {
        component_id: id.to_string(),
        image: image.to_string(),
        replicas: 1,
        config: Vec::new(),
        max_memory_bytes: None,
        timeout_ms: None,
        annotations: Default::default(),
        ..Default::default()
    }
}

#[tokio::test]
async fn bad_components_and_requests_fail_clearly_and_the_host_keeps_serving() {
    init_logging();
    let nats = NatsServer::start().await;
    let host = HostProcess::start(&nats.url(), "bad", &[], &[]).await;
    let client = nats.client("bad").await;
    let events = EventLog::start(&client).await;
    client
        .scale_component(host.id(), &scale("greeter", &component_ref("greeter")))
        .await
        .expect("greeter starts");

    let dir = tempfile::tempdir().expect("tempdir");
    let not_wasm = dir.path().join("notes.wasm");
    std::fs::write(&not_wasm, "these are not the bytes you are looking for").expect("write");
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, wat::parse_str("(module)").expect("wat")).expect("write");
    let root_import = dir.path().join("root-import.wasm");
    let bytes =
        wat::parse_str(r#"(component (import "log" (func (param "msg" string))))"#).expect("wat");
    std::fs::write(&root_import, bytes).expect("write");
    let greeter = component_ref("greeter");

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "missing",
            "file:///no/such/component.wasm".into(),
            "cannot read /no/such/component.wasm",
        ),
        (
            "notwasm",
            format!("file://{}", not_wasm.display()),
            "is not a WebAssembly component (it does not start with the WebAssembly magic number)",
        ),
        (
            "core",
            format!("file://{}", core.display()),
            "is a core WebAssembly module, not a component",
        ),
        (
            "digest",
            format!("{greeter}@sha256:{}", "0".repeat(64)),
            "digest mismatch",
        ),
        (
            "rootimport",
            format!("file://{}", root_import.display()),
            "cannot satisfy import `log`",
        ),
        (
            "badref",
            "oci://ghcr.io/acme/thing:1".into(),
            "unsupported scheme oci://",
        ),
        ("bad.id", greeter.clone(), "invalid component id"),
    ];
    for (id, image, expected) in &cases {
        let err = client
            .scale_component(host.id(), &scale(id, image))
            .await
            .expect_err(id)
            .to_string();
        assert!(err.contains(expected), "{id}: {err}");
        assert!(
            !err.contains("these are not"),
            "{id}: the file's contents are not echoed: {err}"
        );
        if *id != "bad.id" && *id != "badref" {
            // (an invalid id or reference is refused by the client before it reaches a host)
            events
                .wait_for(&format!("component_scale_failed for {id}"), Duration::from_secs(60), |e| {
                    matches!(e, Event::ComponentScaleFailed(f) if f.component_id == *id && f.reason.contains(expected))
                })
                .await;
        }
        let hello = client
            .call("greeter", "greet", &[serde_json::json!("still")])
            .await;
        assert_eq!(
            hello.expect("greeter still answers"),
            "Hello, still!",
            "after {id}"
        );
    }

    // Malformed JSON on a control subject: an error reply and an event, nothing else.
    let reply = client
        .nats()
        .request(
            client.subjects().component_scale(host.id()),
            "{not json".into(),
        )
        .await
        .expect("a reply to garbage");
    let body: serde_json::Value = serde_json::from_slice(&reply.payload).expect("JSON reply");
    assert_eq!(body["ok"], false);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("malformed scale request")),
        "{body}"
    );
    events
        .wait_for("component_scale_failed for garbage", Duration::from_secs(60), |e| {
            matches!(e, Event::ComponentScaleFailed(f) if f.reason.contains("malformed scale request"))
        })
        .await;
    let reply = client
        .nats()
        .request(client.subjects().label_put(host.id()), "[]".into())
        .await
        .expect("a reply");
    let body: serde_json::Value = serde_json::from_slice(&reply.payload).expect("JSON reply");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("malformed label put request")),
        "{body}"
    );

    // Unknown host id, through the CLI.
    let cli = Cli::new(&nats.url(), "bad");
    let unknown = format!("N{}", "A".repeat(55));
    let err = cli
        .run(&[
            "component",
            "start",
            &greeter,
            "--id",
            "x",
            "--host",
            &unknown,
        ])
        .await
        .err();
    assert!(err.contains("no such host"), "{err}");
    let err = cli
        .run(&["get", "inventory", "nobody-by-that-name"])
        .await
        .err();
    assert!(err.contains("no such host"), "{err}");

    let hello = client
        .call("greeter", "greet", &[serde_json::json!("end")])
        .await;
    assert_eq!(hello.expect("greeter still answers"), "Hello, end!");
    let inv = client.inventory(host.id()).await.expect("inventory");
    assert_eq!(
        inv.components.len(),
        1,
        "only greeter runs: {:?}",
        inv.components
    );
}
