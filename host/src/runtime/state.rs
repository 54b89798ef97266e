//! What each invocation's `Store` holds: WASI state, resource limits, captured output, the
//! component's configuration and the context for calls it makes through its imports. Each
//! interface gets its own narrow view of it.

use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::{WasiHttpCtxView, WasiHttpView};
use wasmtime_wasi_http::WasiHttpCtx;
use wrpc_runtime_wasmtime::{SharedResourceTable, WrpcCtx, WrpcCtxView, WrpcView};

use super::imports::ImportClient;
use super::limits::Limiter;
use super::output::OutputCapture;
use super::wasi_config::ConfigCtx;
use super::wasi_logging::LoggingCtx;
use super::wasi_otel::OtelCtx;

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
    /// Lets outgoing HTTP requests through to granted destinations only.
    pub http_hooks: super::grants::OutboundHooks,
    pub table: ResourceTable,
    pub limiter: Limiter,
    pub rpc: RpcState,
    pub output: OutputCapture,
    /// What `wasi:config/store` answers.
    pub config: ConfigCtx,
    /// Where `wasi:logging` records go.
    pub logging: LoggingCtx,
    /// What `wasi:otel` answers and where a component's own spans go.
    pub otel: OtelCtx,
    /// The pins `wasi:gpio` may use.
    pub gpio: crate::gpio::GpioCtx,
}

impl StoreState {
    pub fn gpio_view(&mut self) -> crate::gpio::GpioView<'_> {
        crate::gpio::GpioView {
            ctx: &mut self.gpio,
            table: &mut self.table,
        }
    }
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
            hooks: &mut self.http_hooks,
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
