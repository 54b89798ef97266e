//! [`LatticeClient`]: the typed way to talk to a lattice, used by the CLI, the deployment
//! manager and the tests.

mod apps;
#[cfg(feature = "clap")]
mod args;
mod call;
mod connect;
mod gpio;
mod hosts;
mod links;
mod tls;
mod violations;

use std::collections::HashMap;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt as _;
use serde::{de::DeserializeOwned, Serialize};

#[cfg(feature = "clap")]
pub use args::NatsArgs;
pub use connect::{connect, connect_options, connect_watched, refusal, NatsAuth, NatsOptions};
pub use hosts::Placement;
pub use tls::NatsTls;
pub use violations::{Action, Denials, Violation, Violations};

use crate::control::Reply;
use crate::error::{Error, Result};
use crate::event::CloudEvent;
use crate::rpc::{Invoker, InvokerConfig};
use crate::server::checks::Check;

use crate::subject::Subjects;
use crate::trace::TraceContext;

/// Timeouts of a [`LatticeClient`].
#[derive(Clone, Copy, Debug)]
pub struct ClientConfig {
    /// Ordinary control requests.
    pub request_timeout: Duration,
    /// Requests that fetch and compile a component or start a provider.
    pub scale_timeout: Duration,
    /// How long broadcasts (ping, auction) collect answers at most.
    pub collect_timeout: Duration,
    /// A broadcast stops collecting once no new answer came for this long.
    pub collect_quiet: Duration,
    pub invoker: InvokerConfig,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(5),
            scale_timeout: Duration::from_secs(120),
            collect_timeout: Duration::from_secs(2),
            collect_quiet: Duration::from_millis(300),
            invoker: InvokerConfig::default(),
        }
    }
}

/// A client of one lattice.
pub struct LatticeClient {
    nats: async_nats::Client,
    subjects: Subjects,
    config: ClientConfig,
    invoker: tokio::sync::OnceCell<Invoker>,
    descriptions: std::sync::Mutex<HashMap<String, crate::control::ComponentDescription>>,
    store: tokio::sync::OnceCell<crate::kv::LatticeStore>,
    /// The connection's permission violations, which fail a request at once.
    violations: Option<Violations>,
}

impl LatticeClient {
    /// A client of `lattice` over an existing NATS connection.
    pub fn new(nats: async_nats::Client, lattice: &str) -> Result<Self> {
        Self::with_config(nats, lattice, ClientConfig::default())
    }

    pub fn with_config(
        nats: async_nats::Client,
        lattice: &str,
        config: ClientConfig,
    ) -> Result<Self> {
        crate::id::validate_lattice(lattice)?;
        Ok(Self {
            nats,
            subjects: Subjects::new(lattice),
            config,
            invoker: tokio::sync::OnceCell::new(),
            descriptions: Default::default(),
            store: tokio::sync::OnceCell::new(),
            violations: None,
        })
    }

    /// The same client, failing a request the server refuses by permissions at once (with
    /// one line naming the user and the subject) instead of at its timeout. `violations`
    /// must be those of this client's connection ([`connect_watched`]).
    pub fn with_violations(mut self, violations: Violations) -> Self {
        self.violations = Some(violations);
        self
    }

    /// Runs `sent` (something published on `subject`), failing it at once if the server
    /// refuses the publish or the reply inbox's subscription.
    async fn unless_refused<T>(
        &self,
        subject: &str,
        sent: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let Some(violations) = &self.violations else {
            return sent.await;
        };
        let mut denials = violations.listen();
        // The muxed inbox and per-request inboxes share the client's prefix.
        let inbox = self.nats.new_inbox();
        let prefix = inbox.rsplit_once('.').map_or("_INBOX.", |(p, _)| p);
        let prefix = prefix.to_string();
        tokio::select! {
            out = sent => out,
            refused = denials.refused(subject, &prefix) => Err(refused),
        }
    }

    /// The same client, reaching the lattice's state in JetStream domain `domain` (from a
    /// leaf node: the hub's domain).
    pub fn with_js_domain(mut self, domain: Option<String>) -> Result<Self> {
        if let Some(d) = &domain {
            crate::id::validate_js_domain(d)?;
        }
        self.subjects = self.subjects.with_js_domain(domain);
        Ok(self)
    }

    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    pub fn lattice(&self) -> &str {
        self.subjects.lattice()
    }

    pub fn settings(&self) -> &ClientConfig {
        &self.config
    }

    /// A request's payload, checked by the rules servers apply and against the size the
    /// NATS server accepts, before anything is sent.
    fn payload<Req: Serialize + Check>(&self, body: &Req) -> Result<Vec<u8>> {
        body.check()?;
        let payload = serde_json::to_vec(body).map_err(|e| Error::malformed("request", e))?;
        let max = self.nats.server_info().max_payload;
        if max > 0 && payload.len() > max {
            return Err(Error::invalid(
                "request",
                &format!("{} bytes", payload.len()),
                format!("is larger than the {max} bytes the NATS server accepts in one message"),
            ));
        }
        Ok(payload)
    }

    /// Sends a control request and parses the reply's data.
    pub async fn request<Req: Serialize + Check, Resp: DeserializeOwned>(
        &self,
        subject: String,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp> {
        let payload = self.payload(body)?;
        let what = subject.clone();
        let headers = TraceContext::headers_of(TraceContext::current());
        let request = async_nats::Request::new()
            .payload(payload.into())
            .headers(headers)
            .timeout(Some(timeout));
        let sent = async {
            self.nats
                .send_request(subject, request)
                .await
                .map_err(|e| match e.kind() {
                    async_nats::RequestErrorKind::TimedOut => Error::Timeout {
                        what: format!("a reply on {what}"),
                        after: timeout,
                    },
                    async_nats::RequestErrorKind::NoResponders => Error::NoResponders(what.clone()),
                    _ => Error::nats(e),
                })
        };
        let msg = self.unless_refused(&what, sent).await?;
        Reply::<Resp>::parse(&msg.payload)?.into_result()
    }

    /// Publishes a request to every host and collects the replies: until every live host
    /// answered (their number read first from [`crate::presence`]), otherwise (no count, or
    /// a counted host silent) within the collect window.
    pub async fn collect<Req: Serialize + Check, Resp: DeserializeOwned>(
        &self,
        subject: String,
        body: &Req,
    ) -> Result<Vec<Resp>> {
        let payload = self.payload(body)?;
        let what = subject.clone();
        self.unless_refused(&what, self.collect_replies(subject, payload))
            .await
    }

    async fn collect_replies<Resp: DeserializeOwned>(
        &self,
        subject: String,
        payload: Vec<u8>,
    ) -> Result<Vec<Resp>> {
        // Read beside the broadcast, not before it: a count that is slow or refused only
        // leaves the broadcast to its window.
        let count = crate::presence::live_hosts(&self.nats, &self.subjects);
        tokio::pin!(count);
        let (mut live, mut counting) = (None, true);
        let inbox = self.nats.new_inbox();
        let mut sub = self
            .nats
            .subscribe(inbox.clone())
            .await
            .map_err(Error::nats)?;
        self.nats
            .publish_with_reply_and_headers(
                subject,
                inbox,
                TraceContext::headers_of(TraceContext::current()),
                payload.into(),
            )
            .await
            .map_err(Error::nats)?;
        let deadline = tokio::time::Instant::now() + self.config.collect_timeout;
        let mut out = Vec::new();
        let mut answered = 0u64;
        loop {
            if live.is_some_and(|n| n > 0 && answered >= n) {
                break;
            }
            // Wait the whole window for a first answer, then only while answers keep coming.
            let wait_until = if answered == 0 {
                deadline
            } else {
                deadline.min(tokio::time::Instant::now() + self.config.collect_quiet)
            };
            let next = tokio::time::timeout_at(wait_until, sub.next());
            let msg = tokio::select! {
                n = &mut count, if counting => {
                    (live, counting) = (n, false);
                    continue;
                }
                msg = next => msg,
            };
            let Ok(Some(msg)) = msg else {
                break;
            };
            if msg.status.is_some() {
                // "no responders" and other status messages carry no answer.
                continue;
            }
            // A refusal (an auction a host does not match) is an answer too.
            answered += 1;
            match Reply::<Resp>::parse(&msg.payload).and_then(Reply::into_result) {
                Ok(r) => out.push(r),
                Err(err) => tracing::debug!(%err, "ignoring a failed reply to a broadcast"),
            }
        }
        Ok(out)
    }

    /// Every event of the lattice, as it happens. Malformed events are skipped.
    pub async fn watch_events(&self) -> Result<BoxStream<'static, CloudEvent>> {
        let sub = self
            .nats
            .subscribe(self.subjects.events_wildcard())
            .await
            .map_err(Error::nats)?;
        Ok(sub
            .filter_map(|msg| async move {
                match CloudEvent::parse(&msg.payload) {
                    Ok(ev) => Some(ev),
                    Err(err) => {
                        tracing::debug!(%err, subject = %msg.subject, "skipping malformed event");
                        None
                    }
                }
            })
            .boxed())
    }

    async fn invoker(&self) -> Result<&Invoker> {
        self.invoker
            .get_or_try_init(|| {
                Invoker::new(
                    self.nats.clone(),
                    self.subjects.clone(),
                    self.config.invoker,
                )
            })
            .await
    }
}
