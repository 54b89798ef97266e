//! keyvalue-redis against real `redis-server`s and a real `nats-server -js`, called as a
//! linked component's host calls it.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use trellis_provider::testing::{
    call_failure, free_port, require_program, wait_for_port, CallError, RunningProvider,
    TestLattice,
};
use trellis_provider_keyvalue::testing::{
    check_concurrent_increments, check_counters, check_store, ok, Kv, KvError,
};

const KV: &str = "kv-redis";
const PACKAGE: (&str, &str) = ("wasi", "keyvalue");
const INTERFACES: &[&str] = &["store", "atomics", "batch"];

/// A `redis-server` on a free loopback port without persistence, killed on drop.
struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    async fn start() -> Self {
        let bin = require_program("redis-server", "apt-get install redis-server");
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temp dir for redis-server");
            let port = free_port();
            let mut child = Command::new(&bin)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting redis-server");
            if wait_for_port(&mut child, port, Duration::from_secs(10)).await {
                return Self {
                    child,
                    port,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The value of `key`, read directly.
    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let client = redis::Client::open(self.url()).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connecting to the test redis-server");
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("redis GET")
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn start(lattice: &TestLattice) -> RunningProvider {
    lattice
        .start_provider(KV, &[], trellis_provider_keyvalue_redis::run)
        .await
}

fn remote_error(err: &anyhow::Error) -> String {
    match call_failure(err) {
        Some(CallError::Remote(report)) => report.message.clone(),
        other => panic!("expected an error report from the provider, got {other:?}: {err:#}"),
    }
}

#[tokio::test]
async fn store_and_counters_land_in_redis() {
    let redis = RedisServer::start().await;
    let lattice = TestLattice::start().await;
    lattice.put_config("redis", &[("url", &redis.url())]).await;
    lattice
        .put_link("counter", "default", KV, PACKAGE, INTERFACES, &["redis"])
        .await;
    let provider = start(&lattice).await;
    let client = lattice.client(KV, Some("counter"), None).await;

    let whole = ok("open", Kv::open(&client, "").await);
    check_store(&whole).await;
    let prefixed = ok("open prefixed", Kv::open(&client, "counters").await);
    check_counters(&prefixed).await;
    // The identifier is a key prefix.
    assert_eq!(
        redis.get("counters:hits").await.as_deref(),
        Some(&b"42"[..])
    );
    assert_eq!(redis.get("hits").await, None);
    assert_eq!(
        whole.all_keys().await.expect("list"),
        vec!["counters:fresh", "counters:hits", "counters:text"]
    );
    assert_eq!(
        prefixed.all_keys().await.expect("list prefixed"),
        vec!["fresh", "hits", "text"]
    );
    provider.stop().await.expect("provider stops cleanly");
}

#[tokio::test]
async fn concurrent_increments_lose_nothing_across_instances() {
    let redis = RedisServer::start().await;
    let lattice = TestLattice::start().await;
    lattice.put_config("redis", &[("url", &redis.url())]).await;
    lattice
        .put_link("counter", "default", KV, PACKAGE, INTERFACES, &["redis"])
        .await;
    let _a = start(&lattice).await;
    let _b = start(&lattice).await;
    let client = lattice.client(KV, Some("counter"), None).await;
    let kv = ok("open", Kv::open(&client, "").await);
    check_concurrent_increments(&kv, "hits", 4, 50).await;
    assert_eq!(redis.get("hits").await.as_deref(), Some(&b"200"[..]));
}

#[tokio::test]
async fn links_with_different_config_are_kept_apart() {
    let redis_a = RedisServer::start().await;
    let redis_b = RedisServer::start().await;
    let lattice = TestLattice::start().await;
    lattice
        .put_config("redis-a", &[("url", &redis_a.url())])
        .await;
    lattice
        .put_config("redis-b", &[("url", &redis_b.url())])
        .await;
    lattice
        .put_link("app-a", "default", KV, PACKAGE, INTERFACES, &["redis-a"])
        .await;
    lattice
        .put_link("app-b", "default", KV, PACKAGE, INTERFACES, &["redis-b"])
        .await;
    let _provider = start(&lattice).await;
    let a = lattice.client(KV, Some("app-a"), None).await;
    let b = a.with(Some("app-b"), None);
    let kv_a = ok("open a", Kv::open(&a, "").await);
    let kv_b = ok("open b", Kv::open(&b, "").await);
    ok("set a", kv_a.set("shared-key", b"from a").await);
    ok("set b", kv_b.set("shared-key", b"from b").await);
    assert_eq!(ok("incr a", kv_a.increment("n", 1).await), 1);
    assert_eq!(ok("incr b", kv_b.increment("n", 10).await), 10);
    assert_eq!(
        ok("get a", kv_a.get("shared-key").await).as_deref(),
        Some(&b"from a"[..])
    );
    assert_eq!(
        ok("get b", kv_b.get("shared-key").await).as_deref(),
        Some(&b"from b"[..])
    );
    assert_eq!(
        redis_a.get("shared-key").await.as_deref(),
        Some(&b"from a"[..])
    );
    assert_eq!(
        redis_b.get("shared-key").await.as_deref(),
        Some(&b"from b"[..])
    );
    assert_eq!(redis_a.get("n").await.as_deref(), Some(&b"1"[..]));
    assert_eq!(redis_b.get("n").await.as_deref(), Some(&b"10"[..]));
}

#[tokio::test]
async fn set_up_problems_are_reported_and_backend_failures_are_wit_errors() {
    let mut redis = RedisServer::start().await;
    let lattice = TestLattice::start().await;
    lattice.put_config("no-url", &[("other", "x")]).await;
    lattice
        .put_config("bad-url", &[("url", "http://example.com")])
        .await;
    lattice
        .put_config(
            "closed",
            &[("url", &format!("redis://127.0.0.1:{}", free_port()))],
        )
        .await;
    lattice.put_config("ok", &[("url", &redis.url())]).await;
    lattice
        .put_link("no-url", "default", KV, PACKAGE, INTERFACES, &["no-url"])
        .await;
    lattice
        .put_link("bad-url", "default", KV, PACKAGE, INTERFACES, &["bad-url"])
        .await;
    lattice
        .put_link("closed", "default", KV, PACKAGE, INTERFACES, &["closed"])
        .await;
    lattice
        .put_link("missing", "default", KV, PACKAGE, INTERFACES, &["nope"])
        .await;
    lattice
        .put_link("ok", "default", KV, PACKAGE, INTERFACES, &["ok"])
        .await;
    let _provider = start(&lattice).await;
    let client = lattice.client(KV, None, None).await;

    let msg = remote_error(
        &Kv::open(&client.with(Some("no-url"), None), "")
            .await
            .err()
            .expect("no url"),
    );
    assert!(
        msg.contains("no Redis to use") && msg.contains("`no-url`"),
        "{msg}"
    );
    let msg = remote_error(
        &Kv::open(&client.with(Some("bad-url"), None), "")
            .await
            .err()
            .expect("bad url"),
    );
    assert!(msg.contains("is not a Redis URL"), "{msg}");
    let msg = remote_error(
        &Kv::open(&client.with(Some("missing"), None), "")
            .await
            .err()
            .expect("missing config"),
    );
    assert!(
        msg.contains("names target config `nope` that does not exist"),
        "{msg}"
    );
    let msg = remote_error(
        &Kv::open(&client.with(Some("stranger"), None), "")
            .await
            .err()
            .expect("unlinked"),
    );
    assert!(
        msg.contains("no link named `default` from `stranger` to `kv-redis`"),
        "{msg}"
    );

    // A Redis nobody listens on: the component hears it through the interface.
    match Kv::open(&client.with(Some("closed"), None), "").await {
        Ok(Err(KvError::Other(msg))) => assert!(msg.contains("cannot connect to Redis"), "{msg}"),
        other => panic!(
            "open against a closed port: {:?}",
            other.map(|r| r.map(|_| ()))
        ),
    }
    // Redis going away after a bucket was opened: the same.
    let kv = ok("open", Kv::open(&client.with(Some("ok"), None), "").await);
    ok("set", kv.set("k", b"v").await);
    redis.kill();
    match kv.get("k").await {
        Ok(Err(KvError::Other(msg))) => {
            assert!(msg.contains("Redis at redis://127.0.0.1"), "{msg}")
        }
        other => panic!("get with Redis down: {other:?}"),
    }
}

#[tokio::test]
async fn health_checks_answer() {
    let lattice = TestLattice::start().await;
    let provider = start(&lattice).await;
    let report = lattice
        .health(&provider.host_id, &provider.provider_id)
        .await
        .expect("health answer");
    assert!(report.healthy);
    provider.stop().await.expect("clean stop");
}
