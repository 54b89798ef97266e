//! HTTP ingress on the host: serving HTTP requests with components that run here, whether
//! they come from the built-in HTTP server (`HostDispatch`, in the connection's own task) or
//! from a server on another host over the lattice (`serve_lattice`). Both run the request
//! through `guest::handle`, which builds the instance on the runtime's one path.
//!
//! The server itself (listening, routes, forwarding to other hosts) is the HTTP server
//! provider's; this module is what it calls, through its `LocalDispatch` seam, when the
//! component runs here.

mod guest;
pub mod lattice;

use std::sync::{Arc, Weak};

use futures::future::BoxFuture;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use trellis_provider_http_server::dispatch::{BoxError, DispatchError, ResponseBody};
use trellis_provider_http_server::LocalDispatch;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;

pub use lattice::serve_lattice;

use crate::components::Components;

/// Hands requests from the built-in HTTP server to components running on this host.
pub struct HostDispatch {
    components: Weak<Components>,
}

impl HostDispatch {
    pub fn new(components: &Arc<Components>) -> Self {
        Self {
            components: Arc::downgrade(components),
        }
    }
}

impl LocalDispatch for HostDispatch {
    fn try_local(
        &self,
        component_id: &str,
        request: Request<Incoming>,
        max_body: u64,
    ) -> Result<BoxFuture<'static, Result<Response<ResponseBody>, DispatchError>>, Request<Incoming>>
    {
        let Some(comp) = self.components.upgrade().and_then(|c| c.get(component_id)) else {
            return Err(request);
        };
        let request = request.map(move |body| {
            Limited::new(body, max_body as usize).map_err(move |e: BoxError| {
                if e.is::<http_body_util::LengthLimitError>() {
                    ErrorCode::HttpRequestBodySize(Some(max_body))
                } else {
                    match e.downcast::<hyper::Error>() {
                        Ok(h) => wasmtime_wasi_http::p2::hyper_request_error(*h),
                        Err(other) => ErrorCode::InternalError(Some(other.to_string())),
                    }
                }
            })
        });
        // The server put its own span's context on the request.
        let parent = request
            .headers()
            .get(trellis_lattice::trace::TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(trellis_lattice::trace::TraceContext::parse);
        Ok(Box::pin(guest::handle(comp, request, parent)))
    }
}
