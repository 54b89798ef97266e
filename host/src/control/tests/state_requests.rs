//! Link and config requests: checked against what the source imports and what config exists,
//! written to the store, applied to the host's link table and announced.

use trellis_lattice::event::Event;
use trellis_lattice::link::{Config, LinkKey};
use trellis_lattice::ErrorKind;

use super::fakes::{kind, Bench};
use crate::runtime::ImportResolver as _;

const KV_IMPORTS: &[&str] = &[
    "wasi:keyvalue/store@0.2.0-draft",
    "wasi:keyvalue/atomics@0.2.0-draft",
    "wasi:cli/environment@0.2.0",
];

fn link(target: &str, configs: &[&str]) -> String {
    serde_json::json!({"link": {
        "source_id": "counter", "target_id": target, "wit_namespace": "wasi",
        "wit_package": "keyvalue", "interfaces": ["store", "atomics"],
        "target_config": configs,
    }})
    .to_string()
}

fn key() -> LinkKey {
    LinkKey {
        source_id: "counter".into(),
        wit_namespace: "wasi".into(),
        wit_package: "keyvalue".into(),
        name: "default".into(),
    }
}

fn bench_with_counter() -> Bench {
    let b = Bench::new();
    b.imports.0.lock().unwrap().insert(
        "counter".into(),
        KV_IMPORTS.iter().map(|s| s.to_string()).collect(),
    );
    b.store.configs.lock().unwrap().insert(
        "bucket".into(),
        Config::from([("bucket".into(), "b".into())]),
    );
    b
}

#[tokio::test]
async fn put_retarget_and_delete_a_link() {
    let b = bench_with_counter();
    let s = &b.subjects;
    b.ask(&s.link_put(), &link("kv-nats", &["bucket"]))
        .await
        .unwrap();
    assert!(b.store.links.lock().unwrap().contains_key(&key()));
    let target = b
        .links
        .resolve("counter", "wasi:keyvalue/store@0.2.0-draft")
        .unwrap();
    assert_eq!(
        target.target_id, "kv-nats",
        "the host's table follows at once"
    );

    let retarget = serde_json::json!({"key": key(), "target_id": "kv-redis"}).to_string();
    let moved = b.ask(&s.link_retarget(), &retarget).await.unwrap();
    assert_eq!(moved["target_id"], "kv-redis");
    assert_eq!(moved["target_config"][0], "bucket", "target config is kept");
    let del = serde_json::json!({"key": key()}).to_string();
    b.ask(&s.link_del(), &del).await.unwrap();
    assert!(b.links.resolve("counter", "wasi:keyvalue/store").is_err());

    let events = b.events();
    assert!(
        matches!(&events[..], [Event::LinkSet(a), Event::LinkSet(r), Event::LinkDeleted(d)]
        if a.previous_target.is_none()
            && r.previous_target.as_deref() == Some("kv-nats")
            && d.key == key())
    );
    assert_eq!(kind(&b.ask(&s.link_del(), &del).await), ErrorKind::NotFound);
    assert_eq!(
        kind(&b.ask(&s.link_retarget(), &retarget).await),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn links_are_checked_before_they_are_stored() {
    let b = bench_with_counter();
    let s = &b.subjects;
    let missing_config = b.ask(&s.link_put(), &link("kv", &["nowhere"])).await;
    assert_eq!(kind(&missing_config), ErrorKind::NotFound);
    assert!(missing_config
        .unwrap_err()
        .message
        .contains("config `nowhere` does not exist"));

    let to_itself = b.ask(&s.link_put(), &link("counter", &[])).await;
    assert_eq!(kind(&to_itself), ErrorKind::Invalid);

    let http = serde_json::json!({"link": {
        "source_id": "counter", "target_id": "web", "wit_namespace": "wasi",
        "wit_package": "http", "interfaces": ["outgoing-handler"],
    }})
    .to_string();
    let not_imported = b.ask(&s.link_put(), &http).await;
    assert_eq!(kind(&not_imported), ErrorKind::Refused);
    let message = not_imported.unwrap_err().message;
    assert!(
        message.contains("does not import wasi:http/outgoing-handler"),
        "{message}"
    );
    assert!(
        message.contains("wasi:keyvalue/store") && !message.contains("wasi:cli"),
        "{message}"
    );

    // A source no host runs yet is linked unchecked.
    b.imports.0.lock().unwrap().clear();
    b.ask(&s.link_put(), &http).await.unwrap();

    *b.store.down.lock().unwrap() = true;
    let down = b.ask(&s.link_put(), &link("kv", &[])).await;
    assert_eq!(kind(&down), ErrorKind::Unavailable);
    assert_eq!(b.events().len(), 1, "only the stored link was announced");
}

#[tokio::test]
async fn configs_are_put_and_deleted_unless_in_use() {
    let b = bench_with_counter();
    let s = &b.subjects;
    b.ask(
        &s.config_put(),
        r#"{"name":"route","values":{"path":"/x"}}"#,
    )
    .await
    .unwrap();
    assert_eq!(b.store.configs.lock().unwrap()["route"]["path"], "/x");
    let bad_key = b
        .ask(&s.config_put(), r#"{"name":"route","values":{"":"x"}}"#)
        .await;
    assert_eq!(kind(&bad_key), ErrorKind::Invalid);
    let bad_name = b
        .ask(&s.config_put(), r#"{"name":"no spaces","values":{}}"#)
        .await;
    assert_eq!(kind(&bad_name), ErrorKind::Invalid);

    b.ask(&s.link_put(), &link("kv", &["bucket"]))
        .await
        .unwrap();
    let in_use = b.ask(&s.config_del(), r#"{"name":"bucket"}"#).await;
    assert_eq!(kind(&in_use), ErrorKind::Conflict);
    assert!(in_use.unwrap_err().message.contains("counter -> kv"));
    b.ask(&s.config_del(), r#"{"name":"route"}"#).await.unwrap();
    let gone = b.ask(&s.config_del(), r#"{"name":"route"}"#).await;
    assert_eq!(kind(&gone), ErrorKind::NotFound);

    let events = b.events();
    assert!(
        matches!(&events[..], [Event::ConfigSet(c), Event::LinkSet(_), Event::ConfigDeleted(d)]
        if c.name == "route" && c.keys == ["path"] && d.name == "route")
    );
}
