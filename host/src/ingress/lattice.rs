//! HTTP requests that crossed the lattice: a server on another host sends them as
//! `trellis:http/handler#handle` calls (see `trellis_lattice::http`), served here by the same
//! code as local requests.

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt as _, Full};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use trellis_lattice::http::{HttpRequest, HttpResponse};
use trellis_lattice::rpc::{IncomingCall, RemoteErrorKind};
use wrpc_transport_nats::{NatsContext, Reader, SubjectWriter};

use super::guest;
use crate::components::running::RunningComponent;

/// Serves one `trellis:http/handler#handle` call: a request that crossed the lattice.
pub async fn serve_lattice(
    nats: async_nats::Client,
    host_id: Arc<str>,
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
        // A caller that never finishes its request does not hold this task forever.
        let patience = std::time::Duration::from_millis(comp.limits().timeout_ms);
        let req = loop {
            let read = tokio::time::timeout(patience, rx.read_buf(&mut buf)).await;
            let n = read
                .map_err(|_| {
                    (
                        RemoteErrorKind::BadRequest,
                        format!("the request did not arrive whole within {patience:?}"),
                    )
                })?
                .map_err(|e| {
                    (
                        RemoteErrorKind::BadRequest,
                        format!("reading the request: {e}"),
                    )
                })?;
            if buf.len() > trellis_lattice::http::MAX_MESSAGE_BYTES {
                return Err((
                    RemoteErrorKind::BadRequest,
                    "the request is larger than the 64 MiB a request may be on the lattice"
                        .to_string(),
                ));
            }
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
        let request = req
            .into_http()
            .map_err(|e| (RemoteErrorKind::BadRequest, format!("bad request: {e}")))?
            .map(|body| Full::new(body).map_err(|e| match e {}));
        let resp = match guest::handle(Arc::clone(&comp), request, incoming.trace).await {
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
        let encoded = HttpResponse::from_parts(&parts, body).encode();
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
                .report(&nats, &comp.id, &host_id, kind, message)
                .await;
            drop(tx);
        }
    }
}
