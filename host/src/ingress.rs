//! HTTP ingress on the host: requests for components that run here are handled in process
//! by `wasmtime-wasi-http` (a fresh instance per request, the component's limits applied);
//! requests that crossed the lattice arrive as `trellis:http/handler#handle` calls and are
//! handled the same way.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use trellis_lattice::http::{HttpRequest, HttpResponse};
use trellis_lattice::rpc::{IncomingCall, RemoteErrorKind};
use trellis_lattice::trace::TraceContext;
use trellis_provider_http_server::dispatch::{BoxError, DispatchError, ResponseBody};
use trellis_provider_http_server::LocalDispatch;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::WasiHttpView as _;
use wrpc_transport_nats::{NatsContext, Reader, SubjectWriter};

use crate::components::RunningComponent;
use crate::host::HostState;
use crate::runtime::{arm_deadline, classify, watchdog, ImportClient, OutputCapture};

/// Hands requests from the built-in HTTP server to components running on this host.
pub struct HostDispatch {
    host: Weak<HostState>,
}

impl HostDispatch {
    pub fn new(host: &Arc<HostState>) -> Self {
        Self {
            host: Arc::downgrade(host),
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
        let Some(host) = self.host.upgrade() else {
            return Err(request);
        };
        let Some(comp) = host.components.get(component_id) else {
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
        Ok(Box::pin(handle(host, comp, request)))
    }
}

/// Runs one HTTP request in a fresh instance of `comp`.
pub async fn handle<B>(
    host: Arc<HostState>,
    comp: Arc<RunningComponent>,
    request: Request<B>,
) -> Result<Response<ResponseBody>, DispatchError>
where
    B: http_body::Body<Data = Bytes, Error = ErrorCode> + Send + 'static,
{
    let Some(pre) = comp.loaded.http.clone() else {
        return Err(DispatchError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "component `{}` does not export wasi:http/incoming-handler",
                comp.id
            ),
        ));
    };
    let permit = comp
        .admit()
        .await
        .map_err(|why| DispatchError::new(StatusCode::SERVICE_UNAVAILABLE, why))?;
    let trace = request
        .headers()
        .get(trellis_lattice::trace::TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse)
        .map(|t| t.child())
        .unwrap_or_else(TraceContext::new_root);
    let ticking = host.runtime.ticker().enter();
    let limits = comp.limits();
    let limit = Duration::from_millis(limits.timeout_ms);
    let output = OutputCapture::default();
    let client = ImportClient::new(
        Arc::clone(&host.invoker),
        Arc::clone(&host.resolver),
        Arc::clone(&comp.id),
        trace,
    );
    let mut store = host
        .runtime
        .new_store(&limits, client, &output, comp.config());
    arm_deadline(&mut store, limit);
    let internal = |e: wasmtime::Error| {
        DispatchError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
    };
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let req = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, request)
        .map_err(|e| DispatchError::new(StatusCode::BAD_REQUEST, format!("{e:#}")))?;
    let out = store
        .data_mut()
        .http()
        .new_response_outparam(sender)
        .map_err(internal)?;

    // The guest runs inside this request's own task: first driven here until it sets the
    // response, then by the response body as hyper reads it (the guest may go on writing the
    // body after setting the response). No task spawn, no hand-off to another thread. The
    // instance slot, the epoch ticking and the component's drain tracking last as long as
    // the guest does.
    let id = Arc::clone(&comp.id);
    let drain = comp.tracker().token();
    let guest: GuestFuture = Box::pin(async move {
        let _permit = permit;
        let _ticking = ticking;
        let _drain = drain;
        let run = async {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        };
        let result = match tokio::time::timeout(watchdog(limit), run).await {
            Ok(r) => r,
            Err(_) => Err(wasmtime::Error::new(crate::runtime::LimitExceeded::Time {
                limit,
            })),
        };
        let printed = output.take();
        if !printed.is_empty() {
            tracing::info!(component_id = %id, trace_id = %trace.trace_id_hex(), output = %printed, "component output");
        }
        result.map_err(|e| (e, printed))
    });

    let mut guest = Some(guest);
    let mut receiver = receiver;
    let first = std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = Pin::new(&mut receiver).poll(cx) {
            return Poll::Ready(Ok(r));
        }
        match guest.as_mut().map(|g| g.as_mut().poll(cx)) {
            Some(Poll::Ready(done)) => {
                guest = None;
                Poll::Ready(Err(done))
            }
            _ => Poll::Pending,
        }
    })
    .await;
    let (answer, finished) = match first {
        Ok(answer) => (answer.map_err(|_| ()), None),
        // The guest returned: the response was set by then, or never.
        Err(done) => (receiver.try_recv().map_err(|_| ()), Some(done)),
    };
    match answer {
        Ok(Ok(resp)) => Ok(resp.map(|body| {
            GuestDrivenBody {
                body: body.map_err(|e| Box::new(e) as BoxError).boxed_unsync(),
                guest,
                failed: None,
            }
            .boxed_unsync()
        })),
        Ok(Err(code)) => Err(DispatchError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("component `{}` answered with an error: {code:?}", comp.id),
        )),
        // The response was never set: the guest failed or returned without answering.
        Err(()) => {
            let done = match (finished, guest) {
                (Some(done), _) => done,
                (None, Some(g)) => g.await,
                (None, None) => Ok(()),
            };
            let (status, message) = match done {
                Ok(()) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "component `{}` returned without setting a response",
                        comp.id
                    ),
                ),
                Err((e, printed)) => {
                    let failure = classify(&e, "request failed");
                    let status = match failure.kind {
                        RemoteErrorKind::TimeLimit => StatusCode::GATEWAY_TIMEOUT,
                        _ => StatusCode::INTERNAL_SERVER_ERROR,
                    };
                    let tail = if printed.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; the component printed: {}",
                            printed.lines().last().unwrap_or_default()
                        )
                    };
                    tracing::warn!(component_id = %comp.id, error = %failure.message, "HTTP request failed");
                    (
                        status,
                        format!("component `{}` {}{tail}", comp.id, failure.message),
                    )
                }
            };
            Err(DispatchError::new(status, message))
        }
    }
}

type GuestFuture = Pin<Box<dyn Future<Output = Result<(), (wasmtime::Error, String)>> + Send>>;

/// A response body that keeps running the guest producing it.
struct GuestDrivenBody {
    body: ResponseBody,
    guest: Option<GuestFuture>,
    /// The guest failed after sending the response head: the body must end in an error,
    /// so the client sees a broken response instead of a short one.
    failed: Option<String>,
}

impl http_body::Body for GuestDrivenBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        if let Some(guest) = self.guest.as_mut() {
            if let Poll::Ready(done) = guest.as_mut().poll(cx) {
                self.guest = None;
                if let Err((e, _)) = done {
                    let message = classify(&e, "request failed").message;
                    tracing::warn!(error = %message, "component failed while writing its response");
                    self.failed = Some(message);
                }
            }
        }
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(None) => match self.failed.take() {
                Some(message) => Poll::Ready(Some(Err(message.into()))),
                None => Poll::Ready(None),
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed.is_none() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Serves one `trellis:http/handler#handle` call: a request that crossed the lattice.
pub async fn serve_lattice(
    host: Arc<HostState>,
    comp: Arc<RunningComponent>,
    cx: NatsContext,
    mut tx: SubjectWriter,
    mut rx: Reader,
) {
    let incoming = IncomingCall::from_headers(cx.headers.as_ref());
    let result = async {
        // The request value is self-delimiting: read until it is complete (a caller need not
        // close its parameter stream when everything fit in the first message).
        let mut buf = bytes::BytesMut::new();
        let req = loop {
            let n = rx.read_buf(&mut buf).await.map_err(|e| {
                (
                    RemoteErrorKind::BadRequest,
                    format!("reading the request: {e}"),
                )
            })?;
            let so_far = Bytes::copy_from_slice(&buf);
            match HttpRequest::decode_partial(&so_far) {
                Ok(Some(req)) => break req,
                Ok(None) if n == 0 => {
                    return Err((
                        RemoteErrorKind::BadRequest,
                        "the request ended early".to_string(),
                    ))
                }
                Ok(None) => continue,
                Err(e) => return Err((RemoteErrorKind::BadRequest, e.to_string())),
            }
        };
        let mut builder = Request::builder().method(req.method.as_str()).uri(
            http::Uri::builder()
                .scheme("http")
                .authority(if req.authority.is_empty() {
                    "localhost"
                } else {
                    req.authority.as_str()
                })
                .path_and_query(req.path_with_query.as_str())
                .build()
                .map_err(|e| (RemoteErrorKind::BadRequest, format!("bad request URI: {e}")))?,
        );
        for (name, value) in &req.headers {
            builder = builder.header(name.as_str(), value.as_ref());
        }
        let request = builder
            .body(Full::new(req.body).map_err(|e| match e {}))
            .map_err(|e| (RemoteErrorKind::BadRequest, format!("bad request: {e}")))?;
        let resp = match handle(Arc::clone(&host), Arc::clone(&comp), request).await {
            Ok(r) => r,
            Err(e) => {
                let kind = match e.status {
                    StatusCode::GATEWAY_TIMEOUT => RemoteErrorKind::TimeLimit,
                    StatusCode::SERVICE_UNAVAILABLE => RemoteErrorKind::Unavailable,
                    _ => RemoteErrorKind::Trap,
                };
                return Err((kind, e.message));
            }
        };
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| {
                (
                    RemoteErrorKind::Internal,
                    format!("reading the response body: {e}"),
                )
            })?
            .to_bytes();
        let encoded = HttpResponse {
            status: parts.status.as_u16(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), Bytes::copy_from_slice(v.as_bytes())))
                .collect(),
            body,
        }
        .encode();
        Ok(encoded)
    }
    .await;
    match result {
        Ok(bytes) => {
            if let Err(err) = async {
                tx.write_all(&bytes).await?;
                tx.shutdown().await
            }
            .await
            {
                tracing::debug!(%err, "failed to send an HTTP response over the lattice");
            }
        }
        Err((kind, message)) => {
            // Report before the result stream closes (when `tx` drops).
            incoming
                .report(&host.nats, &comp.id, &host.id, kind, message)
                .await;
            drop(tx);
        }
    }
}
