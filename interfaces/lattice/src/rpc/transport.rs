//! The caller's side of wRPC over NATS, speaking the same wire protocol as
//! `wrpc-transport-nats` (whose server side hosts and providers use), with what its client
//! lacks: a callee's error report arrives in order with the results, and a callee that
//! dies after accepting a call is noticed within a second instead of at the timeout.
//!
//! Wire protocol (wRPC 0.0.1 over NATS, subjects in `crate::subject::rpc`): the caller
//! publishes the first chunk of parameters on the invocation subject with reply subject `rx`;
//! the callee accepts by publishing to `rx` with its own reply subject `srv`; further
//! parameters go to `srv.params`, results come on `rx.results`; an empty message closes a
//! direction.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use async_nats::message::OutboundMessage;
use async_nats::Subject;
use bytes::{Buf as _, Bytes};
use futures::{FutureExt as _, Sink as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

use super::error::{CallError, ErrorReport};
use crate::subject::rpc;

/// How long a callee may be silent after accepting before the caller checks it is alive.
const PROBE_AFTER: Duration = Duration::from_millis(500);
/// How long a liveness probe waits for "no responders" before concluding the callee lives.
const PROBE_WAIT: Duration = Duration::from_millis(300);

type Calls = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<async_nats::Message>>>>;

/// One inbox subscription per invoker; messages are routed to calls by their id token.
pub(crate) struct Demux {
    inbox: String,
    calls: Calls,
    task: tokio::task::JoinHandle<()>,
}

/// A call's registration; dropping it stops routing to the call.
pub(crate) struct Registration {
    pub call_id: String,
    /// The reply subject of the invocation.
    pub rx: String,
    pub messages: mpsc::UnboundedReceiver<async_nats::Message>,
    calls: Calls,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.remove(&self.call_id);
        }
    }
}

impl Demux {
    pub(crate) async fn new(nats: &async_nats::Client) -> Result<Self, async_nats::SubscribeError> {
        let inbox = nats.new_inbox();
        let mut sub = nats.subscribe(rpc::inbox_wildcard(&inbox)).await?;
        let calls: Calls = Arc::default();
        let prefix_len = inbox.len() + 1;
        let task = tokio::spawn({
            let calls = Arc::clone(&calls);
            async move {
                while let Some(msg) = sub.next().await {
                    let rest = msg.subject.get(prefix_len..).unwrap_or_default();
                    let id = rest.split('.').next().unwrap_or_default();
                    let tx = calls.lock().ok().and_then(|c| c.get(id).cloned());
                    if let Some(tx) = tx {
                        let _ = tx.send(msg);
                    }
                }
            }
        });
        Ok(Self { inbox, calls, task })
    }

    pub(crate) fn register(&self) -> Registration {
        let call_id = nuid::next().to_string();
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut calls) = self.calls.lock() {
            calls.insert(call_id.clone(), tx);
        }
        Registration {
            rx: rpc::call_inbox(&self.inbox, &call_id),
            call_id,
            messages: rx,
            calls: Arc::clone(&self.calls),
        }
    }
}

impl Drop for Demux {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Writes the remaining parameters of an accepted call to `{srv}.params`.
pub struct CallWriter {
    nats: async_nats::Client,
    subject: Subject,
    pending: Bytes,
    max_payload: usize,
    shutdown: bool,
    /// Whether anything was sent after the invocation's first message.
    wrote_more: bool,
}

impl CallWriter {
    pub(crate) fn new(nats: async_nats::Client, server_rx: &str, pending: Bytes) -> Self {
        let max_payload = nats.server_info().max_payload.max(1024);
        Self {
            nats,
            subject: Subject::from(rpc::params(server_rx)),
            pending,
            max_payload,
            shutdown: false,
            wrote_more: false,
        }
    }

    fn poll_send(&mut self, cx: &mut Context<'_>, payload: Bytes) -> Poll<std::io::Result<()>> {
        ready!(Pin::new(&mut self.nats).poll_ready(cx)).map_err(std::io::Error::other)?;
        self.wrote_more = true;
        Pin::new(&mut self.nats)
            .start_send(OutboundMessage {
                subject: self.subject.clone(),
                payload,
                reply: None,
                headers: None,
            })
            .map_err(std::io::Error::other)?;
        Poll::Ready(Ok(()))
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while !self.pending.is_empty() {
            let n = self.pending.len().min(self.max_payload);
            let chunk = self.pending.slice(..n);
            ready!(self.poll_send(cx, chunk))?;
            self.pending.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for CallWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        ready!(self.poll_drain(cx))?;
        let n = buf.len().min(self.max_payload);
        ready!(self.poll_send(cx, Bytes::copy_from_slice(&buf[..n])))?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.nats)
            .poll_flush(cx)
            .map_err(std::io::Error::other)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        // A callee has read every synchronous parameter from the first message when nothing
        // followed it, and async parameters are not supported; so the end-of-parameters
        // message is only needed after further chunks.
        if !self.wrote_more {
            self.shutdown = true;
            return Poll::Ready(Ok(()));
        }
        if !self.shutdown {
            ready!(self.poll_send(cx, Bytes::new()))?;
            self.shutdown = true;
        }
        Pin::new(&mut self.nats)
            .poll_flush(cx)
            .map_err(std::io::Error::other)
    }
}

impl wrpc_transport::Index<Self> for CallWriter {
    fn index(&self, _path: &[usize]) -> anyhow::Result<Self> {
        anyhow::bail!("asynchronous parameters (streams, futures) cannot cross the lattice")
    }
}

/// The io error that carries a callee's failure up through wRPC's decoders.
#[derive(Debug)]
pub struct RemoteFailure(pub CallError);

impl std::fmt::Display for RemoteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for RemoteFailure {}

/// Reads the results of an accepted call.
pub struct CallReader {
    registration: Registration,
    nats: async_nats::Client,
    target: String,
    server_rx: String,
    buffer: Bytes,
    received: usize,
    report: Option<ErrorReport>,
    eof: bool,
    probe_timer: Pin<Box<tokio::time::Sleep>>,
    probe: Option<tokio::task::JoinHandle<bool>>,
    /// Held until the result is read (the caller's span of the call, say).
    keep: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl CallReader {
    /// Keeps `guard` alive as long as this reader: a span covering the call ends when its
    /// result has been read (or abandoned).
    pub fn keep_until_done(mut self, guard: impl std::any::Any + Send + Sync) -> Self {
        self.keep = Some(Box::new(guard));
        self
    }

    pub(crate) fn new(
        registration: Registration,
        nats: async_nats::Client,
        target: &str,
        server_rx: String,
    ) -> Self {
        Self {
            registration,
            nats,
            target: target.to_string(),
            server_rx,
            buffer: Bytes::new(),
            received: 0,
            report: None,
            eof: false,
            probe_timer: Box::pin(tokio::time::sleep(PROBE_AFTER)),
            probe: None,
            keep: None,
        }
    }

    /// Result bytes received so far (0 means the callee produced nothing before failing).
    pub fn received(&self) -> usize {
        self.received
    }

    /// Finds a callee's failure in an error chain produced while reading from this reader.
    pub fn failure<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a CallError> {
        let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = cur {
            if let Some(RemoteFailure(f)) = e.downcast_ref::<RemoteFailure>() {
                return Some(f);
            }
            if let Some(RemoteFailure(f)) = e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<RemoteFailure>())
            {
                return Some(f);
            }
            cur = e.source();
        }
        None
    }

    fn failed(&mut self, err: CallError) -> Poll<std::io::Result<()>> {
        self.eof = true;
        Poll::Ready(Err(std::io::Error::other(RemoteFailure(err))))
    }

    /// Is the callee still connected? Its inbox wildcard subscription answers for it: a
    /// request there gets "no responders" once its connection is gone.
    fn start_probe(&mut self) {
        let nats = self.nats.clone();
        let subject = rpc::alive(&self.server_rx);
        self.probe = Some(tokio::spawn(async move {
            let req = async_nats::Request::new().timeout(Some(PROBE_WAIT));
            match nats.send_request(subject, req).await {
                Err(e) => !matches!(e.kind(), async_nats::RequestErrorKind::NoResponders),
                Ok(_) => true,
            }
        }));
    }

    fn poll_liveness(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if let Some(probe) = self.probe.as_mut() {
                let alive = ready!(probe.poll_unpin(cx)).unwrap_or(true);
                self.probe = None;
                if !alive {
                    return Poll::Ready(());
                }
                self.probe_timer
                    .as_mut()
                    .reset(tokio::time::Instant::now() + PROBE_AFTER);
            }
            ready!(self.probe_timer.as_mut().poll(cx));
            self.start_probe();
        }
    }
}

impl AsyncRead for CallReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.buffer.is_empty() {
                let n = this.buffer.len().min(buf.remaining());
                buf.put_slice(&this.buffer.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let msg = match this.registration.messages.poll_recv(cx) {
                Poll::Ready(Some(msg)) => msg,
                Poll::Ready(None) => {
                    return this
                        .failed(CallError::transport(&this.target, "the call was abandoned"))
                }
                Poll::Pending => {
                    if this.poll_liveness(cx).is_ready() {
                        let target = this.target.clone();
                        return this.failed(CallError::CalleeLost { target });
                    }
                    return Poll::Pending;
                }
            };
            let subject = msg.subject.as_str();
            if subject.ends_with(rpc::ERRORS) {
                match serde_json::from_slice::<ErrorReport>(&msg.payload) {
                    Ok(report) => this.report = Some(report),
                    Err(err) => tracing::debug!(%err, "ignoring a malformed error report"),
                }
                continue;
            }
            if !subject.ends_with(rpc::RESULTS) {
                // A late or repeated handshake; nothing to read.
                continue;
            }
            if msg.payload.is_empty() {
                if let Some(report) = this.report.take() {
                    return this.failed(CallError::Remote(report));
                }
                this.eof = true;
                return Poll::Ready(Ok(()));
            }
            this.received += msg.payload.len();
            this.buffer = msg.payload;
        }
    }
}

impl wrpc_transport::Index<Self> for CallReader {
    fn index(&self, _path: &[usize]) -> anyhow::Result<Self> {
        anyhow::bail!("asynchronous results (streams, futures) cannot cross the lattice")
    }
}

use std::future::Future as _;
