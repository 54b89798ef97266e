//! The one way an instance is built and run, for wRPC invocations and HTTP requests alike: a
//! fresh `Store` with the component's limits, config and import client; the epoch deadline
//! (which also yields to the executor every tick) plus a watchdog for time spent in host
//! calls; the epoch ticking while it runs; and the output it printed.

use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use trellis_lattice::inventory::ComponentLimits;
use trellis_lattice::rpc::Invoker;
use trellis_lattice::trace::TraceContext;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;

use super::engine::{EpochTicker, TickGuard};
use super::failure::Failure;
use super::imports::{ImportClient, ImportResolver};
use super::limits::{LimitExceeded, Limiter, MemoryBudget};
use super::output::OutputCapture;
use super::state::{RpcState, StoreState};
use super::wasi_config::{ComponentConfig, ConfigCtx};
use super::wasi_logging::LoggingCtx;
use super::wasi_otel::OtelCtx;

/// Slack on top of the time limit for the outer watchdog, which only matters while the guest
/// waits in a host call (the epoch check covers guest code).
const WATCHDOG_SLACK: Duration = Duration::from_millis(50);

/// How a component's linked imports reach the lattice: the host's invoker, and the links that
/// say which target serves each import.
#[derive(Clone)]
pub struct Linking {
    pub invoker: Arc<Invoker>,
    pub resolver: Arc<dyn ImportResolver>,
}

/// What one instance is made for.
pub struct InstanceSpec {
    /// The component (the source of its calls through imports).
    pub component_id: Arc<str>,
    pub limits: ComponentLimits,
    pub config: ComponentConfig,
    /// The context of the invocation the instance serves (handed on by its import calls).
    pub trace: TraceContext,
    /// The invocation's span (disabled when nothing is exported).
    pub span: tracing::Span,
    /// Fires when the component is stopped and its invocations must end now.
    pub interrupt: CancellationToken,
    /// Its pins, when it uses GPIO.
    pub gpio: Option<Arc<crate::gpio::ComponentPins>>,
    /// What it may reach beyond its links.
    pub grants: Arc<super::grants::ResolvedGrants>,
    /// Calls through links that led to this invocation (its own calls are one deeper).
    pub depth: u32,
}

/// A fresh store, armed with its limits, waiting to run one invocation.
pub struct Instance {
    store: Store<StoreState>,
    output: OutputCapture,
    limit: Duration,
    ticking: TickGuard,
    interrupt: CancellationToken,
    span: tracing::Span,
    /// The invocation's context (its span's own when recorded).
    trace: TraceContext,
    /// The memory the instance reached.
    memory_peak: Arc<AtomicU64>,
    /// Where the CPU time of the run goes, when it is measured.
    cpu: Option<Arc<AtomicU64>>,
}

/// Builds an instance's store (see [`super::Runtime::instance`]).
pub(super) fn build(
    engine: &Engine,
    ticker: &EpochTicker,
    budget: &Arc<MemoryBudget>,
    linking: &Linking,
    spec: InstanceSpec,
) -> Instance {
    let ticking = ticker.enter();
    let output = OutputCapture::default();
    let mut wasi = WasiCtxBuilder::new();
    wasi.stdout(output.clone()).stderr(output.clone());
    spec.grants.apply(&mut wasi);
    let wasi = wasi.build();
    let logging = LoggingCtx::new(Arc::clone(&spec.component_id), spec.span.clone());
    let otel = OtelCtx::new(
        Arc::clone(&spec.component_id),
        spec.span.clone(),
        spec.trace,
    );
    let limit = Duration::from_millis(spec.limits.timeout_ms);
    let client = ImportClient::new(
        Arc::clone(&linking.invoker),
        Arc::clone(&linking.resolver),
        spec.component_id,
        spec.trace,
        spec.span.clone(),
    )
    .within(spec.depth, Instant::now() + limit);
    let mut limiter = Limiter::new(spec.limits.max_memory_bytes, 1_000_000, Arc::clone(budget));
    let memory_peak = limiter.watch_peak();
    let state = StoreState {
        wasi,
        http: wasmtime_wasi_http::WasiHttpCtx::new(),
        http_hooks: spec.grants.http_hooks(),
        table: Default::default(),
        limiter,
        rpc: RpcState {
            client,
            shared: Default::default(),
        },
        output: output.clone(),
        config: ConfigCtx(spec.config),
        logging,
        otel,
        gpio: crate::gpio::GpioCtx(spec.gpio),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    arm_deadline(&mut store, limit, spec.interrupt.clone());
    Instance {
        store,
        output,
        limit,
        ticking,
        interrupt: spec.interrupt,
        span: spec.span,
        trace: spec.trace,
        memory_peak,
        cpu: None,
    }
}

impl Instance {
    /// A handle on the memory the instance reaches.
    pub fn memory_peak(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.memory_peak)
    }

    /// Measures the CPU time of the run; the handle holds it (in nanoseconds) afterwards.
    pub fn measure_cpu(&mut self) -> Arc<AtomicU64> {
        let total = Arc::new(AtomicU64::new(0));
        self.cpu = Some(Arc::clone(&total));
        total
    }

    /// The invocation's span.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// A leaf span `instantiate` under the invocation's span.
    pub fn instantiating(&self) -> trellis_telemetry::Leaf {
        trellis_telemetry::spans::instantiate(&self.span, &self.trace)
    }

    /// The store, to set up what the call needs before it runs (an HTTP request, say).
    pub fn store_mut(&mut self) -> &mut Store<StoreState> {
        &mut self.store
    }

    /// Runs `call` (instantiate and call) on the store within the time limit. Returns its
    /// result and what the guest printed.
    pub async fn run<T, F, Fut>(self, call: F) -> (Result<T, Failure>, String)
    where
        F: FnOnce(Store<StoreState>) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let Instance {
            store,
            output,
            limit,
            ticking,
            interrupt,
            span,
            trace: _,
            memory_peak: _,
            cpu,
        } = self;
        // The guest yields every epoch tick, so a stop is noticed here even while it spins;
        // dropping the call ends it.
        let result = tokio::select! {
            r = tokio::time::timeout(limit + WATCHDOG_SLACK, timed(call(store).instrument(span), cpu)) => match r {
                Ok(r) => r,
                Err(_) => Err(Failure::time_limit(limit)),
            },
            _ = interrupt.cancelled() => Err(Failure::stopped()),
        };
        drop(ticking);
        (result, output.take())
    }
}

/// `fut`, its CPU time measured into `cpu` when given.
async fn timed<F: Future>(fut: F, cpu: Option<Arc<AtomicU64>>) -> F::Output {
    match cpu {
        Some(total) => super::cpu::CpuTimed::new(fut, total).await,
        None => fut.await,
    }
}

/// Enforces `limit` of wall-clock time on the store's guest code, checked every epoch tick,
/// and ends it at once when the component is stopped; each tick also yields, so a busy guest
/// shares its thread with other work.
fn arm_deadline(store: &mut Store<StoreState>, limit: Duration, interrupt: CancellationToken) {
    let deadline = Instant::now() + limit;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if interrupt.is_cancelled() {
            Err(wasmtime::Error::new(LimitExceeded::Stopped))
        } else if Instant::now() >= deadline {
            Err(wasmtime::Error::new(LimitExceeded::Time { limit }))
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
}
