//! Store and forward: sends through a link whose target config names an `outbox` are kept
//! in a JetStream stream on the server the provider is connected to (a board's leaf node,
//! with a JetStream of its own), and a forwarder hands them on, one at a time and in order,
//! to whoever subscribes beyond it, as NATS requests the receiving provider answers once its
//! component handled the message. While the leaf is cut off from its hub nothing answers;
//! the messages wait, within the outbox's budget (the oldest go first when it is full,
//! counted), and flow again when the link returns.
//!
//! Config keys (the producer link's target config): `outbox` (the name), `outbox-max-bytes`
//! (default 64 MiB), `outbox-max-messages` (default 1,000,000), `outbox-domain` (a JetStream
//! domain other than the connected server's own), `outbox-patience` (default 60 s: how long a
//! message nobody subscribes to waits while the hub is reachable before it is dropped, as a
//! core NATS message nobody subscribes to would be, so it does not hold up the rest).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::header::HeaderMap;
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use trellis_lattice::Subjects;
use trellis_provider::Config;
use trellis_provider_messaging::config::ConfigError;
use trellis_provider_messaging::Error;

mod forward;
use forward::Forwarder;

/// The header that carries a stored message's topic.
const TOPIC: &str = "Trellis-Topic";
/// The header that names a forwarded message once: a receiver that sees it again (an answer
/// lost in a cut) acknowledges without delivering twice.
pub const MESSAGE_ID: &str = "Trellis-Msg-Id";
/// How long a receiver may take to answer a forwarded message before it is sent again.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_MAX_BYTES: i64 = 64 << 20;
const DEFAULT_MAX_MESSAGES: i64 = 1_000_000;
const DEFAULT_PATIENCE: Duration = Duration::from_secs(60);

/// Where forwarded messages come from, and how to tell a partition from an absent
/// subscriber.
#[derive(Clone, Debug)]
pub struct Origin {
    /// The lattice's subjects: outboxes are named per lattice.
    pub subjects: Subjects,
    /// Names the provider instance in forwarded message ids.
    pub name: String,
    /// A subject only the hub answers (`$JS.{domain}.API.INFO`), when the lattice's state
    /// is in another JetStream domain.
    pub hub_probe: Option<String>,
}

/// What an outbox is, from a link's target config.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OutboxConfig {
    pub name: String,
    pub max_bytes: i64,
    pub max_messages: i64,
    pub domain: Option<String>,
    pub patience: Duration,
}

impl OutboxConfig {
    /// `None` when the link names no outbox.
    pub fn of(config: &Config) -> Result<Option<Self>, ConfigError> {
        let get = |k: &str| config.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let Some(name) = get("outbox") else {
            return Ok(None);
        };
        trellis_lattice::id::validate_token("outbox", name)
            .map_err(|e| ConfigError::new("outbox", e.to_string()))?;
        let number = |key: &'static str, default: i64| match get(key) {
            None => Ok(default),
            Some(v) => trellis_lattice::units::parse_bytes(v)
                .ok()
                .and_then(|n| i64::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| ConfigError::new(key, format!("{v:?} is not a positive number"))),
        };
        let domain = get("outbox-domain").map(str::to_string);
        if let Some(d) = &domain {
            trellis_lattice::id::validate_js_domain(d)
                .map_err(|e| ConfigError::new("outbox-domain", e.to_string()))?;
        }
        let patience = match get("outbox-patience") {
            None => DEFAULT_PATIENCE,
            Some(v) => humantime::parse_duration(v)
                .map_err(|e| ConfigError::new("outbox-patience", e.to_string()))?,
        };
        Ok(Some(Self {
            patience,
            name: name.to_string(),
            max_bytes: number("outbox-max-bytes", DEFAULT_MAX_BYTES)?,
            max_messages: number("outbox-max-messages", DEFAULT_MAX_MESSAGES)?,
            domain,
        }))
    }

    /// Which outbox it is (a changed budget or patience is the same outbox, reconfigured).
    fn identity(&self, server: &str) -> OutboxKey {
        (server.to_string(), self.domain.clone(), self.name.clone())
    }

    fn stream_config(&self, subjects: &Subjects) -> stream::Config {
        stream::Config {
            name: subjects.outbox_stream(&self.name),
            description: Some("Trellis messaging outbox: sends waiting to be forwarded".into()),
            subjects: vec![subjects.outbox_subject(&self.name)],
            max_bytes: self.max_bytes,
            max_messages: self.max_messages,
            discard: stream::DiscardPolicy::Old,
            // What was forwarded (acknowledged) leaves the board's storage at once.
            retention: stream::RetentionPolicy::WorkQueue,
            num_replicas: 1,
            ..Default::default()
        }
    }
}

/// What an outbox did, for the provider's health message and metrics.
#[derive(Debug, Default)]
pub struct OutboxCounters {
    pub stored: AtomicU64,
    pub forwarded: AtomicU64,
    /// Dropped by the budget before they could be forwarded (oldest first).
    pub dropped: AtomicU64,
}

/// One outbox: its stream and its forwarder.
pub struct Outbox {
    config: std::sync::Mutex<OutboxConfig>,
    name: String,
    subject: String,
    subjects: Subjects,
    js: jetstream::Context,
    /// Read by the forwarder at each decision, so a changed config takes effect at once.
    patience_ms: Arc<AtomicU64>,
    pub counters: Arc<OutboxCounters>,
}

impl Outbox {
    /// Creates (or updates the limits of) the stream and starts the forwarder.
    pub async fn open(
        client: &async_nats::Client,
        config: OutboxConfig,
        origin: &Origin,
        stop: CancellationToken,
    ) -> Result<Arc<Self>, String> {
        let js = match &config.domain {
            Some(d) => jetstream::with_domain(client.clone(), d),
            None => jetstream::new(client.clone()),
        };
        let settings = config.stream_config(&origin.subjects);
        let mut created = js
            .get_or_create_stream(settings.clone())
            .await
            .map_err(|e| format!("outbox {}: no JetStream to keep it in: {e}", config.name))?;
        let info = created
            .info()
            .await
            .map_err(|e| format!("outbox {}: {e}", config.name))?;
        if info.config.max_bytes != settings.max_bytes
            || info.config.max_messages != settings.max_messages
        {
            js.update_stream(settings)
                .await
                .map_err(|e| format!("outbox {}: cannot change its limits: {e}", config.name))?;
        }
        // Ids stay unique when a stream is deleted and made again (sequences restart).
        let epoch = info.created.unix_timestamp_nanos();
        let outbox = Arc::new(Self {
            name: config.name.clone(),
            subject: origin.subjects.outbox_subject(&config.name),
            subjects: origin.subjects.clone(),
            patience_ms: Arc::new(AtomicU64::new(config.patience.as_millis() as u64)),
            config: std::sync::Mutex::new(config),
            js,
            counters: Arc::default(),
        });
        let forwarder = Forwarder {
            client: client.clone(),
            stream: created,
            id_prefix: format!("{}.{}.{epoch}", origin.name, outbox.name),
            hub_probe: origin.hub_probe.clone(),
            patience_ms: Arc::clone(&outbox.patience_ms),
            counters: Arc::clone(&outbox.counters),
        };
        tokio::spawn(forwarder.run(stop));
        Ok(outbox)
    }

    /// Takes a link's changed budget or patience.
    async fn reconfigure(&self, config: OutboxConfig) -> Result<(), String> {
        let changed = match self.config.lock() {
            Ok(mut c) if *c != config => {
                *c = config.clone();
                true
            }
            _ => false,
        };
        if changed {
            self.patience_ms
                .store(config.patience.as_millis() as u64, Ordering::Relaxed);
            self.js
                .update_stream(config.stream_config(&self.subjects))
                .await
                .map_err(|e| format!("outbox {}: cannot change its limits: {e}", self.name))?;
        }
        Ok(())
    }

    /// Keeps a message; returns once the (local) JetStream stored it.
    pub async fn store(
        &self,
        topic: &str,
        mut headers: HeaderMap,
        data: Bytes,
    ) -> Result<(), Error> {
        headers.insert(TOPIC, topic);
        let ack = self
            .js
            .publish_with_headers(self.subject.clone(), headers, data)
            .await
            .map_err(|e| Error::Connection(format!("outbox {}: {e}", self.name)))?;
        ack.await
            .map_err(|e| Error::Connection(format!("outbox {}: not stored: {e}", self.name)))?;
        self.counters.stored.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Which outbox: server, JetStream domain, name.
type OutboxKey = (String, Option<String>, String);

/// Outboxes by config, opened on first use.
#[derive(Default)]
pub struct Outboxes {
    /// By server, domain and name.
    open: tokio::sync::Mutex<HashMap<OutboxKey, Arc<Outbox>>>,
}

impl Outboxes {
    pub async fn get(
        &self,
        client: &async_nats::Client,
        server: &str,
        config: OutboxConfig,
        origin: &Origin,
        stop: &CancellationToken,
    ) -> Result<Arc<Outbox>, Error> {
        let key = config.identity(server);
        let mut open = self.open.lock().await;
        if let Some(o) = open.get(&key) {
            let o = Arc::clone(o);
            drop(open);
            o.reconfigure(config).await.map_err(Error::Connection)?;
            return Ok(o);
        }
        let outbox = Outbox::open(client, config, origin, stop.child_token())
            .await
            .map_err(Error::Connection)?;
        open.insert(key, Arc::clone(&outbox));
        Ok(outbox)
    }

    /// `stored/forwarded/dropped` per outbox, for the health message.
    pub async fn summary(&self) -> Vec<(String, u64, u64, u64)> {
        self.open
            .lock()
            .await
            .iter()
            .map(|((_, _, name), o)| {
                (
                    name.clone(),
                    o.counters.stored.load(Ordering::Relaxed),
                    o.counters.forwarded.load(Ordering::Relaxed),
                    o.counters.dropped.load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cfg;

    #[test]
    fn outbox_config_reads_and_checks_its_keys() {
        assert_eq!(OutboxConfig::of(&cfg(&[])).unwrap(), None);
        let o = OutboxConfig::of(&cfg(&[
            ("outbox", "readings"),
            ("outbox-max-bytes", "1MiB"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            (
                o.name.as_str(),
                o.max_bytes,
                o.max_messages,
                o.domain,
                o.patience
            ),
            (
                "readings",
                1 << 20,
                DEFAULT_MAX_MESSAGES,
                None,
                DEFAULT_PATIENCE
            )
        );
        for bad in [
            &[("outbox", "a.b")][..],
            &[("outbox", "x"), ("outbox-max-messages", "0")],
            &[("outbox", "x"), ("outbox-max-bytes", "lots")],
            &[("outbox", "x"), ("outbox-domain", "a b")],
            &[("outbox", "x"), ("outbox-patience", "soon")],
        ] {
            assert!(OutboxConfig::of(&cfg(bad)).is_err(), "{bad:?}");
        }
    }
}
