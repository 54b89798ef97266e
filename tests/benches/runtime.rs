//! Per-invocation cost of the host runtime (fresh store, limits, instantiate, call through the
//! wRPC value codec) against raw wasmtime `InstancePre` instantiate + typed call on the same
//! engine, interleaved in one process. Run: `cargo bench -p trellis-tests --bench runtime`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use trellis_host::links::LinkTable;
use trellis_host::runtime::{
    call_export, ImportResolver, InstanceSpec, Linking, Runtime, RuntimeConfig,
};
use trellis_lattice::inventory::ComponentLimits;
use trellis_lattice::rpc::{Invoker, InvokerConfig};
use trellis_lattice::trace::TraceContext;
use trellis_lattice::Subjects;
use trellis_tests::stats::{fmt, report, Samples};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Parameters already received, as an in-memory stream.
struct MemReader(bytes::Bytes);

impl AsyncRead for MemReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.0.len().min(buf.remaining());
        let chunk = self.0.split_to(n);
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

impl wrpc_transport::Index<Self> for MemReader {
    fn index(&self, _: &[usize]) -> anyhow::Result<Self> {
        anyhow::bail!("no nested streams")
    }
}

/// Results, collected in memory.
#[derive(Clone, Default)]
struct MemWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl AsyncWrite for MemWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.lock().expect("buffer").extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl wrpc_transport::Index<Self> for MemWriter {
    fn index(&self, _: &[usize]) -> anyhow::Result<Self> {
        anyhow::bail!("no nested streams")
    }
}

struct RawState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for RawState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let nats = trellis_tests::NatsServer::start().await;
    let cache = tempfile::tempdir()?;
    let runtime = Runtime::new(&RuntimeConfig {
        pool_instances: 1000,
        memory_ceiling: 1 << 30,
        cache_dir: cache.path().to_path_buf(),
        keep_resident: 128 << 10,
        memory_cow: true,
        fast_compile: false,
        portable_code: false,
        fetch_timeout: trellis_host::runtime::DEFAULT_FETCH_TIMEOUT,
        memory_budget: 4 << 30,
    })?;
    let image = trellis_tests::component_ref("greeter");
    let loaded = runtime.load(&image).await?;
    let function = loaded
        .functions
        .iter()
        .find(|f| f.export.signature.name == "greet")
        .expect("greet export")
        .clone();
    let invoker = Arc::new(
        Invoker::new(
            nats.connect().await,
            Subjects::new("bench"),
            InvokerConfig::default(),
        )
        .await?,
    );
    let resolver = Arc::new(LinkTable::default());
    let limits = ComponentLimits {
        max_memory_bytes: 64 << 20,
        timeout_ms: 10_000,
    };
    let params = bytes::Bytes::from_static(b"\x03Ada");

    // Raw wasmtime on the same engine: InstancePre, minimal WASI store, typed call.
    let engine = runtime.engine().clone();
    let component =
        wasmtime::component::Component::from_file(&engine, trellis_tests::component("greeter"))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut linker: Linker<RawState> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Resolved once, as the host resolves its exports once at load.
    let greet_index = component
        .get_export_index(None, "greet")
        .ok_or_else(|| anyhow::anyhow!("greet export"))?;

    let linking = Linking {
        invoker: Arc::clone(&invoker),
        resolver: resolver.clone() as Arc<dyn ImportResolver>,
    };
    let ours = || async {
        let writer = MemWriter::default();
        let instance = runtime.instance(
            &linking,
            InstanceSpec {
                component_id: Arc::from("greeter"),
                limits,
                config: Default::default(),
                trace: TraceContext::new_root(),
                span: tracing::Span::none(),
                interrupt: Default::default(),
                gpio: None,
                depth: 0,
                grants: Default::default(),
            },
        );
        let (result, _) = call_export(
            instance,
            &loaded.pre,
            &function,
            MemReader(params.clone()),
            writer.clone(),
        )
        .await;
        result.map_err(|f| anyhow::anyhow!(f.message))?;
        let out = writer.0.lock().expect("buffer").clone();
        anyhow::ensure!(out == b"\x0bHello, Ada!", "unexpected result {out:?}");
        anyhow::Ok(())
    };
    let raw = || async {
        let mut store = wasmtime::Store::new(
            &engine,
            RawState {
                wasi: WasiCtx::builder().build(),
                table: ResourceTable::new(),
            },
        );
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let greet = instance
            .get_typed_func::<(String,), (String,)>(&mut store, &greet_index)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let (out,) = greet
            .call_async(&mut store, ("Ada".to_string(),))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::ensure!(out == "Hello, Ada!");
        anyhow::Ok(())
    };

    for _ in 0..300 {
        ours().await?;
        raw().await?;
    }
    let (mut a, mut b) = (Samples::default(), Samples::default());
    for _ in 0..3000 {
        let t = Instant::now();
        ours().await?;
        a.push(t.elapsed());
        let t = Instant::now();
        raw().await?;
        b.push(t.elapsed());
    }
    println!(
        "greeter: fresh instance + call per invocation ({} allocator)",
        runtime.allocator()
    );
    report("trellis host runtime (store, limits, wRPC codec)", &a);
    report("raw wasmtime InstancePre + typed call", &b);
    println!(
        "ratio (trellis / raw, p50): {:.2}   overhead {}",
        a.median().as_secs_f64() / b.median().as_secs_f64(),
        fmt(a.median().saturating_sub(b.median()))
    );
    Ok(())
}
