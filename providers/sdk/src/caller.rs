//! Calling a component's exports from a provider (the reverse direction of a link: a
//! messaging provider delivering a message, a server handing on a request), through
//! `wit-bindgen-wrpc` import bindings of the component's interface.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use trellis_lattice::rpc::{CallContext, CallError, CallReader, CallWriter, Invoker};

/// How long a caller that found no instance on its own host goes straight to the others.
const NOT_LOCAL_FOR: Duration = Duration::from_secs(5);

/// Prefer the component's instances on one host.
struct Local {
    /// An invoker that gives up at once when nobody answers.
    invoker: Arc<Invoker>,
    host_id: String,
    not_here_until: Mutex<Option<Instant>>,
}

/// A wRPC client whose calls go to one component, with the lattice's headers (source, link,
/// trace) from the [`CallContext`] each call is given.
#[derive(Clone)]
pub struct Caller {
    invoker: Arc<Invoker>,
    target: Arc<str>,
    local: Option<Arc<Local>>,
}

impl Caller {
    pub fn new(invoker: Arc<Invoker>, target: &str) -> Self {
        Self {
            invoker,
            target: target.into(),
            local: None,
        }
    }

    /// Calls the component's instances on `host_id` when it has any (on its host-scoped
    /// subjects, which hosts serve for message handlers), any instance otherwise.
    /// `impatient` must not wait for responders (`no_responders_patience` zero).
    pub fn preferring_host(mut self, impatient: Arc<Invoker>, host_id: &str) -> Self {
        self.local = Some(Arc::new(Local {
            invoker: impatient,
            host_id: host_id.to_string(),
            not_here_until: Mutex::new(None),
        }));
        self
    }

    /// The component called.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The local instances, unless they were found missing a moment ago.
    fn local(&self) -> Option<&Local> {
        let local = self.local.as_deref()?;
        let away = local
            .not_here_until
            .lock()
            .ok()
            .and_then(|t| *t)
            .is_some_and(|until| Instant::now() < until);
        (!away).then_some(local)
    }
}

impl wrpc_transport::Invoke for Caller {
    type Context = CallContext;
    type Outgoing = CallWriter;
    type Incoming = CallReader;

    async fn invoke<P>(
        &self,
        cx: CallContext,
        instance: &str,
        func: &str,
        params: Bytes,
        _paths: impl AsRef<[P]> + Send,
    ) -> anyhow::Result<(CallWriter, CallReader)>
    where
        P: AsRef<[Option<usize>]> + Send + Sync,
    {
        if let Some(local) = self.local() {
            let here = local
                .invoker
                .invoke_on(
                    &self.target,
                    Some(&local.host_id),
                    &cx,
                    instance,
                    func,
                    params.clone(),
                )
                .await;
            match here {
                Ok(call) => return Ok(call),
                // Not on this host (a partition only says so too): the queue group may
                // still have an instance within reach.
                Err(CallError::NoResponders { .. } | CallError::Partitioned { .. }) => {
                    if let Ok(mut t) = local.not_here_until.lock() {
                        *t = Some(Instant::now() + NOT_LOCAL_FOR);
                    }
                }
                Err(other) => return Err(other.into()),
            }
        }
        Ok(self
            .invoker
            .invoke(&self.target, &cx, instance, func, params)
            .await?)
    }
}
