//! The caller's side of an invocation: clear errors, and retries where they cannot run a
//! function twice.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::call::{call_headers, CallContext};
use super::error::CallError;
use super::transport::{CallReader, CallWriter, Demux};
use crate::error::{Error, Result};
use crate::subject::Subjects;

/// Timeouts of an [`Invoker`].
#[derive(Clone, Copy, Debug)]
pub struct InvokerConfig {
    /// Budget for a whole call: finding a callee and receiving its results.
    pub timeout: Duration,
    /// How long a callee may take to accept a call. A callee that has not accepted has not
    /// started running the function, so the call is safely sent again (to another member of
    /// the queue group) when this passes, e.g. after the chosen host died.
    pub accept_timeout: Duration,
    /// How long to keep retrying while nobody serves the target at all (a provider being
    /// restarted, a component being upgraded) before failing with "no responders".
    pub no_responders_patience: Duration,
}

/// How long the hub may take to answer a partition probe.
const PARTITION_PROBE_TIMEOUT: Duration = Duration::from_millis(500);

impl Default for InvokerConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            accept_timeout: Duration::from_secs(3),
            no_responders_patience: Duration::from_secs(1),
        }
    }
}

/// Invokes functions of components and providers in one lattice.
pub struct Invoker {
    nats: async_nats::Client,
    subjects: Subjects,
    config: InvokerConfig,
    demux: Demux,
}

/// The two halves of an accepted invocation.
pub type Invocation = (CallWriter, CallReader);

/// Room left in the first message for the subject, reply and headers.
const HEADROOM: usize = 4096;

impl Invoker {
    pub async fn new(
        nats: async_nats::Client,
        subjects: Subjects,
        config: InvokerConfig,
    ) -> Result<Self> {
        let demux = Demux::new(&nats).await.map_err(Error::nats)?;
        Ok(Self {
            nats,
            subjects,
            config,
            demux,
        })
    }

    pub fn config(&self) -> &InvokerConfig {
        &self.config
    }

    /// On a leaf node (the lattice's state in another JetStream domain): the domain, when
    /// the hub holding it does not answer, so "nobody serves the target" is a partition,
    /// said at once rather than after the patience for a restarting callee.
    async fn partitioned_from(&self) -> Option<String> {
        let probe = self.subjects.js_domain_probe()?;
        let asked = self.nats.request(probe, Bytes::new());
        match tokio::time::timeout(PARTITION_PROBE_TIMEOUT, asked).await {
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                self.subjects.js_domain().map(str::to_string)
            }
            // An answer (even an error) or a slow one: the hub is there, or cannot be told.
            _ => None,
        }
    }

    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// Sends an invocation of `instance`/`func` to `target` and waits until a callee accepts
    /// it. The caller then shuts the writer down (sending any parameters that did not fit in
    /// the first message) and reads the results.
    pub async fn invoke(
        &self,
        target: &str,
        cx: &CallContext,
        instance: &str,
        func: &str,
        params: Bytes,
    ) -> Result<Invocation, CallError> {
        self.invoke_on(target, None, cx, instance, func, params)
            .await
    }

    /// [`Self::invoke`], only to the instances of `target` on host `host` when one is named
    /// (see [`Subjects::invocation_on`]).
    pub async fn invoke_on(
        &self,
        target: &str,
        host: Option<&str>,
        cx: &CallContext,
        instance: &str,
        func: &str,
        params: Bytes,
    ) -> Result<Invocation, CallError> {
        let deadline = Instant::now() + self.config.timeout;
        let subject = match host {
            Some(host) => self.subjects.invocation_on(target, host, instance, func),
            None => self.subjects.invocation(target, instance, func),
        };
        let first_len = params.len().min(
            self.nats
                .server_info()
                .max_payload
                .saturating_sub(HEADROOM)
                .max(1024),
        );
        let mut no_responders_since: Option<Instant> = None;
        let mut backoff = Duration::from_millis(10);
        loop {
            let mut reg = self.demux.register();
            let headers = call_headers(cx, &reg.call_id, &self.subjects.rpc_error_inbox(&reg.rx));
            self.nats
                .publish_with_reply_and_headers(
                    subject.clone(),
                    reg.rx.clone(),
                    headers,
                    params.slice(..first_len),
                )
                .await
                .map_err(|e| CallError::transport(target, e))?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let wait = remaining.min(self.config.accept_timeout);
            let accepted = tokio::time::timeout(wait, async {
                loop {
                    match reg.messages.recv().await {
                        Some(msg) if msg.subject.as_str() == reg.rx => return Some(msg),
                        Some(_) => continue,
                        None => return None,
                    }
                }
            })
            .await;
            match accepted {
                Ok(Some(msg)) if msg.status == Some(async_nats::StatusCode::NO_RESPONDERS) => {
                    // An impatient caller (trying one host first) learns nothing from it.
                    let patient = !self.config.no_responders_patience.is_zero();
                    if patient && no_responders_since.is_none() {
                        if let Some(domain) = self.partitioned_from().await {
                            return Err(CallError::Partitioned {
                                target: target.to_string(),
                                domain,
                            });
                        }
                    }
                    let since = *no_responders_since.get_or_insert_with(Instant::now);
                    let now = Instant::now();
                    if now.duration_since(since) >= self.config.no_responders_patience
                        || now + backoff >= deadline
                    {
                        return Err(CallError::NoResponders {
                            target: target.to_string(),
                            lattice: self.subjects.lattice().to_string(),
                        });
                    }
                    // Exported as an event on the caller's span (a host lost, a component
                    // moving): target `trellis::event`.
                    tracing::debug!(target: "trellis::event", target_id = target, retry_in_ms = backoff.as_millis() as u64, "no responders; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(200));
                }
                Ok(Some(msg)) => {
                    let Some(server_rx) = msg.reply else {
                        return Err(CallError::transport(
                            target,
                            format!(
                                "callee answered without a reply subject (status {:?})",
                                msg.status
                            ),
                        ));
                    };
                    let writer =
                        CallWriter::new(self.nats.clone(), &server_rx, params.slice(first_len..));
                    let reader =
                        CallReader::new(reg, self.nats.clone(), target, server_rx.to_string());
                    return Ok((writer, reader));
                }
                Ok(None) => return Err(CallError::transport(target, "the invoker stopped")),
                Err(_elapsed) => {
                    if Instant::now() >= deadline {
                        return Err(CallError::Timeout {
                            target: target.to_string(),
                            after: self.config.timeout,
                        });
                    }
                    tracing::debug!(
                        target,
                        instance,
                        func,
                        "callee did not accept in time; sending again"
                    );
                    tracing::debug!(target: "trellis::event", target_id = target, "callee did not accept in time; sending again");
                }
            }
        }
    }
}
