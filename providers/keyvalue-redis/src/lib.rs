//! `wasi:keyvalue` on Redis.
//!
//! Which Redis a call uses: the link's target config key `url` (e.g.
//! `redis://127.0.0.1:6379`, `redis://:password@host:6379/2`, `rediss://...`), else the
//! provider's own config key `url`. The identifier a component gives `open` is a key
//! prefix: key `k` of bucket `b` is the Redis key `b:k`, and of the empty identifier just
//! `k`. Counters are the decimal text Redis's own `INCRBY` keeps (so they are limited to
//! `i64::MAX`); `list-keys` walks `SCAN` with its cursor; the batch functions are `MGET`,
//! `MSET` and `DEL`. A Redis that is down is the interface's `error::other`, not a failed
//! call.
//!
//! Built into a host as `builtin://keyvalue-redis` ([`run`]) or run as the executable
//! `trellis-provider-keyvalue-redis`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;
use trellis_provider::{Call, CancellationToken, LinkInfo, ProviderContext, ProviderEnv};
use trellis_provider_keyvalue::{
    counter, Backend, Error, KeyResponse, KeyValueProvider, PAGE_SIZE,
};

/// The name hosts start this provider by (`builtin://keyvalue-redis`).
pub const BUILTIN_NAME: &str = "keyvalue-redis";

/// The config key naming the Redis server.
pub const URL: &str = "url";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the provider until `shutdown` (as a host's built-in, or from the executable).
pub async fn run(env: ProviderEnv, shutdown: CancellationToken) -> anyhow::Result<()> {
    trellis_provider::run_builtin(env, shutdown, provider()).await?;
    Ok(())
}

/// The provider, for `trellis_provider::run_main` or `run_with`.
pub fn provider() -> KeyValueProvider<RedisBackend> {
    KeyValueProvider::new(RedisBackend::default())
}

/// Connections to the Redis servers links name, one (reconnecting) connection per URL.
#[derive(Default)]
pub struct RedisBackend {
    connections: Connections,
}

/// One connection cell per URL, shared with warm-up tasks.
type Connections = Arc<Mutex<HashMap<String, Arc<OnceCell<ConnectionManager>>>>>;

/// One bucket: a connection and a key prefix.
pub struct RedisBucket {
    conn: ConnectionManager,
    /// `identifier:` or empty.
    prefix: String,
    /// The server, for messages (without credentials).
    server: String,
}

/// `url` without the credentials it may carry.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// Escapes Redis glob characters so `prefix` matches literally in `SCAN MATCH`.
fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 2);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn key_prefix(identifier: &str) -> String {
    if identifier.is_empty() {
        String::new()
    } else {
        format!("{identifier}:")
    }
}

/// The connection to `url`, made on first use; a failed attempt is tried again on the next
/// call.
async fn connect(connections: &Connections, url: &str) -> Result<ConnectionManager, Error> {
    let cell = {
        let mut connections = connections
            .lock()
            .map_err(|_| Error::Other("connection table poisoned".into()))?;
        Arc::clone(connections.entry(url.to_string()).or_default())
    };
    cell.get_or_try_init(|| async {
        let client = redis::Client::open(url)
            .map_err(|e| Error::Other(format!("Redis at {}: {e}", redact(url))))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT)
            .set_number_of_retries(1);
        ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| Error::Other(format!("cannot connect to Redis at {}: {e}", redact(url))))
    })
    .await
    .cloned()
}

impl RedisBucket {
    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn failed(&self, what: &str, err: redis::RedisError) -> Error {
        Error::Other(format!("Redis at {}: {what}: {err}", self.server))
    }
}

impl RedisBackend {
    async fn connection(&self, url: &str) -> Result<ConnectionManager, Error> {
        connect(&self.connections, url).await
    }

    /// The Redis URL a call uses, or why the link cannot be served.
    fn url(ctx: &ProviderContext, call: &Call) -> anyhow::Result<String> {
        let url = match call.config(URL) {
            Some(url) => url.to_string(),
            None => ctx.config().get(URL).cloned().ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: no Redis to use: the link's target config has no `{URL}` key (set one \
                     with `trellis config put NAME {URL}=redis://HOST:6379` and link with \
                     `--target-config NAME`)",
                    call.describe_link()
                )
            })?,
        };
        if let Err(err) = redis::Client::open(url.as_str()) {
            anyhow::bail!(
                "{}: target config `{URL}` = {:?} is not a Redis URL: {err}",
                call.describe_link(),
                redact(&url)
            );
        }
        Ok(url)
    }
}

impl Backend for RedisBackend {
    type Bucket = RedisBucket;

    async fn open(
        &self,
        ctx: &ProviderContext,
        call: &Call,
        identifier: &str,
    ) -> anyhow::Result<Result<RedisBucket, Error>> {
        let url = Self::url(ctx, call)?;
        Ok(self.connection(&url).await.map(|conn| RedisBucket {
            conn,
            prefix: key_prefix(identifier),
            server: redact(&url),
        }))
    }

    async fn get(&self, bucket: &RedisBucket, key: &str) -> Result<Option<Bytes>, Error> {
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(bucket.key(key))
            .query_async(&mut bucket.conn.clone())
            .await
            .map_err(|e| bucket.failed(&format!("get {key:?}"), e))?;
        Ok(value.map(Bytes::from))
    }

    async fn set(&self, bucket: &RedisBucket, key: &str, value: Bytes) -> Result<(), Error> {
        redis::cmd("SET")
            .arg(bucket.key(key))
            .arg(value.as_ref())
            .query_async::<()>(&mut bucket.conn.clone())
            .await
            .map_err(|e| bucket.failed(&format!("set {key:?}"), e))
    }

    async fn delete(&self, bucket: &RedisBucket, key: &str) -> Result<(), Error> {
        redis::cmd("DEL")
            .arg(bucket.key(key))
            .query_async::<()>(&mut bucket.conn.clone())
            .await
            .map_err(|e| bucket.failed(&format!("delete {key:?}"), e))
    }

    async fn exists(&self, bucket: &RedisBucket, key: &str) -> Result<bool, Error> {
        let n: u64 = redis::cmd("EXISTS")
            .arg(bucket.key(key))
            .query_async(&mut bucket.conn.clone())
            .await
            .map_err(|e| bucket.failed(&format!("exists {key:?}"), e))?;
        Ok(n > 0)
    }

    async fn list_keys(
        &self,
        bucket: &RedisBucket,
        cursor: Option<u64>,
    ) -> Result<KeyResponse, Error> {
        let pattern = format!("{}*", glob_escape(&bucket.prefix));
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor.unwrap_or(0))
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(PAGE_SIZE)
            .query_async(&mut bucket.conn.clone())
            .await
            .map_err(|e| bucket.failed("list keys", e))?;
        let keys = keys
            .into_iter()
            .filter_map(|k| k.strip_prefix(bucket.prefix.as_str()).map(str::to_string))
            .collect();
        Ok(KeyResponse {
            keys,
            cursor: (next != 0).then_some(next),
        })
    }

    async fn increment(&self, bucket: &RedisBucket, key: &str, delta: u64) -> Result<u64, Error> {
        let Ok(by) = i64::try_from(delta) else {
            return Err(Error::Other(format!(
                "increment {key:?} by {delta}: Redis counters are limited to {}",
                i64::MAX
            )));
        };
        let result: Result<i64, _> = redis::cmd("INCRBY")
            .arg(bucket.key(key))
            .arg(by)
            .query_async(&mut bucket.conn.clone())
            .await;
        match result {
            Ok(value) => u64::try_from(value).map_err(|_| {
                Error::Other(format!(
                    "the value of key {key:?} is not a counter (it is negative: {value})"
                ))
            }),
            Err(err) if err.kind() == redis::ErrorKind::ResponseError => {
                // Not an integer, or the sum does not fit: say which, as keyvalue-nats does.
                let stored = self.get(bucket, key).await?.unwrap_or_default();
                let current = counter::decode(key, &stored)?;
                counter::add(key, current, delta)?;
                Err(bucket.failed(&format!("increment {key:?}"), err))
            }
            Err(err) => Err(bucket.failed(&format!("increment {key:?}"), err)),
        }
    }

    async fn get_many(
        &self,
        bucket: &RedisBucket,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Bytes)>>, Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for key in &keys {
            cmd.arg(bucket.key(key));
        }
        let values: Vec<Option<Vec<u8>>> = cmd
            .query_async(&mut bucket.conn.clone())
            .await
            .map_err(|e| bucket.failed("get-many", e))?;
        Ok(keys
            .into_iter()
            .zip(values)
            .map(|(k, v)| v.map(|v| (k, Bytes::from(v))))
            .collect())
    }

    async fn set_many(
        &self,
        bucket: &RedisBucket,
        key_values: Vec<(String, Bytes)>,
    ) -> Result<(), Error> {
        if key_values.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("MSET");
        for (key, value) in &key_values {
            cmd.arg(bucket.key(key)).arg(value.as_ref());
        }
        cmd.query_async::<()>(&mut bucket.conn.clone())
            .await
            .map_err(|e| bucket.failed("set-many", e))
    }

    async fn delete_many(&self, bucket: &RedisBucket, keys: Vec<String>) -> Result<(), Error> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("DEL");
        for key in &keys {
            cmd.arg(bucket.key(key));
        }
        cmd.query_async::<()>(&mut bucket.conn.clone())
            .await
            .map_err(|e| bucket.failed("delete-many", e))
    }

    /// Connects ahead of the first call (in the background), so a link moved here serves
    /// its first call fast.
    async fn link_put(&self, link: &LinkInfo) {
        let Some(url) = link.config(URL).map(str::to_string) else {
            return;
        };
        let connections = Arc::clone(&self.connections);
        let (source_id, link_name) = (link.link.source_id.clone(), link.link.name.clone());
        tokio::spawn(async move {
            if let Err(err) = connect(&connections, &url).await {
                tracing::warn!(source_id, link_name, err = ?err, "cannot connect to the link's Redis yet");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_patterns() {
        assert_eq!(key_prefix(""), "");
        assert_eq!(key_prefix("cache"), "cache:");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
        assert_eq!(
            redact("redis://:secret@host:6379/1"),
            "redis://***@host:6379/1"
        );
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
    }
}
