//! What a component writes to stdout and stderr during one invocation.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// The tail of what a component wrote to stdout and stderr during one invocation: logged by
/// the host, and added to the error when the invocation fails (a panic message, say).
#[derive(Clone, Default)]
pub struct OutputCapture {
    buf: Arc<Mutex<Vec<u8>>>,
}

/// Bytes of output kept per invocation; older output is dropped.
const CAPTURE_LIMIT: usize = 4096;

impl OutputCapture {
    pub fn take(&self) -> String {
        let bytes = self
            .buf
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).trim().to_string()
    }

    fn push(&self, data: &[u8]) {
        if let Ok(mut buf) = self.buf.lock() {
            buf.extend_from_slice(data);
            if buf.len() > CAPTURE_LIMIT {
                let excess = buf.len() - CAPTURE_LIMIT;
                buf.drain(..excess);
            }
        }
    }
}

impl AsyncWrite for OutputCapture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for OutputCapture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputCapture {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}
