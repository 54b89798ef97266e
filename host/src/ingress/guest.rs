//! One HTTP request in a fresh instance of a component running here: the request body
//! streams into the guest (size-limited by the caller), the response body streams out of it
//! while the guest still runs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use trellis_lattice::rpc::RemoteErrorKind;
use trellis_lattice::trace::TraceContext;
use trellis_provider_http_server::dispatch::{BoxError, DispatchError, ResponseBody};
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::WasiHttpView as _;

use crate::components::running::RunningComponent;
use crate::runtime::{classify, Failure};

/// Runs one HTTP request in a fresh instance of `comp`.
pub async fn handle<B>(
    comp: Arc<RunningComponent>,
    request: Request<B>,
    parent: Option<TraceContext>,
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
    let inv = comp.begin("wasi:http/incoming-handler.handle", parent);
    let permit = comp
        .admit_for(&inv)
        .await
        .map_err(|why| DispatchError::new(StatusCode::SERVICE_UNAVAILABLE, why))?;
    let trace = inv.trace;
    let (mut instance, meter) = comp.measured_instance(&inv);
    let internal = |e: wasmtime::Error| {
        DispatchError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
    };
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let mut http = instance.store_mut().data_mut().http();
    let req = http
        .new_incoming_request(Scheme::Http, request)
        .map_err(|e| DispatchError::new(StatusCode::BAD_REQUEST, format!("{e:#}")))?;
    let out = http.new_response_outparam(sender).map_err(internal)?;

    // The guest runs inside this request's own task: first driven here until it sets the
    // response, then by the response body as hyper reads it (the guest may go on writing the
    // body after setting the response). No task spawn, no hand-off to another thread. The
    // instance slot, the epoch ticking and the component's drain tracking last as long as
    // the guest does.
    let id = Arc::clone(&comp.id);
    let comp_for_stats = Arc::clone(&comp);
    let drain = comp.tracker().token();
    let instantiating = instance.instantiating();
    let guest: GuestFuture = Box::pin(async move {
        let _permit = permit;
        let _drain = drain;
        let (result, printed) = instance
            .run(|mut store| async move {
                let fail = |e: wasmtime::Error| classify(&e, "request failed");
                let proxy = pre.instantiate_async(&mut store).await;
                drop(instantiating);
                let proxy = proxy.map_err(fail)?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
                    .map_err(fail)
            })
            .await;
        comp_for_stats.finish(&inv, meter.read(), result.as_ref().err());
        crate::observe::component_output(&inv.span, &id, &trace, &printed);
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
                Err((failure, printed)) => {
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

type GuestFuture = Pin<Box<dyn Future<Output = Result<(), (Failure, String)>> + Send>>;

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
                if let Err((failure, _)) = done {
                    let message = failure.message;
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
