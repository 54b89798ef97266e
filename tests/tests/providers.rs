//! Links and capability providers: counter on one host, key-value providers on another,
//! swapped while traffic flows; supervision of external providers; bad links and providers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use trellis_lattice::control::ScaleComponent;
use trellis_lattice::event::Event;
use trellis_lattice::inventory::ProviderHealth;
use trellis_lattice::link::{Link, LinkKey};
use trellis_lattice::LatticeClient;
use trellis_tests::{
    component_ref, init_logging, pids_with_env, wait_for, Cli, EventLog, HostProcess, NatsServer,
    RedisServer,
};

fn counter_link(target: &str, config: &str) -> Link {
    trellis_tests::counter_link("counter", target, config)
}

fn counter_key() -> LinkKey {
    counter_link("", "x").key()
}

async fn start_provider(client: &LatticeClient, host: &str, id: &str, image: &str) {
    trellis_tests::start_provider_on(client, host, id, image).await;
}

async fn start_counter(client: &LatticeClient, host: &str) {
    client
        .scale_component(
            host,
            &ScaleComponent {
                component_id: "counter".into(),
                image: component_ref("counter"),
                replicas: 16,
                config: Vec::new(),
                max_memory_bytes: None,
                timeout_ms: None,
                annotations: Default::default(),
                ..Default::default()
            },
        )
        .await
        .expect("counter starts");
}

async fn increment(client: &LatticeClient, key: &str) -> u64 {
    let v = client
        .call("counter", "increment", &[serde_json::json!(key)])
        .await
        .unwrap_or_else(|e| panic!("increment {key}: {e}"));
    v.as_u64()
        .unwrap_or_else(|| panic!("increment returned {v}"))
}

async fn nats_value(nats: &async_nats::Client, bucket: &str, key: &str) -> Option<u64> {
    let js = async_nats::jetstream::new(nats.clone());
    let kv = js.get_key_value(bucket).await.ok()?;
    let v = kv.get(key).await.ok()??;
    std::str::from_utf8(&v).ok()?.parse().ok()
}

#[tokio::test]
async fn counter_calls_a_nats_provider_on_another_host_and_survives_host_restarts() {
    init_logging();
    let nats = NatsServer::start().await;
    let mut a = HostProcess::start(&nats.url(), "kv", &[("role", "app")], &[]).await;
    let mut b = HostProcess::start(&nats.url(), "kv", &[("role", "data")], &[]).await;
    let client = nats.client("kv").await;
    let cli = Cli::new(&nats.url(), "kv");

    cli.run(&["config", "put", "counter-bucket", "bucket=counters"])
        .await
        .ok();
    cli.run(&[
        "provider",
        "start",
        "builtin://keyvalue-nats",
        "--id",
        "kv-nats",
        "--host",
        b.id(),
    ])
    .await
    .ok();
    start_counter(&client, a.id()).await;
    cli.run(&[
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
    ])
    .await
    .ok();
    let out = cli
        .run(&["call", "counter", "increment", "\"hits\""])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "1");
    let out = cli
        .run(&["call", "counter", "increment", "\"hits\""])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "2");
    assert_eq!(
        nats_value(client.nats(), "counters", "hits").await,
        Some(2),
        "the value is in the NATS bucket"
    );

    let links = cli.run(&["get", "links", "-o", "json"]).await.ok().json();
    assert_eq!(links[0]["source_id"], "counter");
    assert_eq!(links[0]["target_id"], "kv-nats");
    assert_eq!(
        links[0]["target_config"],
        serde_json::json!(["counter-bucket"])
    );
    let inv = client.inventory(b.id()).await.expect("inventory");
    assert_eq!(inv.providers[0].id, "kv-nats");
    assert_eq!(inv.providers[0].health, ProviderHealth::Healthy);

    // Restart every host: links and config live in the lattice store.
    assert!(a.terminate().await.success());
    assert!(b.terminate().await.success());
    let a = HostProcess::start(&nats.url(), "kv", &[], &[]).await;
    let b = HostProcess::start(&nats.url(), "kv", &[], &[]).await;
    assert_eq!(
        cli.run(&["get", "links", "-o", "json"]).await.ok().json(),
        links
    );
    let config = cli
        .run(&["config", "get", "counter-bucket", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(config, serde_json::json!({"bucket": "counters"}));
    start_provider(&client, b.id(), "kv-nats", "builtin://keyvalue-nats").await;
    start_counter(&client, a.id()).await;
    assert_eq!(increment(&client, "hits").await, 3);
}

#[tokio::test]
async fn swapping_nats_for_redis_under_load_fails_no_call() {
    init_logging();
    let nats = NatsServer::start().await;
    let redis = RedisServer::start().await;
    let a = HostProcess::start(&nats.url(), "swap", &[], &[]).await;
    let b = HostProcess::start(&nats.url(), "swap", &[], &[]).await;
    let client = Arc::new(nats.client("swap").await);
    client
        .put_config(
            "bucket",
            [("bucket".to_string(), "swap".to_string())].into(),
        )
        .await
        .expect("config");
    client
        .put_config("redis", [("url".to_string(), redis.url())].into())
        .await
        .expect("config");
    start_provider(&client, b.id(), "kv-nats", "builtin://keyvalue-nats").await;
    start_provider(&client, a.id(), "kv-redis", "builtin://keyvalue-redis").await;
    start_counter(&client, a.id()).await;
    client
        .put_link(counter_link("kv-nats", "bucket"))
        .await
        .expect("link");
    assert_eq!(increment(&client, "warmup").await, 1);

    // Four callers, each calling as fast as it can.
    let calls = Arc::new(AtomicU64::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut load = Vec::new();
    for _ in 0..4 {
        let (client, calls, stop) = (Arc::clone(&client), Arc::clone(&calls), stop.clone());
        load.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.is_cancelled() {
                match client
                    .call("counter", "increment", &[serde_json::json!("load")])
                    .await
                {
                    Ok(_) => {
                        calls.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failures.push(e.to_string()),
                }
            }
            failures
        }));
    }
    // Each phase lasts a number of calls, not a time: the swap happens under load however
    // slow the machine is, and the deadline only stops a hung test.
    const PHASE: u64 = 300;
    let phase_done = |from: u64| {
        let calls = Arc::clone(&calls);
        async move {
            wait_for("a phase of calls", Duration::from_secs(120), || {
                let done = calls.load(Ordering::Relaxed) >= from + PHASE;
                async move { done.then_some(()) }
            })
            .await
        }
    };
    phase_done(0).await;
    let before_swap = calls.load(Ordering::Relaxed);
    client
        .retarget_link(counter_key(), "kv-redis", Some(vec!["redis".into()]))
        .await
        .expect("retarget to redis");
    phase_done(before_swap).await;
    let during_redis = calls.load(Ordering::Relaxed);
    client
        .retarget_link(counter_key(), "kv-nats", Some(vec!["bucket".into()]))
        .await
        .expect("retarget back to nats");
    phase_done(during_redis).await;
    stop.cancel();
    let mut failures = Vec::new();
    for task in load {
        failures.extend(task.await.expect("load task"));
    }
    let total = calls.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} failed calls: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let in_redis: u64 = redis
        .get("load")
        .await
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let in_nats = nats_value(client.nats(), "swap", "load").await.unwrap_or(0);
    eprintln!("calls: {total} ({before_swap} before the swap, {during_redis} by the swap back); redis {in_redis}, nats {in_nats}");
    assert!(in_redis > 0, "writes after the swap land in redis");
    assert!(in_nats >= before_swap, "writes before the swap are in NATS");
    assert!(
        in_nats > before_swap + (total - during_redis) / 2,
        "writes after the swap back land in NATS"
    );
    assert_eq!(
        in_redis + in_nats,
        total,
        "every call incremented exactly one store"
    );
}

#[tokio::test]
async fn a_killed_external_provider_is_restarted_and_calls_resume() {
    init_logging();
    let nats = NatsServer::start().await;
    let host = HostProcess::start(
        &nats.url(),
        "ext",
        &[],
        &["--provider-health-interval", "300ms"],
    )
    .await;
    let client = nats.client("ext").await;
    let events = EventLog::start(&client).await;
    client
        .put_config("bucket", [("bucket".to_string(), "ext".to_string())].into())
        .await
        .expect("config");
    let exe = trellis_tests::bin("trellis-provider-keyvalue-nats");
    start_provider(
        &client,
        host.id(),
        "kv-ext",
        &format!("file://{}", exe.display()),
    )
    .await;
    start_counter(&client, host.id()).await;
    client
        .put_link(counter_link("kv-ext", "bucket"))
        .await
        .expect("link");
    assert_eq!(increment(&client, "n").await, 1);

    let pids = pids_with_env("TRELLIS_HOST_ID", host.id());
    assert_eq!(pids.len(), 1, "one provider process: {pids:?}");
    // SAFETY: killing the provider process the host started for this test.
    unsafe {
        libc::kill(pids[0] as libc::pid_t, libc::SIGKILL);
    }
    events
        .wait_for("the host to notice the provider died", Duration::from_secs(60), |e| {
            matches!(e, Event::ProviderHealthChanged(h) if h.provider_id == "kv-ext" && h.health == ProviderHealth::Restarting)
        })
        .await;
    let value = wait_for("calls to resume", Duration::from_secs(20), || {
        let client = &client;
        async move {
            client
                .call("counter", "increment", &[serde_json::json!("n")])
                .await
                .ok()
        }
    })
    .await;
    assert_eq!(value, 2);
    let again = pids_with_env("TRELLIS_HOST_ID", host.id());
    assert_eq!(again.len(), 1);
    assert_ne!(again, pids, "a new process");
    let healthy_again = events.typed().iter().any(|e| {
        matches!(e, Event::ProviderHealthChanged(h) if h.provider_id == "kv-ext" && h.health == ProviderHealth::Healthy)
    });
    assert!(healthy_again, "health events show it healthy again");
}

#[tokio::test]
async fn bad_links_and_providers_fail_clearly_and_disturb_nothing() {
    init_logging();
    let nats = NatsServer::start().await;
    // The host may run scripts for /bin/sh from this directory (where `quitter` goes).
    let dir = tempfile::tempdir().expect("tempdir");
    let allowed = dir.path().display().to_string();
    let host = HostProcess::start(
        &nats.url(),
        "bad",
        &[],
        &[
            "--provider-health-interval",
            "300ms",
            "--provider-dir",
            &allowed,
            "--provider-interpreter",
            "/bin/sh",
        ],
    )
    .await;
    let client = nats.client("bad").await;
    let events = EventLog::start(&client).await;
    let cli = Cli::new(&nats.url(), "bad");
    client
        .put_config("bucket", [("bucket".to_string(), "bad".to_string())].into())
        .await
        .expect("config");
    start_provider(&client, host.id(), "kv", "builtin://keyvalue-nats").await;
    start_counter(&client, host.id()).await;

    // A link for an interface counter does not import is refused.
    let err = cli
        .run(&[
            "link",
            "put",
            "counter",
            "kv",
            "wasi:keyvalue",
            "--interface",
            "batch",
        ])
        .await
        .err();
    assert!(err.contains("does not import wasi:keyvalue/batch"), "{err}");
    // A link naming config that does not exist is refused.
    let err = cli
        .run(&[
            "link",
            "put",
            "counter",
            "kv",
            "wasi:keyvalue",
            "--interface",
            "atomics",
            "--target-config",
            "nope",
        ])
        .await
        .err();
    assert!(err.contains("config `nope` does not exist"), "{err}");
    // A link to a target that is not running is allowed; calls fail clearly until it starts.
    client
        .put_link(counter_link("kv-later", "bucket"))
        .await
        .expect("link to a missing target");
    let err = client
        .call("counter", "increment", &[serde_json::json!("x")])
        .await
        .expect_err("no target yet")
        .to_string();
    assert!(err.contains("no running instance of `kv-later`"), "{err}");
    client
        .retarget_link(counter_key(), "kv", None)
        .await
        .expect("retarget to the running provider");
    assert_eq!(increment(&client, "x").await, 1);

    // A provider executable that exits at once: the start fails with its output.
    let quitter = dir.path().join("quitter.sh");
    std::fs::write(
        &quitter,
        "#!/bin/sh\necho 'cannot reach the database' >&2\nexit 3\n",
    )
    .expect("write");
    let err = cli
        .run(&[
            "provider",
            "start",
            &quitter.display().to_string(),
            "--id",
            "quitter",
            "--host",
            host.id(),
        ])
        .await
        .err();
    assert!(
        err.contains("exited") && err.contains("cannot reach the database"),
        "{err}"
    );
    events
        .wait_for(
            "provider_start_failed",
            Duration::from_secs(60),
            |e| matches!(e, Event::ProviderStartFailed(f) if f.provider_id == "quitter"),
        )
        .await;

    // A provider that never answers health checks: started, and reported as not answering.
    let mute = dir.path().join("mute.sh");
    std::fs::write(&mute, "#!/bin/sh\nexec sleep 600\n").expect("write");
    cli.run(&[
        "provider",
        "start",
        &mute.display().to_string(),
        "--id",
        "mute",
        "--host",
        host.id(),
    ])
    .await
    .ok();
    events
        .wait_for("a no-answer health event", Duration::from_secs(60), |e| {
            matches!(e, Event::ProviderHealthChanged(h) if h.provider_id == "mute" && h.health == ProviderHealth::NoAnswer)
        })
        .await;
    let inv = client.inventory(host.id()).await.expect("inventory");
    let mute_info = inv
        .providers
        .iter()
        .find(|p| p.id == "mute")
        .expect("mute listed");
    assert_eq!(mute_info.health, ProviderHealth::NoAnswer);
    cli.run(&["provider", "stop", "mute"]).await.ok();
    let err = cli
        .run(&[
            "provider",
            "start",
            "builtin://nosuch",
            "--id",
            "n",
            "--host",
            host.id(),
        ])
        .await
        .err();
    assert!(err.contains("no built-in provider named nosuch"), "{err}");

    // Nothing else was disturbed.
    assert_eq!(increment(&client, "x").await, 2);
    let err = cli.run(&["config", "del", "bucket"]).await.err();
    assert!(err.contains("used by link"), "{err}");
}
