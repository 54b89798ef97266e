//! What each invocation's `Store` holds: WASI state, resource limits, captured output and
//! the context for calls the component makes through its imports.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::AsyncWrite;
use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::{WasiHttpCtxView, WasiHttpView};
use wasmtime_wasi_http::WasiHttpCtx;
use wrpc_runtime_wasmtime::{SharedResourceTable, WrpcCtx, WrpcCtxView, WrpcView};

use super::imports::ImportClient;

/// A limit an invocation ran into. Raised from inside wasmtime and recognised again when the
/// invocation fails, so the caller is told which limit and what it was.
#[derive(Debug, Clone, Copy, thiserror::Error)]
pub enum LimitExceeded {
    #[error("memory limit of {} exceeded (tried to grow linear memory to {} bytes)", format_bytes(*limit), requested)]
    Memory { limit: u64, requested: u64 },
    #[error("table limit of {limit} elements exceeded")]
    Table { limit: u64 },
    #[error("execution time limit of {} exceeded", humantime::format_duration(*limit))]
    Time { limit: Duration },
}

pub use trellis_lattice::units::format_bytes;

/// Caps on one instance's memories and tables.
pub struct Limiter {
    pub max_memory: u64,
    pub max_table_elements: u64,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.max_memory {
            return Err(wasmtime::Error::new(LimitExceeded::Memory {
                limit: self.max_memory,
                requested: desired as u64,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.max_table_elements {
            return Err(wasmtime::Error::new(LimitExceeded::Table {
                limit: self.max_table_elements,
            }));
        }
        Ok(true)
    }
}

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

/// State for calls the component makes through linked imports.
pub struct RpcState {
    pub client: ImportClient,
    pub shared: SharedResourceTable,
}

impl WrpcCtx<ImportClient> for RpcState {
    fn context(&self) -> trellis_lattice::rpc::CallContext {
        self.client.call_context()
    }

    fn client(&self) -> &ImportClient {
        &self.client
    }

    fn shared_resources(&mut self) -> &mut SharedResourceTable {
        &mut self.shared
    }

    fn timeout(&self) -> Option<Duration> {
        Some(self.client.timeout())
    }
}

/// The data of one invocation's `Store`.
pub struct StoreState {
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub table: ResourceTable,
    pub limiter: Limiter,
    pub rpc: RpcState,
    pub output: OutputCapture,
    /// What `wasi:config/store` answers.
    pub config: super::wasi_config::ComponentConfig,
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StoreState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

impl WrpcView for StoreState {
    type Invoke = ImportClient;

    fn wrpc(&mut self) -> WrpcCtxView<'_, ImportClient> {
        WrpcCtxView {
            ctx: &mut self.rpc,
            table: &mut self.table,
        }
    }
}
