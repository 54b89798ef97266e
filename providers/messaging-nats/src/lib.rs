//! `trellis:messaging` over NATS subjects (`builtin://messaging-nats`, or this crate's
//! executable).
//!
//! A topic is a NATS subject, taken as it is (`factory.line1.temp`; `trellis/demo/button`
//! is one token). The content type travels as the `Content-Type` header, metadata as the
//! other headers, the sender's trace as `traceparent`. Delivery is core NATS: at most once,
//! in order per subject, and every instance of the provider shares one queue group per link
//! so each message reaches the component once.
//!
//! Link config (target config for `producer`, source config for `incoming-handler`):
//! `url` (`nats://`, `tls://`, `ws://` or `wss://`: a NATS server other than the
//! lattice's; without one, or with a `url` of another scheme such as an MQTT broker's, the
//! lattice's own connection), `user` + `password` or `token` for it, and `subscriptions`,
//! `queue`, `concurrency` (see `trellis-provider-messaging`).

mod outbox;
mod receipts;
mod subject;

use std::collections::HashMap;
use std::str::FromStr as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_nats::header::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use futures::StreamExt as _;
use trellis_lattice::trace::{TraceContext, TRACEPARENT};
use trellis_provider::{CancellationToken, Config, ProviderContext, ProviderEnv};
use trellis_provider_messaging::config::ConfigError;
use trellis_provider_messaging::{
    Error, Incoming, Message, MessagingProvider, Subscribe, Transport,
};

pub use outbox::{OutboxConfig, MESSAGE_ID};
pub use subject::{check_filter, check_publish};

/// How long a publish may wait for the server to confirm it.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long connecting to a server a link names may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Distinct servers (by URL and credentials) one provider keeps connections to.
pub const MAX_CONNECTIONS: usize = 32;

const CONTENT_TYPE: &str = "Content-Type";

/// Runs the provider inside a host until `shutdown`.
pub async fn run(env: ProviderEnv, shutdown: CancellationToken) -> anyhow::Result<()> {
    trellis_provider::run_builtin(env, shutdown, provider()).await?;
    Ok(())
}

/// The provider, for `trellis_provider::run_main` or `run_with`.
pub fn provider() -> MessagingProvider<NatsTransport> {
    MessagingProvider::new(NatsTransport::default())
}

/// A server a link names, with its credentials.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Server {
    url: String,
    user: Option<String>,
    password: Option<String>,
    token: Option<String>,
}

impl Server {
    /// The server a link's config names. A `url` of another scheme (`mqtt://`) is not
    /// for this provider: the lattice's NATS is used, so one named config serves a link
    /// whichever messaging provider it targets.
    fn of(config: &Config) -> Option<Self> {
        let get = |k: &str| {
            config
                .get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let url = get("url").filter(|u| is_nats_url(u))?;
        Some(Self {
            url,
            user: get("user"),
            password: get("password"),
            token: get("token"),
        })
    }

    async fn connect(&self) -> Result<async_nats::Client, String> {
        let mut options = async_nats::ConnectOptions::new()
            .connection_timeout(CONNECT_TIMEOUT)
            .name("trellis-provider-messaging-nats");
        if let (Some(u), Some(p)) = (&self.user, &self.password) {
            options = options.user_and_password(u.clone(), p.clone());
        }
        if let Some(t) = &self.token {
            options = options.token(t.clone());
        }
        // The error names the URL, never the credentials.
        match tokio::time::timeout(CONNECT_TIMEOUT, options.connect(self.url.as_str())).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(format!("cannot connect to NATS at {}: {e}", self.url)),
            Err(_) => Err(format!("cannot connect to NATS at {}: timed out", self.url)),
        }
    }
}

fn is_nats_url(url: &str) -> bool {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    matches!(scheme.as_deref(), Some("nats" | "tls" | "ws" | "wss"))
}

/// The lattice's own NATS connection, and one per other server a link names.
#[derive(Default)]
pub struct NatsTransport {
    lattice: OnceLock<async_nats::Client>,
    others: tokio::sync::Mutex<HashMap<Server, async_nats::Client>>,
    outboxes: outbox::Outboxes,
    /// Names this provider instance in forwarded messages; tells a partition apart.
    origin: OnceLock<outbox::Origin>,
    stop: CancellationToken,
}

impl NatsTransport {
    async fn client(&self, config: &Config) -> Result<(async_nats::Client, String), String> {
        let Some(server) = Server::of(config) else {
            return self
                .lattice
                .get()
                .cloned()
                .map(|c| (c, "the lattice's NATS".to_string()))
                .ok_or_else(|| "the provider has not started".to_string());
        };
        let mut others = self.others.lock().await;
        if let Some(c) = others.get(&server) {
            return Ok((c.clone(), server.url.clone()));
        }
        if others.len() >= MAX_CONNECTIONS {
            return Err(format!(
                "more than {MAX_CONNECTIONS} NATS servers named by links"
            ));
        }
        let client = server.connect().await?;
        others.insert(server.clone(), client.clone());
        Ok((client, server.url))
    }
}

fn headers_of(message: &Message) -> Result<HeaderMap, Error> {
    let mut headers = HeaderMap::new();
    let bad = |what: &str| Error::Other(format!("{what} cannot be a NATS header"));
    if let Some(ct) = &message.content_type {
        let value = HeaderValue::from_str(ct).map_err(|_| bad("the content type"))?;
        headers.insert(CONTENT_TYPE, value);
    }
    for (k, v) in &message.metadata {
        // The transport's own headers (an outbox's topic, a forwarded message's id).
        if k.to_ascii_lowercase().starts_with("trellis-") {
            return Err(Error::Other(format!(
                "metadata key {k:?}: keys starting with `Trellis-` are reserved"
            )));
        }
        let name = HeaderName::from_str(k).map_err(|_| bad(&format!("metadata key {k:?}")))?;
        let value = HeaderValue::from_str(v)
            .map_err(|_| bad(&format!("the value of metadata key {k:?}")))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// A received NATS message as the component sees it.
fn incoming_of(msg: async_nats::Message, filter: &Arc<str>) -> Incoming {
    let mut content_type = None;
    let mut trace = None;
    let mut metadata = Vec::new();
    if let Some(headers) = &msg.headers {
        for (name, values) in headers.iter() {
            let name: &str = name.as_ref();
            for value in values {
                if name.eq_ignore_ascii_case(CONTENT_TYPE) {
                    content_type = Some(value.as_str().to_string());
                } else if name.eq_ignore_ascii_case(MESSAGE_ID) {
                    // The transport's own: not the sender's metadata.
                } else if name.eq_ignore_ascii_case(TRACEPARENT) {
                    trace = TraceContext::parse(value.as_str());
                } else {
                    metadata.push((name.to_string(), value.as_str().to_string()));
                }
            }
        }
    }
    Incoming {
        message: Message {
            topic: msg.subject.to_string(),
            data: msg.payload,
            content_type,
            metadata,
        },
        filter: filter.clone(),
        trace,
        ack: None,
    }
}

impl Transport for NatsTransport {
    const SYSTEM: &'static str = "nats";

    async fn status(&self) -> Option<String> {
        let outboxes = self.outboxes.summary().await;
        (!outboxes.is_empty()).then(|| {
            outboxes
                .iter()
                .map(|(name, stored, forwarded, dropped)| {
                    format!(
                        "outbox {name}: {stored} stored, {forwarded} forwarded, {dropped} dropped"
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    async fn shutdown(&self) {
        self.stop.cancel();
    }

    fn bind(&self, ctx: &ProviderContext) {
        let _ = self.lattice.set(ctx.nats().clone());
        let _ = self.origin.set(outbox::Origin {
            subjects: ctx.subjects().clone(),
            name: format!("{}.{}", ctx.host_id(), ctx.provider_id()),
            hub_probe: ctx.subjects().js_domain_probe(),
        });
    }

    async fn send(
        &self,
        config: &Config,
        message: Message,
        trace: Option<TraceContext>,
    ) -> Result<(), Error> {
        check_publish(&message.topic).map_err(Error::Other)?;
        let (client, server) = self.client(config).await.map_err(Error::Connection)?;
        if client.connection_state() != async_nats::connection::State::Connected {
            return Err(Error::Connection(format!("not connected to {server}")));
        }
        let max = client.server_info().max_payload;
        if message.data.len() > max {
            return Err(Error::MessageTooLarge(max as u64));
        }
        let mut headers = headers_of(&message)?;
        if let Some(t) = trace {
            if headers.get(TRACEPARENT).is_none() {
                t.inject(&mut headers);
            }
        }
        let outbox = OutboxConfig::of(config).map_err(|e| Error::Other(e.to_string()))?;
        if let Some(outbox) = outbox {
            let Some(mut origin) = self.origin.get().cloned() else {
                return Err(Error::Connection("the provider has not started".into()));
            };
            if Server::of(config).is_some() {
                // Another server than the lattice's: its hub is not the lattice's.
                origin.hub_probe = None;
            }
            let outbox = self
                .outboxes
                .get(&client, &server, outbox, &origin, &self.stop)
                .await?;
            let stored = outbox.store(&message.topic, headers, message.data);
            return tokio::time::timeout(SEND_TIMEOUT, stored)
                .await
                .unwrap_or(Err(Error::Timeout));
        }

        let sent = async {
            client
                .publish_with_headers(message.topic, headers, message.data)
                .await
                .map_err(|e| Error::Connection(format!("publishing to {server}: {e}")))?;
            // Returns once the server has everything sent so far.
            client
                .flush()
                .await
                .map_err(|e| Error::Connection(format!("publishing to {server}: {e}")))
        };
        tokio::time::timeout(SEND_TIMEOUT, sent)
            .await
            .unwrap_or(Err(Error::Timeout))
    }

    async fn subscribe(&self, sub: Subscribe) -> Result<(), ConfigError> {
        for t in &sub.topics {
            check_filter(t).map_err(|r| ConfigError::new("subscriptions", r))?;
        }
        let (client, server) = self
            .client(&sub.config)
            .await
            .map_err(|r| ConfigError::new("url", r))?;
        let mut streams = Vec::new();
        for topic in &sub.topics {
            let subscriber = client
                .queue_subscribe(topic.clone(), sub.group.clone())
                .await
                .map_err(|e| {
                    ConfigError::new("subscriptions", format!("subscribing on {server}: {e}"))
                })?;
            let filter: Arc<str> = topic.as_str().into();
            streams.push(subscriber.map(move |m| (m, filter.clone())).boxed());
        }
        let mut merged = futures::stream::select_all(streams);
        let (sink, stop) = (sub.sink, sub.stop);
        let receipts = receipts::Receipts::default();
        // Subscribers end (and unsubscribe) when this task drops them; the client
        // resubscribes by itself after reconnecting.
        tokio::spawn(async move {
            loop {
                let (msg, filter) = tokio::select! {
                    () = stop.cancelled() => break,
                    next = merged.next() => match next {
                        Some(next) => next,
                        None => break,
                    },
                };
                let id = msg
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(MESSAGE_ID))
                    .map(|v| v.as_str().to_string())
                    .filter(|id| id.len() <= receipts::MAX_ID_LEN);
                let (Some(id), Some(reply)) = (id, msg.reply.clone()) else {
                    // Not forwarded from an outbox: delivered as core NATS, unanswered.
                    sink.offer(incoming_of(msg, &filter));
                    continue;
                };
                match receipts.check(&id) {
                    receipts::Seen::Done => {
                        let _ = client.publish(reply, Bytes::new()).await;
                    }
                    receipts::Seen::InFlight => {}
                    receipts::Seen::New(receipt) => {
                        let mut incoming = incoming_of(msg, &filter);
                        let client = client.clone();
                        incoming.ack = Some(Box::new(move || {
                            Box::pin(async move {
                                receipt.done();
                                let _ = client.publish(reply, Bytes::new()).await;
                            })
                                as futures::future::BoxFuture<'static, ()>
                        }));
                        // Within the queue's limit: a forwarder sends again what was not
                        // answered, and nothing else bounds requests any client can send.
                        sink.offer_bounded(incoming);
                    }
                }
            }
        });
        Ok(())
    }
}

/// A link config from pairs, for this crate's tests.
#[cfg(test)]
pub(crate) fn cfg(pairs: &[(&str, &str)]) -> Config {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_nats_urls_name_another_server() {
        assert_eq!(Server::of(&cfg(&[])), None);
        assert_eq!(Server::of(&cfg(&[("url", "mqtt://127.0.0.1:1883")])), None);
        let s = Server::of(&cfg(&[("url", "nats://10.0.0.1:4222"), ("token", "t")])).unwrap();
        assert_eq!(
            (s.url.as_str(), s.token.as_deref()),
            ("nats://10.0.0.1:4222", Some("t"))
        );
        assert!(Server::of(&cfg(&[("url", "TLS://hub:4222")])).is_some());
    }
}
