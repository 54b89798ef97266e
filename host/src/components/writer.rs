//! A result writer that hands the transport's writer back instead of closing it.
//!
//! wRPC closes the result stream when its writer drops. A failed invocation must publish its
//! error report *before* that close, so the caller finds the report when it sees the end of
//! results. This wrapper gives the writer back to the invocation handler on drop; the
//! handler reports, then lets the writer close.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wrpc_transport_nats::SubjectWriter;

/// Where a dropped [`ReclaimableWriter`] leaves its writer.
pub type Slot = Arc<Mutex<Option<SubjectWriter>>>;

pub struct ReclaimableWriter {
    inner: Option<SubjectWriter>,
    slot: Option<Slot>,
}

impl ReclaimableWriter {
    pub fn new(inner: SubjectWriter) -> (Self, Slot) {
        let slot = Slot::default();
        (
            Self {
                inner: Some(inner),
                slot: Some(Arc::clone(&slot)),
            },
            slot,
        )
    }

    fn inner(&mut self) -> std::io::Result<Pin<&mut SubjectWriter>> {
        self.inner
            .as_mut()
            .map(Pin::new)
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl Drop for ReclaimableWriter {
    fn drop(&mut self) {
        if let (Some(inner), Some(slot)) = (self.inner.take(), self.slot.take()) {
            if let Ok(mut slot) = slot.lock() {
                *slot = Some(inner);
            }
        }
    }
}

impl wrpc_transport::Index<Self> for ReclaimableWriter {
    fn index(&self, path: &[usize]) -> anyhow::Result<Self> {
        let inner = self
            .inner
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("writer already closed"))?
            .index(path)?;
        Ok(Self {
            inner: Some(inner),
            slot: None,
        })
    }
}

impl AsyncWrite for ReclaimableWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.inner() {
            Ok(w) => w.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.inner() {
            Ok(w) => w.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.inner() {
            Ok(w) => w.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}
