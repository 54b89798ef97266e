//! Components read named config through `wasi:config/store`: merged in order, changes seen at
//! once, a missing name refused at start with nothing else disturbed.

use std::time::Duration;

use trellis_lattice::control::ScaleComponent;
use trellis_lattice::LatticeClient;
use trellis_tests::{component_ref, init_logging, wait_for, Cli, HostProcess, NatsServer};

fn settings(id: &str, config: &[&str]) -> ScaleComponent {
    ScaleComponent {
        component_id: id.into(),
        image: component_ref("settings"),
        replicas: 2,
        config: config.iter().map(|c| c.to_string()).collect(),
        max_memory_bytes: None,
        timeout_ms: None,
        annotations: Default::default(),
        ..Default::default()
    }
}

async fn setting(client: &LatticeClient, id: &str, key: &str) -> serde_json::Value {
    client
        .call(id, "setting", &[serde_json::json!(key)])
        .await
        .unwrap_or_else(|e| panic!("{id}.setting({key}): {e}"))
}

async fn put(client: &LatticeClient, name: &str, pairs: &[(&str, &str)]) {
    let values = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    client
        .put_config(name, values)
        .await
        .unwrap_or_else(|e| panic!("config {name}: {e}"));
}

#[tokio::test]
async fn a_component_reads_its_named_config_and_sees_changes_at_once() {
    init_logging();
    let nats = NatsServer::start().await;
    let host = HostProcess::start(&nats.url(), "cfg", &[], &[]).await;
    let client = nats.client("cfg").await;
    put(&client, "base", &[("greeting", "Hello"), ("lang", "en")]).await;
    put(&client, "site", &[("greeting", "Howdy")]).await;

    client
        .scale_component(host.id(), &settings("s", &["base", "site"]))
        .await
        .expect("settings starts");
    // Later names win.
    assert_eq!(
        setting(&client, "s", "greeting").await,
        serde_json::json!("Howdy")
    );
    assert_eq!(setting(&client, "s", "lang").await, serde_json::json!("en"));
    assert_eq!(
        setting(&client, "s", "absent").await,
        serde_json::Value::Null
    );
    let all = client.call("s", "settings", &[]).await.expect("settings");
    assert_eq!(all, serde_json::json!(["greeting=Howdy", "lang=en"]));

    // A change reaches the running component without a restart.
    put(&client, "site", &[("greeting", "Hi")]).await;
    wait_for("the changed greeting", Duration::from_secs(60), || async {
        (setting(&client, "s", "greeting").await == serde_json::json!("Hi")).then_some(())
    })
    .await;
    // A deleted config no longer contributes.
    client.delete_config("site").await.expect("delete site");
    wait_for("the base greeting", Duration::from_secs(60), || async {
        (setting(&client, "s", "greeting").await == serde_json::json!("Hello")).then_some(())
    })
    .await;

    // A component without config sees none.
    client
        .scale_component(host.id(), &settings("plain", &[]))
        .await
        .expect("plain starts");
    assert_eq!(
        client
            .call("plain", "settings", &[])
            .await
            .expect("settings"),
        serde_json::json!([])
    );

    // The CLI passes --config.
    let cli = Cli::new(&nats.url(), "cfg");
    let settings_wasm = trellis_tests::component("settings");
    cli.run(&[
        "component",
        "start",
        &settings_wasm.display().to_string(),
        "--id",
        "c",
        "--config",
        "base",
    ])
    .await
    .ok();
    let out = cli.run(&["call", "c", "setting", "\"lang\""]).await.ok();
    assert_eq!(out.stdout.trim(), "\"en\"");
}

#[tokio::test]
async fn a_missing_config_refuses_the_start_and_disturbs_nothing() {
    init_logging();
    let nats = NatsServer::start().await;
    let host = HostProcess::start(&nats.url(), "cfgbad", &[], &[]).await;
    let client = nats.client("cfgbad").await;
    put(&client, "base", &[("greeting", "Hello")]).await;
    client
        .scale_component(host.id(), &settings("good", &["base"]))
        .await
        .expect("good starts");

    let err = client
        .scale_component(host.id(), &settings("bad", &["base", "nowhere"]))
        .await
        .expect_err("a start naming a missing config fails");
    let msg = err.to_string();
    assert!(
        msg.contains("nowhere") && msg.contains("no such named config"),
        "{msg}"
    );
    // A name that cannot be a config name is refused before anything is read.
    let err = client
        .scale_component(host.id(), &settings("bad", &["no spaces allowed"]))
        .await
        .expect_err("a malformed config name fails");
    assert!(err.to_string().contains("config name"), "{err}");
    // A running component keeps its configs when a start asks for a missing one.
    let err = client
        .scale_component(host.id(), &settings("good", &["nowhere"]))
        .await
        .expect_err("switching to a missing config fails");
    assert!(err.to_string().contains("nowhere"), "{err}");
    let inv = client.inventory(host.id()).await.expect("inventory");
    assert!(inv.components.iter().all(|c| c.id != "bad"), "{inv:?}");
    assert_eq!(
        setting(&client, "good", "greeting").await,
        serde_json::json!("Hello")
    );
}
