//! The caller's side of an invocation: a wRPC client per target, clear errors, and retries
//! where they cannot run a function twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt as _;
use tokio::time::Instant;
use wrpc_transport::Invoke as _;

use super::errors::ErrorInbox;
use super::{call_headers, CallContext, CallError, ErrorAwareReader};
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
    nats: Arc<async_nats::Client>,
    subjects: Subjects,
    config: InvokerConfig,
    clients: tokio::sync::RwLock<HashMap<String, wrpc_transport_nats::Client>>,
    errors: Arc<ErrorInbox>,
}

/// The two halves of an accepted invocation.
pub type Invocation = (wrpc_transport_nats::ParamWriter, ErrorAwareReader);

impl Invoker {
    pub async fn new(
        nats: async_nats::Client,
        subjects: Subjects,
        config: InvokerConfig,
    ) -> crate::Result<Self> {
        let errors = ErrorInbox::new(&nats).await.map_err(crate::Error::nats)?;
        Ok(Self {
            nats: Arc::new(nats),
            subjects,
            config,
            clients: Default::default(),
            errors: Arc::new(errors),
        })
    }

    pub fn config(&self) -> &InvokerConfig {
        &self.config
    }

    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    async fn client_for(&self, target: &str) -> Result<wrpc_transport_nats::Client, CallError> {
        if let Some(c) = self.clients.read().await.get(target) {
            return Ok(c.clone());
        }
        let mut clients = self.clients.write().await;
        if let Some(c) = clients.get(target) {
            return Ok(c.clone());
        }
        let client = wrpc_transport_nats::Client::new(
            Arc::clone(&self.nats),
            self.subjects.rpc_prefix(target),
            None,
        )
        .await
        .map_err(|e| CallError::transport(target, e))?;
        clients.insert(target.to_string(), client.clone());
        Ok(client)
    }

    /// Sends an invocation of `instance`/`func` to `target` and waits until a callee accepts
    /// it. The caller then writes any remaining parameters and reads the results.
    pub async fn invoke<P>(
        &self,
        target: &str,
        cx: &CallContext,
        instance: &str,
        func: &str,
        params: Bytes,
        paths: &[P],
    ) -> Result<Invocation, CallError>
    where
        P: AsRef<[Option<usize>]> + Send + Sync,
    {
        let started = Instant::now();
        let deadline = started + self.config.timeout;
        let client = self.client_for(target).await?;
        let mut no_responders_since: Option<Instant> = None;
        let mut backoff = Duration::from_millis(10);
        loop {
            let reg = self.errors.register();
            let headers = call_headers(cx, &reg.call_id, &reg.subject);
            let (mut tx, rx) = client
                .invoke(Some(headers), instance, func, params.clone(), paths)
                .await
                .map_err(|e| CallError::transport(target, e))?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let accepted =
                tokio::time::timeout(remaining.min(self.config.accept_timeout), tx.flush()).await;
            match accepted {
                Ok(Ok(())) => {
                    return Ok((
                        tx,
                        ErrorAwareReader::new(rx, Arc::clone(&self.errors), reg.call_id),
                    ))
                }
                Ok(Err(err)) if err.kind() == std::io::ErrorKind::NotConnected => {
                    self.errors.forget(&reg.call_id);
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
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(200));
                }
                Ok(Err(err)) => {
                    self.errors.forget(&reg.call_id);
                    return Err(CallError::transport(target, err));
                }
                Err(_elapsed) => {
                    self.errors.forget(&reg.call_id);
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
                }
            }
        }
    }
}
