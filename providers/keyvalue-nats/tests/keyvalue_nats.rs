//! keyvalue-nats against a real `nats-server -js`, called as a linked component's host
//! calls it.

use std::time::Duration;

use async_nats::jetstream;
use trellis_lattice::rpc::CallError;
use trellis_provider::testing::{call_failure, RunningProvider, TestLattice};
use trellis_provider_keyvalue::testing::{
    check_concurrent_increments, check_counters, check_store, ok, Kv, KvError,
};

const KV: &str = "kv-nats";
const PACKAGE: (&str, &str) = ("wasi", "keyvalue");
const INTERFACES: &[&str] = &["store", "atomics", "batch"];

async fn start(lattice: &TestLattice) -> RunningProvider {
    lattice
        .start_provider(KV, &[], trellis_provider_keyvalue_nats::run)
        .await
}

/// The value of `key` in NATS bucket `bucket`, read directly.
async fn in_nats(lattice: &TestLattice, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let js = jetstream::new(lattice.nats.clone());
    let kv = js.get_key_value(bucket).await.expect("bucket exists");
    kv.get(key).await.expect("kv get").map(|b| b.to_vec())
}

/// The message of a call's remote failure.
fn remote_error(err: &anyhow::Error) -> String {
    match call_failure(err) {
        Some(CallError::Remote(report)) => report.message.clone(),
        other => panic!("expected an error report from the provider, got {other:?}: {err:#}"),
    }
}

#[tokio::test]
async fn store_and_counters_land_in_the_linked_bucket() {
    let lattice = TestLattice::start().await;
    lattice
        .put_config("counter-kv", &[("bucket", "counter_data")])
        .await;
    lattice
        .put_link(
            "counter",
            "default",
            KV,
            PACKAGE,
            INTERFACES,
            &["counter-kv"],
        )
        .await;
    let provider = start(&lattice).await;
    let client = lattice.client(KV, Some("counter"), None).await;

    // The link's bucket wins over the identifier the component opens.
    let kv = ok("open", Kv::open(&client, "ignored").await);
    check_store(&kv).await;
    check_counters(&kv).await;
    assert_eq!(
        in_nats(&lattice, "counter_data", "hits").await.as_deref(),
        Some(&b"42"[..])
    );
    let js = jetstream::new(lattice.nats.clone());
    assert!(
        js.get_key_value("ignored").await.is_err(),
        "no bucket named after the identifier"
    );
    provider.stop().await.expect("provider stops cleanly");
}

#[tokio::test]
async fn concurrent_increments_lose_nothing_across_instances() {
    let lattice = TestLattice::start().await;
    lattice.put_config("counts", &[("bucket", "counts")]).await;
    lattice
        .put_link("counter", "default", KV, PACKAGE, INTERFACES, &["counts"])
        .await;
    // Two instances in the provider's queue group share the calls.
    let _a = start(&lattice).await;
    let _b = start(&lattice).await;
    let client = lattice.client(KV, Some("counter"), None).await;
    let kv = ok("open", Kv::open(&client, "").await);
    check_concurrent_increments(&kv, "hits", 4, 50).await;
    assert_eq!(
        in_nats(&lattice, "counts", "hits").await.as_deref(),
        Some(&b"200"[..])
    );
}

#[tokio::test]
async fn links_with_different_config_are_kept_apart() {
    let lattice = TestLattice::start().await;
    lattice
        .put_config("bucket-a", &[("bucket", "bucket_a")])
        .await;
    lattice
        .put_config("bucket-b", &[("bucket", "bucket_b")])
        .await;
    lattice
        .put_link("app-a", "default", KV, PACKAGE, INTERFACES, &["bucket-a"])
        .await;
    lattice
        .put_link("app-b", "default", KV, PACKAGE, INTERFACES, &["bucket-b"])
        .await;
    // A second link of app-a, by name, with its own bucket.
    lattice
        .put_link("app-a", "cache", KV, PACKAGE, INTERFACES, &["bucket-b"])
        .await;
    let _provider = start(&lattice).await;
    let a = lattice.client(KV, Some("app-a"), None).await;
    let b = a.with(Some("app-b"), None);
    let a_cache = a.with(Some("app-a"), Some("cache"));

    let kv_a = ok("open a", Kv::open(&a, "").await);
    let kv_b = ok("open b", Kv::open(&b, "").await);
    let kv_a_cache = ok("open a cache", Kv::open(&a_cache, "").await);
    ok("set a", kv_a.set("shared-key", b"from a").await);
    ok("set b", kv_b.set("shared-key", b"from b").await);
    assert_eq!(
        ok("get a", kv_a.get("shared-key").await).as_deref(),
        Some(&b"from a"[..])
    );
    assert_eq!(
        ok("get b", kv_b.get("shared-key").await).as_deref(),
        Some(&b"from b"[..])
    );
    assert_eq!(
        ok("get a cache", kv_a_cache.get("shared-key").await).as_deref(),
        Some(&b"from b"[..]),
        "app-a's `cache` link uses bucket_b"
    );
    assert_eq!(ok("incr a", kv_a.increment("n", 1).await), 1);
    assert_eq!(ok("incr b", kv_b.increment("n", 10).await), 10);
    assert_eq!(
        in_nats(&lattice, "bucket_a", "shared-key").await.as_deref(),
        Some(&b"from a"[..])
    );
    assert_eq!(
        in_nats(&lattice, "bucket_b", "shared-key").await.as_deref(),
        Some(&b"from b"[..])
    );
    // A handle is only a name: app-b using the handle app-a got still works in app-b's bucket.
    assert_eq!(
        ok("b through a's handle", kv_a.through(&b).get("n").await).as_deref(),
        Some(&b"10"[..])
    );
}

#[tokio::test]
async fn the_identifier_names_the_bucket_when_the_link_does_not() {
    let lattice = TestLattice::start().await;
    lattice
        .put_link("app", "default", KV, PACKAGE, INTERFACES, &[])
        .await;
    let _provider = start(&lattice).await;
    let client = lattice.client(KV, Some("app"), None).await;
    let kv = ok("open", Kv::open(&client, "by_identifier").await);
    ok("set", kv.set("k", b"v").await);
    assert_eq!(
        in_nats(&lattice, "by_identifier", "k").await.as_deref(),
        Some(&b"v"[..])
    );
    // Not a bucket name: the interface's own error.
    assert!(matches!(
        Kv::open(&client, "not a bucket!").await,
        Ok(Err(KvError::NoSuchStore))
    ));
    // Empty identifier and no bucket anywhere: the link is not set up; say so.
    let err = Kv::open(&client, "").await.err().expect("open fails");
    let msg = remote_error(&err);
    assert!(
        msg.contains("no bucket to use") && msg.contains("`app`"),
        "{msg}"
    );
    // Keys NATS cannot hold are the interface's error, not a transport failure.
    match kv.set("a key with spaces", b"v").await {
        Ok(Err(KvError::Other(msg))) => assert!(msg.contains("cannot be stored"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unlinked_calls_and_missing_config_fail_clearly() {
    let lattice = TestLattice::start().await;
    lattice
        .put_link(
            "app",
            "default",
            KV,
            PACKAGE,
            INTERFACES,
            &["does-not-exist"],
        )
        .await;
    let _provider = start(&lattice).await;

    let stranger = lattice.client(KV, Some("stranger"), None).await;
    let err = Kv::open(&stranger, "x")
        .await
        .err()
        .expect("unlinked open fails");
    let msg = remote_error(&err);
    assert!(
        msg.contains("no link named `default` from `stranger` to `kv-nats` for wasi:keyvalue"),
        "{msg}"
    );

    let anonymous = stranger.with(None, None);
    let msg = remote_error(
        &Kv::open(&anonymous, "x")
            .await
            .err()
            .expect("anonymous fails"),
    );
    assert!(msg.contains("trellis-source"), "{msg}");

    let wrong_name = stranger.with(Some("app"), Some("other"));
    let msg = remote_error(
        &Kv::open(&wrong_name, "x")
            .await
            .err()
            .expect("wrong link name"),
    );
    assert!(msg.contains("no link named `other` from `app`"), "{msg}");

    let app = stranger.with(Some("app"), None);
    let msg = remote_error(&Kv::open(&app, "x").await.err().expect("missing config"));
    assert!(
        msg.contains("names target config `does-not-exist` that does not exist"),
        "{msg}"
    );
    // Once the config exists, the same link works.
    lattice
        .put_config("does-not-exist", &[("bucket", "now_exists")])
        .await;
    let kv = ok("open after config put", Kv::open(&app, "x").await);
    ok("set", kv.set("k", b"v").await);
    assert_eq!(
        in_nats(&lattice, "now_exists", "k").await.as_deref(),
        Some(&b"v"[..])
    );
}

#[tokio::test]
async fn link_and_config_changes_apply_to_the_next_call() {
    let lattice = TestLattice::start().await;
    let _provider = start(&lattice).await;
    // A link put after the provider started works at once, even before its watch sees it.
    lattice.put_config("cfg", &[("bucket", "first")]).await;
    lattice
        .put_link("app", "default", KV, PACKAGE, INTERFACES, &["cfg"])
        .await;
    let client = lattice.client(KV, Some("app"), None).await;
    let kv = ok("open new link", Kv::open(&client, "").await);
    ok("set first", kv.set("k", b"1").await);
    assert_eq!(
        in_nats(&lattice, "first", "k").await.as_deref(),
        Some(&b"1"[..])
    );

    // Changing the config moves later calls to the new bucket.
    lattice.put_config("cfg", &[("bucket", "second")]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        ok("set", kv.set("k", b"2").await);
        let js = jetstream::new(lattice.nats.clone());
        if js.get_key_value("second").await.is_ok() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "config change not applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        in_nats(&lattice, "second", "k").await.as_deref(),
        Some(&b"2"[..])
    );

    // Deleting or retargeting a link is covered by the grace tests below.
}

#[tokio::test]
async fn health_checks_answer_and_shutdown_is_clean() {
    let lattice = TestLattice::start().await;
    let provider = start(&lattice).await;
    let report = lattice
        .health(&provider.host_id, &provider.provider_id)
        .await
        .expect("health answer");
    assert!(report.healthy);
    let host = provider.host_id.clone();
    provider.stop().await.expect("clean stop");
    assert!(
        lattice.health(&host, KV).await.is_err(),
        "a stopped provider answers nothing"
    );
    let client = lattice.client(KV, Some("app"), None).await;
    let err = Kv::open(&client, "x").await.err().expect("nobody serves");
    assert!(
        matches!(call_failure(&err), Some(CallError::NoResponders { .. })),
        "{err:#}"
    );
}

/// The executable a host spawns: settings from `TRELLIS_*`, clean exit on SIGTERM.
#[tokio::test]
async fn executable_serves_and_stops_on_sigterm() {
    use trellis_lattice::provider::env;
    let lattice = TestLattice::start().await;
    lattice.put_config("exe", &[("bucket", "from_exe")]).await;
    lattice
        .put_link("app", "default", "kv-exe", PACKAGE, INTERFACES, &["exe"])
        .await;
    let mut child =
        tokio::process::Command::new(env!("CARGO_BIN_EXE_trellis-provider-keyvalue-nats"))
            .env(env::NATS_URL, lattice.server.url())
            .env(env::LATTICE, &lattice.name)
            .env(env::PROVIDER_ID, "kv-exe")
            .env(env::HOST_ID, "exe-host")
            .env(env::LOG, "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawning the provider executable");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while lattice.health("exe-host", "kv-exe").await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "executable never answered health checks"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = lattice.client("kv-exe", Some("app"), None).await;
    let kv = ok("open", Kv::open(&client, "").await);
    assert_eq!(ok("increment", kv.increment("n", 7).await), 7);
    assert_eq!(
        in_nats(&lattice, "from_exe", "n").await.as_deref(),
        Some(&b"7"[..])
    );

    let pid = child.id().expect("pid") as i32;
    // SAFETY: sending a signal to a child process we spawned.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("exits within 15s of SIGTERM")
        .expect("wait");
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn executable_without_settings_fails_with_one_line() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_trellis-provider-keyvalue-nats"))
        .env_clear()
        .output()
        .await
        .expect("running the provider executable");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("TRELLIS_NATS_URL"), "{stderr}");
}

/// Starts the provider with this retarget grace and three links from `app`, `gone` and
/// `marker`; then retargets `app`'s link away, deletes `gone`'s and waits until the
/// provider's link watch has seen both (ordering, not time: see [`watch_caught_up`]).
async fn links_changed_under(lattice: &TestLattice, grace: Duration) -> (Kv, Kv, RunningProvider) {
    lattice.put_config("cfg", &[("bucket", "grace")]).await;
    let link = lattice
        .put_link("app", "default", KV, PACKAGE, INTERFACES, &["cfg"])
        .await;
    let gone = lattice
        .put_link("gone", "default", KV, PACKAGE, INTERFACES, &["cfg"])
        .await;
    let provider = lattice
        .start_provider(KV, &[], move |env, shutdown| async move {
            let options = trellis_provider::RunOptions {
                retarget_grace: grace,
                ..Default::default()
            };
            let provider = trellis_provider_keyvalue_nats::provider();
            Ok(trellis_provider::run_with(env, shutdown, provider, options).await?)
        })
        .await;
    let app = ok(
        "open app",
        Kv::open(&lattice.client(KV, Some("app"), None).await, "").await,
    );
    let stale = ok(
        "open gone",
        Kv::open(&lattice.client(KV, Some("gone"), None).await, "").await,
    );
    ok("set", app.set("k", b"before").await);
    ok("get gone", stale.get("k").await);

    let mut moved = link.clone();
    moved.target_id = "elsewhere".into();
    lattice.store.put_link(&moved).await.expect("retarget");
    lattice
        .store
        .delete_link(&gone.key())
        .await
        .expect("delete link");
    watch_caught_up(lattice).await;
    (app, stale, provider)
}

/// Changes a marker link after every other link change and waits until the provider's calls
/// follow it: the link watch delivers changes in order, so it has then seen the earlier
/// ones too. The deadline only stops a hung test.
async fn watch_caught_up(lattice: &TestLattice) {
    lattice.put_config("m1", &[("bucket", "marker-1")]).await;
    lattice.put_config("m2", &[("bucket", "marker-2")]).await;
    let marker = lattice
        .put_link("marker", "default", KV, PACKAGE, INTERFACES, &["m1"])
        .await;
    let kv = ok(
        "open marker",
        Kv::open(&lattice.client(KV, Some("marker"), None).await, "").await,
    );
    ok("set marker", kv.set("seen", b"1").await);
    let mut changed = marker.clone();
    changed.target_config = vec!["m2".into()];
    lattice.store.put_link(&changed).await.expect("marker");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while in_nats_if_any(lattice, "marker-2", "seen").await.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the provider never saw the marker link change"
        );
        ok("set marker", kv.set("seen", b"2").await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Like [`in_nats`], but a bucket that does not exist yet is simply empty.
async fn in_nats_if_any(lattice: &TestLattice, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let js = jetstream::new(lattice.nats.clone());
    let kv = js.get_key_value(bucket).await.ok()?;
    kv.get(key).await.expect("kv get").map(|b| b.to_vec())
}

/// Calls a host sent before it saw a link retargeted or deleted still find the link for the
/// retarget grace period, after the provider itself has seen the change.
#[tokio::test]
async fn retargeted_and_deleted_links_serve_stragglers_within_the_grace() {
    let lattice = TestLattice::start().await;
    let (app, gone, _provider) = links_changed_under(&lattice, Duration::from_secs(600)).await;
    assert_eq!(
        ok("straggler", app.get("k").await).as_deref(),
        Some(&b"before"[..])
    );
    ok("straggler on a deleted link", gone.get("k").await);
}

/// Once the grace is over the provider refuses both, naming the new target or the missing
/// link.
#[tokio::test]
async fn retargeted_and_deleted_links_are_refused_after_the_grace() {
    let lattice = TestLattice::start().await;
    let (app, gone, _provider) = links_changed_under(&lattice, Duration::ZERO).await;
    let msg = remote_error(&app.get("k").await.expect_err("refused after the grace"));
    assert!(msg.contains("that link targets `elsewhere`"), "{msg}");
    let msg = remote_error(&gone.get("k").await.expect_err("deleted link refused"));
    assert!(
        msg.contains("no link named `default` from `gone` to `kv-nats`"),
        "{msg}"
    );
}
