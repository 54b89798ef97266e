//! The one wasmtime `Engine` of a host, and the epoch ticker that enforces time limits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances while any invocation runs. Time limits are checked on each
/// tick, so they are enforced to within this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Which instance allocator the engine uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocatorKind {
    Pooling,
    OnDemand,
}

impl std::fmt::Display for AllocatorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AllocatorKind::Pooling => "pooling",
            AllocatorKind::OnDemand => "on-demand",
        })
    }
}

/// Settings that shape the engine.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// Concurrent instances the pool holds; 0 means on-demand allocation.
    pub pool_instances: u32,
    /// The largest linear memory any instance may grow to.
    pub memory_ceiling: u64,
    /// Bytes of each pooled memory kept resident (and zeroed) between instances.
    pub keep_resident: u64,
    /// Map memory images copy-on-write instead of copying them in at instantiation.
    pub memory_cow: bool,
    /// Cranelift's single-pass register allocator instead of the backtracking one (nothing
    /// to choose on a host built without a compiler).
    #[cfg_attr(not(feature = "compiler"), allow(dead_code))]
    pub fast_compile: bool,
    /// Compile for this target triple with its baseline CPU features; `None`: for this
    /// machine, with the features detected on it.
    pub target: Option<String>,
}

fn base_config(settings: &EngineSettings) -> anyhow::Result<Config> {
    let mut config = Config::new();
    if let Some(target) = &settings.target {
        config
            .target(target)
            .map_err(|e| anyhow::anyhow!("compiling for {target}: {e}"))?;
    }
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.memory_init_cow(settings.memory_cow);
    #[cfg(feature = "compiler")]
    if settings.fast_compile {
        // The compiled-artifact cache is keyed by the engine's compatibility hash, which
        // covers compiler settings, so artifacts of either allocator never mix.
        config.cranelift_regalloc_algorithm(wasmtime::RegallocAlgorithm::SinglePass);
    }
    Ok(config)
}

fn pooling(settings: &EngineSettings) -> PoolingAllocationConfig {
    let n = settings.pool_instances;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(n)
        // Components built from other languages hold many core instances and memories.
        .total_core_instances(n.saturating_mul(4))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(4))
        .total_stacks(n)
        .max_core_instances_per_component(64)
        .max_memories_per_component(8)
        .max_tables_per_component(16)
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(2 << 20)
        .table_elements(100_000)
        .max_memory_size(usize::try_from(settings.memory_ceiling).unwrap_or(usize::MAX))
        // Memory kept resident is reset with memset; beyond it, pages go back to the kernel
        // with madvise, which costs page faults on the next use and, with threads on several
        // cores, a TLB shootdown (an IPI to every core) per instance. Sized to cover what a
        // small component touches per call (measured with hello-http: 64 KiB of stack: 16k
        // req/s at 10 KiB, 38k at 128 KiB, no gain beyond).
        .linear_memory_keep_resident(settings.keep_resident as usize)
        .table_keep_resident(settings.keep_resident as usize);
    pool
}

/// Builds the engine: pooling allocation when the address space can be reserved, on-demand
/// allocation otherwise (small devices, restricted `ulimit -v`).
pub fn build(settings: &EngineSettings) -> anyhow::Result<(Engine, AllocatorKind)> {
    if settings.pool_instances > 0 {
        let mut config = base_config(settings)?;
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(settings)));
        match Engine::new(&config) {
            Ok(engine) => return Ok((engine, AllocatorKind::Pooling)),
            Err(err) => tracing::warn!(
                error = %err,
                "cannot reserve the pooling allocator; falling back to on-demand allocation"
            ),
        }
    }
    let mut config = base_config(settings)?;
    config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
    // Where the pool's address space cannot be reserved, neither can wasmtime's default
    // 4 GiB (+ guard) per memory: each memory reserves what it holds and moves when it
    // grows (the compiled code checks bounds instead).
    config.memory_reservation(0);
    config.memory_guard_size(0);
    config.memory_reservation_for_growth(1 << 20);
    let engine =
        Engine::new(&config).map_err(|e| anyhow::anyhow!("creating the wasm engine: {e}"))?;
    Ok((engine, AllocatorKind::OnDemand))
}

/// Advances the engine's epoch every [`EPOCH_TICK`] while invocations run, and sleeps
/// otherwise, so an idle host does not wake up 200 times a second.
pub struct EpochTicker {
    active: Arc<AtomicUsize>,
    thread: thread::Thread,
}

impl EpochTicker {
    pub fn start(engine: Engine) -> anyhow::Result<Self> {
        let active = Arc::new(AtomicUsize::new(0));
        let handle = thread::Builder::new().name("trellis-epoch".into()).spawn({
            let active = Arc::clone(&active);
            move || loop {
                if active.load(Ordering::Acquire) == 0 {
                    thread::park();
                    continue;
                }
                thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })?;
        Ok(Self {
            active,
            thread: handle.thread().clone(),
        })
    }

    /// Marks an invocation as running until the guard drops.
    pub fn enter(&self) -> TickGuard {
        if self.active.fetch_add(1, Ordering::AcqRel) == 0 {
            self.thread.unpark();
        }
        TickGuard {
            active: Arc::clone(&self.active),
        }
    }

    /// Invocations running now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }
}

pub struct TickGuard {
    active: Arc<AtomicUsize>,
}

impl Drop for TickGuard {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
    }
}
