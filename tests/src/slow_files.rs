//! A real HTTP server that serves one file after a delay, for tests that need component
//! starts to take a known minimum time (a slow registry).

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// Serves `bytes` to every GET, each response after `delay`. Stops when dropped.
pub struct SlowFileServer {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl SlowFileServer {
    pub async fn start(bytes: Vec<u8>, delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the file server");
        let addr = listener.local_addr().expect("file server address");
        let bytes = std::sync::Arc::new(bytes);
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let bytes = std::sync::Arc::clone(&bytes);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
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
        }
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
