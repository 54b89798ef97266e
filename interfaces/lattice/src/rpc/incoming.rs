//! A result reader that turns an early end of results into the callee's error report.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use super::errors::ErrorInbox;
use super::{CallError, ErrorReport};

/// The incoming half of an invocation made by [`super::Invoker`].
pub struct ErrorAwareReader {
    inner: wrpc_transport_nats::Reader,
    call: Option<(Arc<ErrorInbox>, String)>,
    eof: bool,
}

/// The io error that carries a callee's report up through wRPC's decoders.
#[derive(Debug)]
pub struct RemoteFailure(pub ErrorReport);

impl std::fmt::Display for RemoteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for RemoteFailure {}

impl ErrorAwareReader {
    pub(crate) fn new(
        inner: wrpc_transport_nats::Reader,
        inbox: Arc<ErrorInbox>,
        call_id: String,
    ) -> Self {
        Self {
            inner,
            call: Some((inbox, call_id)),
            eof: false,
        }
    }

    /// Finds a callee's report in an error chain produced while reading from this reader.
    pub fn remote_failure(err: &(dyn std::error::Error + 'static)) -> Option<CallError> {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = cur {
            if let Some(RemoteFailure(report)) = e.downcast_ref::<RemoteFailure>() {
                return Some(CallError::Remote(report.clone()));
            }
            if let Some(RemoteFailure(report)) = e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<RemoteFailure>())
            {
                return Some(CallError::Remote(report.clone()));
            }
            cur = e.source();
        }
        None
    }
}

impl Drop for ErrorAwareReader {
    fn drop(&mut self) {
        if let Some((inbox, call_id)) = self.call.take() {
            inbox.forget(&call_id);
        }
    }
}

impl wrpc_transport::Index<Self> for ErrorAwareReader {
    fn index(&self, path: &[usize]) -> anyhow::Result<Self> {
        Ok(Self {
            inner: self.inner.index(path)?,
            call: None,
            eof: false,
        })
    }
}

impl AsyncRead for ErrorAwareReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.eof {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before || buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        // The transport's reader waits for another message after the end, so it is never
        // polled again once it has reported one.
        this.eof = true;
        if let Some((inbox, call_id)) = &this.call {
            if let Some(report) = inbox.take(call_id) {
                return Poll::Ready(Err(std::io::Error::other(RemoteFailure(report))));
            }
        }
        Poll::Ready(Ok(()))
    }
}
