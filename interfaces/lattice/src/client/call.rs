//! Calling component exports with JSON arguments.

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::control::{ComponentDescription, DescribeComponent};
use crate::error::{Error, Result};
use crate::id;
use crate::rpc::{CallContext, CallError, CallReader};
use crate::trace::TraceContext;
use crate::value::{decode_results, encode_params};

use super::LatticeClient;

impl LatticeClient {
    /// The signatures of a running component's exports, from any host that runs it (cached
    /// until a call finds the types changed or the client scales the component).
    pub async fn describe(&self, component_id: &str) -> Result<ComponentDescription> {
        id::validate_component_id(component_id)?;
        if let Some(d) = self
            .descriptions
            .lock()
            .ok()
            .and_then(|d| d.get(component_id).cloned())
        {
            return Ok(d);
        }
        let desc = self.describe_uncached(component_id).await?;
        if let Ok(mut d) = self.descriptions.lock() {
            d.insert(component_id.to_string(), desc.clone());
        }
        Ok(desc)
    }

    /// [`Self::describe`], asked of a host now.
    pub async fn describe_uncached(&self, component_id: &str) -> Result<ComponentDescription> {
        id::validate_component_id(component_id)?;
        self.request(
            self.subjects.component_describe(component_id),
            &DescribeComponent {
                component_id: component_id.to_string(),
            },
            self.config.request_timeout,
        )
        .await
        .map_err(|e| match e {
            Error::NoResponders(_) => Error::Call(CallError::NoResponders {
                target: component_id.to_string(),
                lattice: self.lattice().to_string(),
            }),
            other => other,
        })
    }

    /// Calls `function` of `component_id` with JSON arguments and returns the result as JSON:
    /// the value for one result, an array for several, `null` for none.
    pub async fn call(
        &self,
        component_id: &str,
        function: &str,
        args: &[serde_json::Value],
    ) -> Result<serde_json::Value> {
        self.call_in_trace(component_id, function, args, TraceContext::current())
            .await
    }

    /// Like [`Self::call`], as part of an existing trace (none: the callee starts one).
    pub async fn call_in_trace(
        &self,
        component_id: &str,
        function: &str,
        args: &[serde_json::Value],
        trace: Option<TraceContext>,
    ) -> Result<serde_json::Value> {
        let desc = self.describe(component_id).await?;
        let sig = desc.function(function)?;
        if let Some(what) = sig.unsupported() {
            return Err(Error::invalid(
                "function",
                function,
                format!("its signature uses {what}, which cannot be passed as JSON ({sig})"),
            ));
        }
        let params: bytes::Bytes = encode_params(sig, args).map_err(CallError::from)?.into();
        let invoker = self.invoker().await?;
        let timeout = invoker.config().timeout;
        let cx = CallContext::external(trace);
        let call = async {
            loop {
                let (mut tx, mut rx) = invoker
                    .invoke(component_id, &cx, &sig.instance, &sig.name, params.clone())
                    .await?;
                tx.shutdown()
                    .await
                    .map_err(|e| CallError::transport(component_id, e))?;
                let mut buf = Vec::new();
                match rx.read_to_end(&mut buf).await {
                    Ok(_) => return Ok::<_, CallError>(buf),
                    Err(e) => {
                        let failure = CallReader::failure(&e);
                        // A host that died before sending anything back: send the call to
                        // another host (at-least-once when a host is lost mid-call).
                        if matches!(failure, Some(CallError::CalleeLost { .. }))
                            && rx.received() == 0
                        {
                            tracing::debug!(component_id, "callee lost; calling again");
                            continue;
                        }
                        return Err(match failure {
                            Some(CallError::Remote(report)) => CallError::Remote(report.clone()),
                            Some(CallError::CalleeLost { target }) => CallError::CalleeLost {
                                target: target.clone(),
                            },
                            _ => CallError::transport(component_id, e),
                        });
                    }
                }
            }
        };
        let bytes =
            tokio::time::timeout(timeout, call)
                .await
                .map_err(|_| CallError::Timeout {
                    target: component_id.to_string(),
                    after: timeout,
                })??;
        decode_results(sig, &bytes).map_err(|e| {
            // The component may have been replaced by one with other types.
            if let Ok(mut d) = self.descriptions.lock() {
                d.remove(component_id);
            }
            Error::Call(CallError::Value(e))
        })
    }
}
