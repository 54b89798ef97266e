//! Ids, sizes and fields a hostile client makes up: every one is checked once where the
//! request is parsed and answered with one clear error naming the field, the host keeps its
//! NATS connection, and inventories never outgrow what the server accepts in one message.

use std::time::Duration;

use trellis_lattice::control::ScaleComponent;
use trellis_lattice::event::Event;
use trellis_lattice::LatticeClient;
use trellis_tests::{component_ref, init_logging, Cli, EventLog, HostProcess, NatsServer};

async fn raw(client: &LatticeClient, subject: String, payload: String) -> serde_json::Value {
    let reply = tokio::time::timeout(
        Duration::from_secs(30),
        client.nats().request(subject, payload.into()),
    )
    .await
    .expect("a reply within 30s")
    .expect("a reply");
    serde_json::from_slice(&reply.payload).expect("a JSON reply")
}

fn refused(reply: &serde_json::Value, kind: &str, text: &str) {
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["kind"], kind, "{reply}");
    let error = reply["error"].as_str().unwrap_or_default();
    assert!(error.contains(text), "expected {text:?} in {reply}");
    assert!(
        error.len() < 600,
        "an error does not repeat a huge value: {} bytes",
        error.len()
    );
}

fn greeter(id: &str, replicas: u32) -> ScaleComponent {
    ScaleComponent {
        component_id: id.into(),
        image: component_ref("greeter"),
        replicas,
        config: vec![],
        max_memory_bytes: None,
        timeout_ms: None,
        annotations: Default::default(),
        ..Default::default()
    }
}

#[tokio::test]
async fn oversized_ids_are_refused_and_no_host_loses_its_connection() {
    init_logging();
    let nats = NatsServer::start().await;
    let host = HostProcess::start(&nats.url(), "hostile-ids", &[], &[]).await;
    let client = nats.client("hostile-ids").await;
    client
        .scale_component(host.id(), &greeter("greeter", 2))
        .await
        .expect("greeter");
    let s = client.subjects().clone();
    // Used in a KV subject, an id this long made nats-server close every host's connection.
    for len in [5_000, 10_000] {
        let key = serde_json::json!({"key": {"source_id": "x".repeat(len), "wit_namespace": "wasi",
            "wit_package": "keyvalue", "name": "default"}});
        for _ in 0..20 {
            let reply = raw(&client, s.link_del(), key.to_string()).await;
            refused(&reply, "invalid", "component id");
        }
    }
    let long_ns = serde_json::json!({"key": {"source_id": "a", "wit_namespace": "w".repeat(5000),
        "wit_package": "keyvalue", "name": "default"}});
    refused(
        &raw(&client, s.link_del(), long_ns.to_string()).await,
        "invalid",
        "WIT namespace",
    );
    let hello = client
        .call("greeter", "greet", &[serde_json::json!("x")])
        .await;
    assert_eq!(
        hello.expect("calls still work"),
        serde_json::json!("Hello, x!")
    );
    assert!(
        !host.log().contains("maximum control line"),
        "{}",
        host.log()
    );

    // A newline in an id would have forged a line in the host's log.
    let forged = serde_json::json!({"component_id": "a\nERROR forged line", "image": component_ref("greeter"), "replicas": 1});
    let reply = raw(&client, s.component_scale(host.id()), forged.to_string()).await;
    refused(&reply, "invalid", "component id");
    assert!(
        !host.log().contains("\nERROR forged line"),
        "{}",
        host.log()
    );
}

#[tokio::test]
async fn sizes_counts_and_unknown_fields_are_refused_with_the_field_named() {
    init_logging();
    let nats = NatsServer::start().await;
    let host = HostProcess::start(&nats.url(), "hostile-sizes", &[], &[]).await;
    let client = nats.client("hostile-sizes").await;
    let s = client.subjects().clone();
    let scale = s.component_scale(host.id());
    let image = component_ref("greeter");

    let big_annotations = serde_json::json!({"component_id": "a", "image": image, "replicas": 1,
        "annotations": {"blob": "x".repeat(600 << 10)}});
    refused(
        &raw(&client, scale.clone(), big_annotations.to_string()).await,
        "invalid",
        "annotations value of blob",
    );
    let replicas = serde_json::json!({"component_id": "a", "image": image, "replicas": u32::MAX});
    refused(
        &raw(&client, scale.clone(), replicas.to_string()).await,
        "invalid",
        "at most 10000 replicas",
    );
    let unknown =
        serde_json::json!({"component_id": "a", "image": image, "replicas": 1, "replics": 2});
    refused(
        &raw(&client, scale.clone(), unknown.to_string()).await,
        "invalid",
        "unknown field `replics`",
    );
    let label = serde_json::json!({"key": "zone", "value": "north", "colour": "blue"});
    refused(
        &raw(&client, s.label_put(host.id()), label.to_string()).await,
        "invalid",
        "unknown field `colour`",
    );
    let config = serde_json::json!({"name": "c", "values": {"big": "x".repeat(900 << 10)}});
    refused(
        &raw(&client, s.config_put(), config.to_string()).await,
        "invalid",
        "config c value of big",
    );
    let config = serde_json::json!({"name": "c", "values": {}, "secret": true});
    refused(
        &raw(&client, s.config_put(), config.to_string()).await,
        "invalid",
        "unknown field `secret`",
    );

    // One answer for a link that is not there; an id that cannot be one is invalid.
    let missing = serde_json::json!({"key": {"source_id": "nobody", "wit_namespace": "wasi",
        "wit_package": "keyvalue", "name": "default"}});
    refused(
        &raw(&client, s.link_del(), missing.to_string()).await,
        "not_found",
        "no link nobody",
    );
    let dotted = serde_json::json!({"key": {"source_id": "a.b", "wit_namespace": "wasi",
        "wit_package": "keyvalue", "name": "default"}});
    refused(
        &raw(&client, s.link_del(), dotted.to_string()).await,
        "invalid",
        "component id",
    );

    // A malformed auction is answered, not dropped.
    let reply = raw(&client, s.component_auction(), "{not json".into()).await;
    refused(&reply, "invalid", "malformed auction request");
}

/// With a server that takes 64 KiB per message, a host whose inventory is larger sends it in
/// pages: heartbeats keep coming and every component is listed.
#[tokio::test]
async fn inventories_larger_than_a_message_are_sent_in_pages() {
    init_logging();
    let nats = NatsServer::start_with_config("max_payload: 65536\n").await;
    let host = HostProcess::start(
        &nats.url(),
        "hostile-pages",
        &[],
        &["--heartbeat-interval", "500ms"],
    )
    .await;
    let client = nats.client("hostile-pages").await;
    let events = EventLog::start(&client).await;
    let blob = "x".repeat(6000);
    for i in 0..30 {
        let mut req = greeter(&format!("g{i:02}"), 1);
        req.annotations.insert("note".into(), blob.clone());
        client
            .scale_component(host.id(), &req)
            .await
            .expect("a start");
    }
    events
        .wait_for(
            "a paged heartbeat",
            Duration::from_secs(30),
            |e| matches!(e, Event::HostHeartbeat(inv) if inv.is_partial()),
        )
        .await;
    let inv = client
        .inventory(host.id())
        .await
        .expect("the whole inventory");
    assert_eq!(inv.components.len(), 30);
    assert!(inv.page.is_none());
    assert!(
        !host.log().contains("cannot publish event"),
        "{}",
        host.log()
    );
    let out = Cli::new(&nats.url(), "hostile-pages")
        .run(&["get", "inventory", host.id(), "-o", "json"])
        .await
        .ok();
    assert_eq!(out.json()["components"].as_array().map(Vec::len), Some(30));
}

#[tokio::test]
async fn a_provider_that_is_not_an_executable_is_refused_without_running_it() {
    init_logging();
    let nats = NatsServer::start().await;
    // The file sits in a directory the host allows providers from: the check that it is an
    // executable is the one that must refuse it.
    let dir = tempfile::tempdir().expect("tempdir");
    let allowed = dir.path().display().to_string();
    let host = HostProcess::start(
        &nats.url(),
        "hostile-exec",
        &[],
        &["--provider-dir", &allowed],
    )
    .await;
    let client = nats.client("hostile-exec").await;

    let text = dir.path().join("notes");
    std::fs::write(&text, "echo PWNED > /tmp/x\nroot:$6$secret-hash::\n").expect("write");
    let body = serde_json::json!({"provider_id": "p", "image": text.display().to_string()});
    let reply = raw(
        &client,
        client.subjects().provider_start(host.id()),
        body.to_string(),
    )
    .await;
    refused(&reply, "invalid", "is not an executable");
    assert!(!reply.to_string().contains("secret-hash"), "{reply}");
    assert!(!reply.to_string().contains("PWNED"), "{reply}");
}

#[tokio::test]
async fn a_missing_seed_file_is_generated_and_kept() {
    use std::os::unix::fs::PermissionsExt as _;
    init_logging();
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let seed = dir.path().join("state/host.seed");
    let cache = trellis_tests::shared_cache_dir();
    let mut first = std::process::Command::new(trellis_tests::bin("trellis-host"))
        .args([
            "--nats-url",
            &nats.url(),
            "--lattice",
            "hostile-seed",
            "--seed-file",
        ])
        .arg(&seed)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--cache-dir")
        .arg(&cache)
        .env_remove("TRELLIS_HOST_SEED")
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("trellis-host");
    let client = nats.client("hostile-seed").await;
    let hosts = trellis_tests::wait_for("the host", Duration::from_secs(30), || async {
        let hosts = client.hosts().await.ok()?;
        (!hosts.is_empty()).then_some(hosts)
    })
    .await;
    let _ = first.kill();
    let _ = first.wait();
    let mode = std::fs::metadata(&seed)
        .expect("the seed file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&seed).expect("seed");
    let key = nkeys::KeyPair::from_seed(text.trim()).expect("a valid seed");
    assert_eq!(
        key.public_key(),
        hosts[0].id,
        "the host runs with the key it wrote"
    );
}

#[tokio::test]
async fn the_cli_ends_quietly_when_its_reader_goes_away() {
    init_logging();
    let nats = NatsServer::start().await;
    let _host = HostProcess::start(&nats.url(), "hostile-pipe", &[], &[]).await;
    let mut child = std::process::Command::new(trellis_tests::bin("trellis"))
        .args(["get", "hosts", "-o", "json"])
        .env("NATS_URL", nats.url())
        .env("TRELLIS_LATTICE", "hostile-pipe")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("trellis");
    // The reader (`| head -0`) is gone before anything is written.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("trellis exits");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
