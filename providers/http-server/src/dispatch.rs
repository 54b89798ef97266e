//! Where a request runs: handed to the host directly when the component runs there, sent
//! over the lattice otherwise.

use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use trellis_lattice::http::{HttpRequest, HttpResponse, HTTP_FUNCTION, HTTP_INSTANCE};
use trellis_lattice::rpc::{CallContext, CallError, CallReader, Invoker, RemoteErrorKind};
use trellis_lattice::trace::TraceContext;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
/// The body of every response the server sends.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// Why a request could not be answered by its component.
#[derive(Debug)]
pub struct DispatchError {
    pub status: StatusCode,
    pub message: String,
}

impl DispatchError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn into_response(self) -> Response<ResponseBody> {
        text(self.status, format!("{}\n", self.message))
    }
}

/// A plain-text response.
pub fn text(status: StatusCode, body: String) -> Response<ResponseBody> {
    let mut resp = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|e| match e {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Implemented by a host that runs components: handles a request for a component running
/// there without leaving the process.
pub trait LocalDispatch: Send + Sync + 'static {
    /// The handling, if `component_id` runs on this host and serves HTTP; otherwise the
    /// request comes back to go over the lattice.
    #[allow(clippy::result_large_err)]
    fn try_local(
        &self,
        component_id: &str,
        request: Request<Incoming>,
        max_body: u64,
    ) -> Result<BoxFuture<'static, Result<Response<ResponseBody>, DispatchError>>, Request<Incoming>>;
}

/// Maps a failed lattice call to a status: nobody runs the component → 503, time → 504.
pub fn call_error(target: &str, err: &CallError) -> DispatchError {
    let status = match err {
        CallError::NoResponders { .. } | CallError::Partitioned { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        CallError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        CallError::Remote(r) if r.kind == RemoteErrorKind::TimeLimit => StatusCode::GATEWAY_TIMEOUT,
        CallError::Remote(r) if r.kind == RemoteErrorKind::Unavailable => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        CallError::CalleeLost { .. } => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = match err {
        CallError::NoResponders { .. } => format!("no running instance of component `{target}`"),
        other => other.to_string(),
    };
    DispatchError::new(status, message)
}

/// Sends the request to a host running `target` over the lattice. Bodies cross whole, up to
/// `max_body` bytes.
pub async fn over_lattice(
    invoker: &Invoker,
    cx: CallContext,
    target: &str,
    request: Request<Incoming>,
    max_body: u64,
    timeout: Duration,
) -> Result<Response<ResponseBody>, DispatchError> {
    let (parts, body) = request.into_parts();
    let body = Limited::new(body, max_body as usize)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                DispatchError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body larger than {max_body} bytes"),
                )
            } else {
                DispatchError::new(
                    StatusCode::BAD_REQUEST,
                    format!("reading the request body: {e}"),
                )
            }
        })?
        .to_bytes();
    let req = HttpRequest::from_parts(&parts, body);
    let call = async {
        let (mut tx, mut rx) = invoker
            .invoke(target, &cx, HTTP_INSTANCE, HTTP_FUNCTION, req.encode())
            .await?;
        tx.shutdown().await.map_err(|e| CallError::Transport {
            target: target.to_string(),
            message: e.to_string(),
        })?;
        let mut buf = Vec::new();
        rx.read_to_end(&mut buf).await.map_err(|e| {
            CallReader::failure(&e)
                .map(clone_error)
                .unwrap_or(CallError::Transport {
                    target: target.to_string(),
                    message: e.to_string(),
                })
        })?;
        Ok::<_, CallError>(Bytes::from(buf))
    };
    let bytes = match tokio::time::timeout(timeout, call).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return Err(call_error(target, &e)),
        Err(_) => {
            return Err(DispatchError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "component `{target}` did not answer within {}",
                    humantime::format_duration(timeout)
                ),
            ))
        }
    };
    let resp = HttpResponse::decode(&bytes)
        .map_err(|e| DispatchError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
    Ok(resp
        .into_http()
        .map(|body| Full::new(body).map_err(|e| match e {}).boxed_unsync()))
}

fn clone_error(e: &CallError) -> CallError {
    match e {
        CallError::Remote(r) => CallError::Remote(r.clone()),
        CallError::CalleeLost { target } => CallError::CalleeLost {
            target: target.clone(),
        },
        other => CallError::Transport {
            target: String::new(),
            message: other.to_string(),
        },
    }
}

/// The trace a request belongs to: the caller's `traceparent`, or a new one.
pub fn trace_of<B>(req: &Request<B>) -> TraceContext {
    req.headers()
        .get(trellis_lattice::trace::TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse)
        .map(|t| t.child())
        .unwrap_or_else(TraceContext::new_root)
}
