//! A real HTTP server that serves one file after a delay, for tests that need component
//! starts to take a known minimum time (a slow registry).

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// Serves `bytes` to every GET, each response after `delay`. Stops when dropped.
pub struct SlowFileServer {
    url: String,
    task: tokio::task::JoinHandle<()>,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    gate: std::sync::Arc<tokio::sync::Semaphore>,
}

impl SlowFileServer {
    pub async fn start(bytes: Vec<u8>, delay: Duration) -> Self {
        Self::gated(bytes, delay, usize::MAX >> 4).await
    }

    /// Like [`Self::start`], but only the first `open` responses go out; every later one waits
    /// until [`Self::release`]. A test can so hold a deployment mid-way for as long as it likes.
    pub async fn gated(bytes: Vec<u8>, delay: Duration, open: usize) -> Self {
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(open));
        let passes = std::sync::Arc::clone(&gate);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the file server");
        let addr = listener.local_addr().expect("file server address");
        let bytes = std::sync::Arc::new(bytes);
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = std::sync::Arc::clone(&requests);
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let bytes = std::sync::Arc::clone(&bytes);
                let counted = std::sync::Arc::clone(&counted);
                let passes = std::sync::Arc::clone(&passes);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Ok(pass) = passes.acquire().await else {
                        return;
                    };
                    pass.forget();
                    tokio::time::sleep(delay).await;
                    let header = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/wasm\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        bytes.len()
                    );
                    let _ = conn.write_all(header.as_bytes()).await;
                    let _ = conn.write_all(&bytes).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Self {
            url: format!("http://{addr}/component.wasm"),
            task,
            requests,
            gate,
        }
    }

    /// Lets every waiting and later response go out.
    pub fn release(&self) {
        self.gate.add_permits(usize::MAX >> 4);
    }

    /// Requests received so far (each is answered after the delay).
    pub fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for SlowFileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
