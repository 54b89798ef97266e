//! The wasmtime runtime of a host: one engine, components loaded from images and compiled
//! once (cached by digest), a fresh store per invocation with memory and time limits.

mod cache;
mod describe;
mod engine;
mod fetch;
mod imports;
mod invoke;
mod store;
mod wasi_config;

use std::path::PathBuf;
use std::sync::Arc;

use trellis_lattice::inventory::ComponentLimits;
use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Linker};
use wasmtime::{Engine, Store};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

pub use cache::CacheHit;
pub use describe::ExportedFunction;
pub use engine::{AllocatorKind, EpochTicker};
pub use fetch::{FetchError, ImageRef};
pub use imports::{is_native, split_interface, ImportClient, ImportError, ImportResolver, Target};
pub use invoke::{arm_deadline, classify, watchdog, Failure, Invocation};
pub use store::{format_bytes, LimitExceeded, OutputCapture, StoreState};
pub use wasi_config::ComponentConfig;

/// Settings of a [`Runtime`].
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    pub pool_instances: u32,
    pub memory_ceiling: u64,
    pub cache_dir: PathBuf,
    /// Bytes of each pooled memory and table kept resident between instances.
    pub keep_resident: u64,
    /// Copy-on-write memory images (else data is copied in at instantiation).
    pub memory_cow: bool,
    /// Single-pass register allocation: faster compiles, slower code.
    pub fast_compile: bool,
}

pub struct Runtime {
    engine: Engine,
    allocator: AllocatorKind,
    base_linker: Linker<StoreState>,
    cache: cache::ArtifactCache,
    ticker: EpochTicker,
    memory_ceiling: u64,
}

/// A component ready to instantiate.
pub struct LoadedComponent {
    pub image: String,
    /// `sha256:<hex>`
    pub digest: String,
    pub pre: InstancePre<StoreState>,
    pub functions: Vec<ServedFunction>,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    pub cache_hit: CacheHit,
    /// Present when the component exports `wasi:http/incoming-handler`.
    pub http: Option<ProxyPre<StoreState>>,
    _lease: cache::Lease,
}

/// An exported function the host serves, with its export index resolved once.
#[derive(Clone)]
pub struct ServedFunction {
    pub export: ExportedFunction,
    pub index: ComponentExportIndex,
}

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{image} is not a WebAssembly file (it starts with {found})")]
    NotWasm { image: String, found: String },
    #[error("{image} is a core WebAssembly module, not a component; wrap it with `wasm-tools component new`")]
    CoreModule { image: String },
    #[error("{image} failed to compile: {reason}")]
    Compile { image: String, reason: String },
    #[error("{image}: {source}")]
    Imports {
        image: String,
        #[source]
        source: ImportError,
    },
}

const WASM_MAGIC: &[u8; 4] = b"\0asm";
const CORE_VERSION: [u8; 4] = [1, 0, 0, 0];

impl Runtime {
    pub fn new(config: &RuntimeConfig) -> anyhow::Result<Self> {
        let (engine, allocator) = engine::build(&engine::EngineSettings {
            pool_instances: config.pool_instances,
            memory_ceiling: config.memory_ceiling,
            keep_resident: config.keep_resident,
            memory_cow: config.memory_cow,
            fast_compile: config.fast_compile,
        })?;
        tracing::info!(allocator = %allocator, "wasm engine ready");
        let mut base_linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut base_linker)
            .map_err(|e| anyhow::anyhow!("adding WASI to the linker: {e}"))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut base_linker)
            .map_err(|e| anyhow::anyhow!("adding wasi:http to the linker: {e}"))?;
        wasi_config::add_to_linker(&mut base_linker)
            .map_err(|e| anyhow::anyhow!("adding wasi:config to the linker: {e}"))?;
        let cache = cache::ArtifactCache::new(&config.cache_dir, &engine);
        tracing::debug!(dir = %cache.dir().display(), "compiled-component cache");
        let ticker = EpochTicker::start(engine.clone())?;
        Ok(Self {
            engine,
            allocator,
            base_linker,
            cache,
            ticker,
            memory_ceiling: config.memory_ceiling,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn allocator(&self) -> AllocatorKind {
        self.allocator
    }

    pub fn memory_ceiling(&self) -> u64 {
        self.memory_ceiling
    }

    pub fn ticker(&self) -> &EpochTicker {
        &self.ticker
    }

    /// Fetches, verifies, compiles (or loads from cache) and links a component.
    pub async fn load(&self, image: &str) -> Result<LoadedComponent, LoadError> {
        let began = std::time::Instant::now();
        let reference = ImageRef::parse(image)?;
        let (bytes, digest_hex) = reference.fetch().await?;
        let fetched = began.elapsed();
        let location = reference.location();
        check_header(&location, &bytes)?;
        let (component, lease, cache_hit) = self
            .cache
            .get(&self.engine, bytes, &digest_hex)
            .await
            .map_err(|e| LoadError::Compile {
                image: location.clone(),
                reason: format!("{e:#}"),
            })?;
        let compiled = began.elapsed();
        let linker =
            imports::linker_for(&self.engine, &component, &self.base_linker).map_err(|source| {
                LoadError::Imports {
                    image: location.clone(),
                    source,
                }
            })?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Imports {
                image: location.clone(),
                source: ImportError {
                    import: "(linking)".into(),
                    reason: format!("{e:#}"),
                },
            })?;
        let functions = served_functions(&self.engine, &component);
        // A component that exports an HTTP handler gets one; other instantiation errors
        // were caught above.
        let http = ProxyPre::new(pre.clone()).ok();
        tracing::debug!(
            image,
            ?cache_hit,
            fetch = ?fetched,
            compile = ?compiled.saturating_sub(fetched),
            link = ?began.elapsed().saturating_sub(compiled),
            "component loaded"
        );
        Ok(LoadedComponent {
            image: image.to_string(),
            digest: format!("sha256:{digest_hex}"),
            pre,
            functions,
            imports: describe::import_names(&self.engine, &component),
            exports: describe::export_names(&self.engine, &component),
            cache_hit,
            http,
            _lease: lease,
        })
    }

    /// A fresh store for one invocation.
    pub fn new_store(
        &self,
        limits: &ComponentLimits,
        client: ImportClient,
        output: &OutputCapture,
        config: ComponentConfig,
    ) -> Store<StoreState> {
        let wasi = WasiCtxBuilder::new()
            .stdout(output.clone())
            .stderr(output.clone())
            .build();
        let state = StoreState {
            wasi,
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            table: Default::default(),
            limiter: store::Limiter {
                max_memory: limits.max_memory_bytes,
                max_table_elements: 1_000_000,
            },
            rpc: store::RpcState {
                client,
                shared: Default::default(),
            },
            output: output.clone(),
            config,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store
    }
}

fn check_header(image: &str, bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != WASM_MAGIC {
        let head = &bytes[..bytes.len().min(8)];
        return Err(LoadError::NotWasm {
            image: image.to_string(),
            found: if head.is_empty() {
                "nothing: the file is empty".to_string()
            } else {
                format!("bytes {head:02x?}")
            },
        });
    }
    if bytes[4..8] == CORE_VERSION {
        return Err(LoadError::CoreModule {
            image: image.to_string(),
        });
    }
    Ok(())
}

/// Exported functions whose values can cross the lattice; others are left unserved.
fn served_functions(engine: &Engine, component: &Component) -> Vec<ServedFunction> {
    describe::exported_functions(engine, component)
        .into_iter()
        .filter_map(|export| {
            if let Some(what) = export.signature.unsupported() {
                tracing::debug!(
                    function = %export.signature.qualified_name(),
                    what,
                    "not serving an export whose values cannot cross the lattice"
                );
                return None;
            }
            let sig = &export.signature;
            let parent = if sig.instance.is_empty() {
                None
            } else {
                Some(component.get_export_index(None, &sig.instance)?)
            };
            let index = component.get_export_index(parent.as_ref(), &sig.name)?;
            Some(ServedFunction { export, index })
        })
        .collect()
}

/// The default limits of a host, with per-start overrides applied and checked.
pub fn limits(
    defaults: &ComponentLimits,
    memory_ceiling: u64,
    max_memory_bytes: Option<u64>,
    timeout_ms: Option<u64>,
) -> Result<ComponentLimits, String> {
    let limits = ComponentLimits {
        max_memory_bytes: max_memory_bytes.unwrap_or(defaults.max_memory_bytes),
        timeout_ms: timeout_ms.unwrap_or(defaults.timeout_ms),
    };
    if limits.max_memory_bytes > memory_ceiling {
        return Err(format!(
            "memory limit {} is above this host's ceiling of {} (start the host with a larger --memory-ceiling)",
            format_bytes(limits.max_memory_bytes),
            format_bytes(memory_ceiling)
        ));
    }
    if limits.max_memory_bytes < 64 << 10 {
        return Err("memory limit must be at least 64 KiB (one wasm page)".to_string());
    }
    if limits.timeout_ms == 0 {
        return Err("execution time limit must be positive".to_string());
    }
    Ok(limits)
}

/// Shared handle to the runtime.
pub type SharedRuntime = Arc<Runtime>;
