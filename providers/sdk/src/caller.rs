//! Calling a component's exports from a provider (the reverse direction of a link: a
//! messaging provider delivering a message, a server handing on a request), through
//! `wit-bindgen-wrpc` import bindings of the component's interface.

use std::sync::Arc;

use bytes::Bytes;
use trellis_lattice::rpc::{CallContext, CallReader, CallWriter, Invoker};

/// A wRPC client whose calls go to one component, with the lattice's headers (source, link,
/// trace) from the [`CallContext`] each call is given.
#[derive(Clone)]
pub struct Caller {
    invoker: Arc<Invoker>,
    target: Arc<str>,
}

impl Caller {
    pub fn new(invoker: Arc<Invoker>, target: &str) -> Self {
        Self {
            invoker,
            target: target.into(),
        }
    }

    /// The component called.
    pub fn target(&self) -> &str {
        &self.target
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
        Ok(self
            .invoker
            .invoke(&self.target, &cx, instance, func, params)
            .await?)
    }
}
