//! A `wasi:keyvalue` client that calls a provider as a linked component's host does, and the
//! checks every key-value provider's integration tests run against it (feature `testing`).

use bytes::Bytes;
use trellis_provider::testing::LinkedClient;
use wit_bindgen_wrpc::wrpc_transport::ResourceBorrow;

/// Generated client bindings of the `wasi:keyvalue` imports.
pub mod client {
    wit_bindgen_wrpc::generate!({
        inline: "
            package trellis:keyvalue-client;

            world client {
                import wasi:keyvalue/store@0.2.0-draft;
                import wasi:keyvalue/atomics@0.2.0-draft;
                import wasi:keyvalue/batch@0.2.0-draft;
            }
        ",
        path: "../../interfaces/wit/keyvalue",
        world: "trellis:keyvalue-client/client",
        generate_all,
    });
}

use client::wasi::keyvalue::{atomics, batch, store};

pub use store::Error as KvError;

/// A call's outcome: transport failure (outer) or the interface's error (inner).
pub type KvResult<T> = anyhow::Result<Result<T, KvError>>;

/// An open bucket, reached through a [`LinkedClient`].
#[derive(Clone)]
pub struct Kv {
    pub client: LinkedClient,
    pub bucket: ResourceBorrow<store::Bucket>,
}

/// Unwraps both layers of a [`KvResult`], naming what failed.
#[track_caller]
pub fn ok<T>(what: &str, result: KvResult<T>) -> T {
    match result {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => panic!("{what}: wasi:keyvalue error {e:?}"),
        Err(e) => panic!("{what}: call failed: {e:#}"),
    }
}

impl Kv {
    pub async fn open(client: &LinkedClient, identifier: &str) -> KvResult<Self> {
        Ok(store::open(client, (), identifier).await?.map(|own| Self {
            client: client.clone(),
            bucket: own.into(),
        }))
    }

    /// The same bucket handle, called through another client (another source or link).
    pub fn through(&self, client: &LinkedClient) -> Self {
        Self {
            client: client.clone(),
            bucket: self.bucket.clone(),
        }
    }

    pub async fn get(&self, key: &str) -> KvResult<Option<Bytes>> {
        store::Bucket::get(&self.client, (), &self.bucket, key).await
    }

    pub async fn set(&self, key: &str, value: &[u8]) -> KvResult<()> {
        store::Bucket::set(
            &self.client,
            (),
            &self.bucket,
            key,
            &Bytes::copy_from_slice(value),
        )
        .await
    }

    pub async fn delete(&self, key: &str) -> KvResult<()> {
        store::Bucket::delete(&self.client, (), &self.bucket, key).await
    }

    pub async fn exists(&self, key: &str) -> KvResult<bool> {
        store::Bucket::exists(&self.client, (), &self.bucket, key).await
    }

    pub async fn list_keys(&self, cursor: Option<u64>) -> KvResult<store::KeyResponse> {
        store::Bucket::list_keys(&self.client, (), &self.bucket, cursor).await
    }

    /// Every key, following cursors.
    pub async fn all_keys(&self) -> anyhow::Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut cursor = None;
        for _ in 0..10_000 {
            let page = match self.list_keys(cursor).await? {
                Ok(page) => page,
                Err(e) => anyhow::bail!("list-keys: {e:?}"),
            };
            keys.extend(page.keys);
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => {
                    // SCAN-style cursors may repeat a key across pages.
                    keys.sort();
                    keys.dedup();
                    return Ok(keys);
                }
            }
        }
        anyhow::bail!("list-keys never ended")
    }

    pub async fn increment(&self, key: &str, delta: u64) -> KvResult<u64> {
        atomics::increment(&self.client, (), &self.bucket, key, delta).await
    }

    pub async fn get_many(&self, keys: &[&str]) -> KvResult<Vec<Option<(String, Bytes)>>> {
        batch::get_many(&self.client, (), &self.bucket, keys).await
    }

    pub async fn set_many(&self, pairs: &[(&str, &[u8])]) -> KvResult<()> {
        let values: Vec<Bytes> = pairs
            .iter()
            .map(|(_, v)| Bytes::copy_from_slice(v))
            .collect();
        let pairs: Vec<(&str, &Bytes)> = pairs.iter().map(|(k, _)| *k).zip(&values).collect();
        batch::set_many(&self.client, (), &self.bucket, &pairs).await
    }

    pub async fn delete_many(&self, keys: &[&str]) -> KvResult<()> {
        batch::delete_many(&self.client, (), &self.bucket, keys).await
    }
}

/// get/set/delete/exists, list-keys with paging and the batch functions, on a bucket that
/// starts empty.
pub async fn check_store(kv: &Kv) {
    assert_eq!(ok("get missing", kv.get("missing").await), None);
    assert!(!ok("exists missing", kv.exists("missing").await));
    ok("set", kv.set("greeting", b"hello").await);
    assert_eq!(
        ok("get", kv.get("greeting").await).as_deref(),
        Some(&b"hello"[..])
    );
    assert!(ok("exists", kv.exists("greeting").await));
    ok("overwrite", kv.set("greeting", b"").await);
    assert_eq!(
        ok("get empty", kv.get("greeting").await).as_deref(),
        Some(&b""[..])
    );
    let binary: Vec<u8> = (0..=255).collect();
    ok("set binary", kv.set("binary", &binary).await);
    assert_eq!(
        ok("get binary", kv.get("binary").await).as_deref(),
        Some(&binary[..])
    );
    ok("delete", kv.delete("greeting").await);
    assert_eq!(ok("get deleted", kv.get("greeting").await), None);
    assert!(!ok("exists deleted", kv.exists("greeting").await));
    ok("delete missing", kv.delete("greeting").await);
    ok("delete binary", kv.delete("binary").await);

    // Batch.
    ok(
        "set-many",
        kv.set_many(&[("b1", b"one"), ("b2", b"two")]).await,
    );
    let got = ok("get-many", kv.get_many(&["b1", "nope", "b2"]).await);
    assert_eq!(
        got,
        vec![
            Some(("b1".to_string(), Bytes::from_static(b"one"))),
            None,
            Some(("b2".to_string(), Bytes::from_static(b"two"))),
        ]
    );
    ok("delete-many", kv.delete_many(&["b1", "b2", "nope"]).await);
    assert_eq!(
        ok("get-many deleted", kv.get_many(&["b1", "b2"]).await),
        vec![None, None]
    );

    // list-keys pages through more keys than one page holds.
    let n = crate::PAGE_SIZE + 150;
    let expected: Vec<String> = (0..n).map(|i| format!("key-{i:05}")).collect();
    for chunk in expected.chunks(200) {
        let pairs: Vec<(&str, &[u8])> = chunk.iter().map(|k| (k.as_str(), &b"v"[..])).collect();
        ok("set-many keys", kv.set_many(&pairs).await);
    }
    let first = ok("list-keys", kv.list_keys(None).await);
    assert!(first.cursor.is_some(), "{} keys fit one page", n);
    let all = kv.all_keys().await.expect("list every key");
    assert_eq!(all, expected);
    let keys: Vec<&str> = expected.iter().map(String::as_str).collect();
    for chunk in keys.chunks(200) {
        ok("delete-many keys", kv.delete_many(chunk).await);
    }
    assert!(kv.all_keys().await.expect("list after delete").is_empty());
}

/// increment creates, adds, and shares its representation (decimal text) with get/set.
pub async fn check_counters(kv: &Kv) {
    assert_eq!(ok("increment new", kv.increment("hits", 1).await), 1);
    assert_eq!(ok("increment", kv.increment("hits", 5).await), 6);
    assert_eq!(
        ok("get counter", kv.get("hits").await).as_deref(),
        Some(&b"6"[..])
    );
    ok("set counter", kv.set("hits", b"41").await);
    assert_eq!(ok("increment after set", kv.increment("hits", 1).await), 42);
    assert_eq!(ok("increment by 0", kv.increment("fresh", 0).await), 0);
    assert_eq!(
        ok("get fresh", kv.get("fresh").await).as_deref(),
        Some(&b"0"[..])
    );
    ok("delete counter", kv.delete("fresh").await);
    assert_eq!(ok("increment deleted", kv.increment("fresh", 3).await), 3);

    ok("set text", kv.set("text", b"abc").await);
    match kv.increment("text", 1).await {
        Ok(Err(KvError::Other(msg))) => assert!(msg.contains("not a counter"), "{msg}"),
        other => panic!("increment of text: {other:?}"),
    }
    assert_eq!(
        ok("text unchanged", kv.get("text").await).as_deref(),
        Some(&b"abc"[..])
    );
}

/// `tasks` concurrent callers each increment `key` `each` times: no update is lost, every
/// call sees a distinct value, and the final value is `tasks * each`.
pub async fn check_concurrent_increments(kv: &Kv, key: &str, tasks: usize, each: usize) {
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let kv = kv.clone();
        let key = key.to_string();
        handles.push(tokio::spawn(async move {
            let mut seen = Vec::with_capacity(each);
            for _ in 0..each {
                seen.push(ok("concurrent increment", kv.increment(&key, 1).await));
            }
            seen
        }));
    }
    let mut seen = Vec::new();
    for h in handles {
        seen.extend(h.await.expect("increment task"));
    }
    seen.sort_unstable();
    let total = (tasks * each) as u64;
    assert_eq!(
        seen,
        (1..=total).collect::<Vec<_>>(),
        "every increment returns a distinct value"
    );
    let stored = ok("get after increments", kv.get(key).await);
    assert_eq!(stored.as_deref(), Some(total.to_string().as_bytes()));
}
