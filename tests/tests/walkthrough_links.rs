//! The README's walkthrough, continued: a component linked to a capability provider started by
//! auction, the provider swapped while calls flow (`link retarget`), `get links`, `link del`,
//! and `trellis spy` showing what a scale and a link put cause.

mod walkthrough_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use trellis_tests::{init_logging, HostProcess, NatsServer, RedisServer};
use walkthrough_support::{cli, readme_component, PATIENCE};

const LINK_COUNTER_TO_KV: [&str; 11] = [
    "link",
    "put",
    "counter",
    "kv-nats",
    "wasi:keyvalue",
    "--interface",
    "atomics",
    "--interface",
    "store",
    "--target-config",
    "counter-bucket",
];

#[tokio::test]
async fn a_link_to_a_provider_retargets_while_calls_flow_and_is_deleted() {
    init_logging();
    let nats = NatsServer::start().await;
    let redis = RedisServer::start().await;
    let a = HostProcess::start(&nats.url(), "default", &[], &[]).await;
    let b = HostProcess::start(&nats.url(), "default", &[("tier", "edge")], &[]).await;
    let shell = cli(&nats.url(), "default");

    shell
        .run(&["config", "put", "counter-bucket", "bucket=counters"])
        .await
        .ok();
    // trellis provider start builtin://keyvalue-nats --id kv-nats: no --host, an auction.
    let out = shell
        .run(&[
            "provider",
            "start",
            "builtin://keyvalue-nats",
            "--id",
            "kv-nats",
        ])
        .await
        .ok();
    assert!(
        out.stdout.contains("provider kv-nats runs on")
            && (out.stdout.contains(a.id()) || out.stdout.contains(b.id())),
        "{out:?}"
    );
    let counter = readme_component("counter");
    shell
        .run(&["component", "start", &counter, "--id", "counter"])
        .await
        .ok();
    let out = shell.run(&LINK_COUNTER_TO_KV).await.ok();
    assert!(out.stdout.contains("kv-nats"), "{out:?}");
    // trellis call counter increment '"hits"': 1, then 2.
    for expected in ["1", "2"] {
        let out = shell
            .run(&["call", "counter", "increment", "\"hits\""])
            .await
            .ok();
        assert_eq!(out.stdout.trim(), expected);
    }

    // The provider swapped for Redis while calls flow: none fails.
    shell
        .run(&["config", "put", "redis", &format!("url={}", redis.url())])
        .await
        .ok();
    shell
        .run(&[
            "provider",
            "start",
            "builtin://keyvalue-redis",
            "--id",
            "kv-redis",
        ])
        .await
        .ok();
    let client = nats.client("default").await;
    let done = Arc::new(AtomicBool::new(false));
    let calls = tokio::spawn({
        let done = Arc::clone(&done);
        async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !done.load(Ordering::SeqCst) || (ok < 3 && failed.is_empty()) {
                match client
                    .call("counter", "increment", &[serde_json::json!("load")])
                    .await
                {
                    Ok(_) => ok += 1,
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, failed)
        }
    });
    // trellis link retarget counter wasi:keyvalue kv-redis --target-config redis
    let out = shell
        .run(&[
            "link",
            "retarget",
            "counter",
            "wasi:keyvalue",
            "kv-redis",
            "--target-config",
            "redis",
        ])
        .await
        .ok();
    assert!(out.stdout.contains("kv-redis"), "{out:?}");
    done.store(true, Ordering::SeqCst);
    let (ok, failed) = tokio::time::timeout(PATIENCE, calls)
        .await
        .expect("the calls end")
        .expect("the calling task");
    assert!(
        failed.is_empty(),
        "{} of {ok} calls failed: {failed:?}",
        failed.len()
    );
    // Redis counts from scratch.
    let out = shell
        .run(&["call", "counter", "increment", "\"hits\""])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "1");

    // trellis get links: the link now names kv-redis and the redis config.
    let links = shell.run(&["get", "links"]).await.ok().stdout;
    let row = links
        .lines()
        .find(|l| l.trim_start().starts_with("counter"))
        .unwrap_or_else(|| panic!("no link of counter in:\n{links}"));
    for text in ["kv-redis", "wasi:keyvalue", "atomics,store", "redis"] {
        assert!(row.contains(text), "no {text} in {row}");
    }
    assert!(!row.contains("kv-nats"), "{row}");

    // trellis link del counter wasi:keyvalue: calls needing it now fail.
    let out = shell
        .run(&["link", "del", "counter", "wasi:keyvalue"])
        .await
        .ok();
    assert!(
        out.stdout.contains("deleted link counter wasi:keyvalue"),
        "{out:?}"
    );
    let empty = shell.run(&["get", "links", "-o", "json"]).await.ok().json();
    assert_eq!(empty, serde_json::json!([]));
    let err = shell
        .run(&["call", "counter", "increment", "\"hits\""])
        .await
        .err();
    assert!(err.starts_with("trellis: "), "{err}");
    let again = shell
        .run(&["link", "del", "counter", "wasi:keyvalue"])
        .await;
    assert_eq!(again.code, Some(3), "{again:?}");
}

#[tokio::test]
async fn spy_prints_the_events_a_scale_a_link_put_and_a_label_cause() {
    init_logging();
    let nats = NatsServer::start().await;
    let host = HostProcess::start(&nats.url(), "default", &[], &[]).await;
    let shell = cli(&nats.url(), "default");
    shell
        .run(&["config", "put", "counter-bucket", "bucket=counters"])
        .await
        .ok();
    shell
        .run(&[
            "provider",
            "start",
            "builtin://keyvalue-nats",
            "--id",
            "kv-nats",
        ])
        .await
        .ok();
    let counter = readme_component("counter");
    shell
        .run(&["component", "start", &counter, "--id", "counter"])
        .await
        .ok();

    // trellis spy, in another terminal.
    let mut spy = shell.spawn(&["spy"]);
    spy.wait_for_stderr("that it watches", PATIENCE, |l| {
        l.contains("watching lattice `default`")
    })
    .await;

    shell
        .run(&["component", "scale", "counter", "--replicas", "3"])
        .await
        .ok();
    let line = spy
        .wait_for_stdout("the scale", PATIENCE, |l| {
            l.contains("component_scaled") && l.contains("counter replicas=3")
        })
        .await;
    assert!(line.contains("counter.wasm"), "{line}");

    shell.run(&LINK_COUNTER_TO_KV).await.ok();
    let line = spy
        .wait_for_stdout("the link put", PATIENCE, |l| l.contains("link_set"))
        .await;
    assert!(
        line.contains("counter -> kv-nats wasi:keyvalue/{atomics,store} (default)"),
        "{line}"
    );

    shell
        .run(&["label", "put", host.id(), "zone=north"])
        .await
        .ok();
    let line = spy
        .wait_for_stdout("the label", PATIENCE, |l| l.contains("labels_changed"))
        .await;
    assert!(line.contains("zone=north"), "{line}");

    // Nothing it printed was unreadable, and it stops when killed.
    assert!(!spy.stdout().contains("unreadable"), "{}", spy.stdout());
    spy.signal(libc::SIGKILL);
    spy.wait(PATIENCE).await;
}
