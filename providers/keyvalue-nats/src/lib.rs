//! `wasi:keyvalue` on NATS JetStream key-value buckets, on the lattice's own NATS system.
//!
//! Which bucket a call uses: the link's target config key `bucket`; else the identifier the
//! component gave `open`; else the provider's own config key `bucket`. A bucket that does
//! not exist is created (history 1). Keys must be valid NATS key-value keys (letters,
//! digits and `-/_=.`, not starting or ending with `.`). Counters are decimal text,
//! incremented with compare-and-set on the key's revision, so concurrent increments from
//! any number of provider instances never lose an update.
//!
//! Built into a host as `builtin://keyvalue-nats` ([`run`]) or run as the executable
//! `trellis-provider-keyvalue-nats`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures::TryStreamExt as _;
use trellis_provider::{Call, CancellationToken, ProviderContext, ProviderEnv};
use trellis_provider_keyvalue::{
    counter, Backend, Error, KeyResponse, KeyValueProvider, PAGE_SIZE,
};

/// The name hosts start this provider by (`builtin://keyvalue-nats`).
pub const BUILTIN_NAME: &str = "keyvalue-nats";

/// The config key naming the bucket.
pub const BUCKET: &str = "bucket";

/// Compare-and-set attempts of one `increment` before giving up.
const MAX_CAS_ATTEMPTS: usize = 10_000;

/// Runs the provider until `shutdown` (as a host's built-in, or from the executable).
pub async fn run(env: ProviderEnv, shutdown: CancellationToken) -> anyhow::Result<()> {
    trellis_provider::run_builtin(env, shutdown, provider()).await?;
    Ok(())
}

/// The provider, for `trellis_provider::run_main` or `run_with`.
pub fn provider() -> KeyValueProvider<NatsBackend> {
    KeyValueProvider::new(NatsBackend::default())
}

/// JetStream key-value buckets on the provider's NATS connection, opened (or created) on
/// first use and kept open.
#[derive(Default)]
pub struct NatsBackend {
    js: OnceLock<jetstream::Context>,
    buckets: Mutex<HashMap<String, kv::Store>>,
}

/// One open bucket.
pub struct NatsBucket {
    name: String,
    kv: kv::Store,
}

fn valid_bucket(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn check_key(key: &str) -> Result<(), Error> {
    let ok = !key.is_empty()
        && !key.starts_with('.')
        && !key.ends_with('.')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-/_=.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "key {key:?} cannot be stored in a NATS key-value bucket: keys may only hold \
             letters, digits and -/_=. and may not start or end with '.'"
        )))
    }
}

impl NatsBackend {
    /// The bucket a call uses, or why the link cannot be served.
    fn bucket_name(
        ctx: &ProviderContext,
        call: &Call,
        identifier: &str,
    ) -> anyhow::Result<Result<String, Error>> {
        if let Some(name) = call.config(BUCKET) {
            anyhow::ensure!(
                valid_bucket(name),
                "{}: target config `{BUCKET}` = {name:?} is not a NATS bucket name \
                 (letters, digits, '-' and '_')",
                call.describe_link()
            );
            return Ok(Ok(name.to_string()));
        }
        if !identifier.is_empty() {
            return Ok(if valid_bucket(identifier) {
                Ok(identifier.to_string())
            } else {
                Err(Error::NoSuchStore)
            });
        }
        match ctx.config().get(BUCKET) {
            Some(name) if valid_bucket(name) => Ok(Ok(name.clone())),
            Some(name) => anyhow::bail!(
                "provider `{}`: its config `{BUCKET}` = {name:?} is not a NATS bucket name",
                ctx.provider_id()
            ),
            None => anyhow::bail!(
                "{}: no bucket to use: the link's target config has no `{BUCKET}` key and the \
                 component opened the empty identifier (set one with `trellis config put NAME \
                 {BUCKET}=BUCKET` and link with `--target-config NAME`)",
                call.describe_link()
            ),
        }
    }

    async fn store(&self, ctx: &ProviderContext, name: &str) -> Result<kv::Store, Error> {
        if let Some(store) = self.cached(name) {
            return Ok(store);
        }
        let js = self.js.get_or_init(|| ctx.subjects().jetstream(ctx.nats()));
        let store = trellis_lattice::kv::open_bucket(
            js,
            name,
            "wasi:keyvalue bucket (Trellis keyvalue-nats)",
            1,
        )
        .await
        .map_err(|e| Error::Other(e.to_string()))?;
        if let Ok(mut buckets) = self.buckets.lock() {
            buckets.insert(name.to_string(), store.clone());
        }
        Ok(store)
    }

    fn cached(&self, name: &str) -> Option<kv::Store> {
        self.buckets.lock().ok()?.get(name).cloned()
    }

    /// A failed operation: forget the bucket (it may have been deleted) and say what failed.
    fn failed(&self, bucket: &NatsBucket, what: &str, err: impl std::fmt::Display) -> Error {
        if let Ok(mut buckets) = self.buckets.lock() {
            buckets.remove(&bucket.name);
        }
        Error::Other(format!("NATS bucket {}: {what}: {err}", bucket.name))
    }
}

impl Backend for NatsBackend {
    type Bucket = NatsBucket;

    async fn open(
        &self,
        ctx: &ProviderContext,
        call: &Call,
        identifier: &str,
    ) -> anyhow::Result<Result<NatsBucket, Error>> {
        let name = match Self::bucket_name(ctx, call, identifier)? {
            Ok(name) => name,
            Err(err) => return Ok(Err(err)),
        };
        Ok(self
            .store(ctx, &name)
            .await
            .map(|kv| NatsBucket { name, kv }))
    }

    async fn get(&self, bucket: &NatsBucket, key: &str) -> Result<Option<Bytes>, Error> {
        check_key(key)?;
        bucket
            .kv
            .get(key)
            .await
            .map_err(|e| self.failed(bucket, &format!("get {key:?}"), e))
    }

    async fn set(&self, bucket: &NatsBucket, key: &str, value: Bytes) -> Result<(), Error> {
        check_key(key)?;
        bucket
            .kv
            .put(key, value)
            .await
            .map(|_| ())
            .map_err(|e| self.failed(bucket, &format!("set {key:?}"), e))
    }

    async fn delete(&self, bucket: &NatsBucket, key: &str) -> Result<(), Error> {
        check_key(key)?;
        bucket
            .kv
            .delete(key)
            .await
            .map_err(|e| self.failed(bucket, &format!("delete {key:?}"), e))
    }

    async fn exists(&self, bucket: &NatsBucket, key: &str) -> Result<bool, Error> {
        Ok(self.get(bucket, key).await?.is_some())
    }

    async fn list_keys(
        &self,
        bucket: &NatsBucket,
        cursor: Option<u64>,
    ) -> Result<KeyResponse, Error> {
        let keys = bucket
            .kv
            .keys()
            .await
            .map_err(|e| self.failed(bucket, "list keys", e))?;
        let mut keys: Vec<String> = keys
            .try_collect()
            .await
            .map_err(|e| self.failed(bucket, "list keys", e))?;
        keys.sort_unstable();
        Ok(page(keys, cursor))
    }

    async fn increment(&self, bucket: &NatsBucket, key: &str, delta: u64) -> Result<u64, Error> {
        check_key(key)?;
        for attempt in 0..MAX_CAS_ATTEMPTS {
            let entry = bucket
                .kv
                .entry(key)
                .await
                .map_err(|e| self.failed(bucket, &format!("read counter {key:?}"), e))?;
            let (current, revision) = match entry {
                Some(e) if e.operation == kv::Operation::Put => {
                    (counter::decode(key, &e.value)?, e.revision)
                }
                // Absent, or deleted (revision of the delete marker).
                Some(e) => (0, e.revision),
                None => (0, 0),
            };
            let next = counter::add(key, current, delta)?;
            match bucket.kv.update(key, counter::encode(next), revision).await {
                Ok(_) => return Ok(next),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    // Someone else incremented meanwhile; read again. Back off a little
                    // under heavy contention.
                    if attempt >= 8 {
                        let jitter = rand_jitter(attempt);
                        tokio::time::sleep(jitter).await;
                    }
                }
                Err(e) => return Err(self.failed(bucket, &format!("increment {key:?}"), e)),
            }
        }
        Err(Error::Other(format!(
            "NATS bucket {}: increment {key:?}: gave up after {MAX_CAS_ATTEMPTS} conflicting updates",
            bucket.name
        )))
    }
}

/// A pseudo-random pause of up to a few milliseconds, growing with the attempt number.
fn rand_jitter(attempt: usize) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let cap_us = (attempt.min(20) as u64) * 250;
    Duration::from_micros(u64::from(nanos) % cap_us.max(1))
}

/// One page of `keys` (sorted) from offset `cursor`.
fn page(keys: Vec<String>, cursor: Option<u64>) -> KeyResponse {
    let start = usize::try_from(cursor.unwrap_or(0))
        .unwrap_or(usize::MAX)
        .min(keys.len());
    let end = start.saturating_add(PAGE_SIZE).min(keys.len());
    KeyResponse {
        cursor: (end < keys.len()).then_some(end as u64),
        keys: keys[start..end].to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys() {
        assert!(valid_bucket("counts_A-1"));
        assert!(!valid_bucket(""));
        assert!(!valid_bucket("a.b"));
        assert!(check_key("hits").is_ok());
        assert!(check_key("a/b=c.d_e-f").is_ok());
        assert!(check_key("").is_err());
        assert!(check_key(".x").is_err());
        assert!(check_key("a b").is_err());
        assert!(check_key("a*").is_err());
    }

    #[test]
    fn pages() {
        let keys: Vec<String> = (0..2500).map(|i| format!("k{i:04}")).collect();
        let first = page(keys.clone(), None);
        assert_eq!(first.keys.len(), PAGE_SIZE);
        assert_eq!(first.cursor, Some(1000));
        let last = page(keys.clone(), Some(2000));
        assert_eq!(last.keys.len(), 500);
        assert_eq!(last.cursor, None);
        let beyond = page(keys, Some(99_999));
        assert!(beyond.keys.is_empty() && beyond.cursor.is_none());
        assert_eq!(page(vec![], None).cursor, None);
    }
}
