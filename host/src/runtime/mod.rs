//! The wasmtime runtime of a host: one engine, components loaded from images and compiled
//! once (cached by digest), and a fresh, limited instance per invocation.
//!
//! - `engine`: the engine (pooling or on-demand allocation) and the epoch ticker.
//! - `fetch` and `cache`: image bytes, and compiled artifacts on disk and in memory;
//!   `shared` (turned on by `shared_args`): artifacts signed and shared through the lattice.
//! - `describe`: what a component exports and imports, as data.
//! - `imports`: linking imports to the lattice, resolved per call by link.
//! - `instance`: the one path that builds and runs an instance; `invoke` calls an export
//!   through it; `failure` names what went wrong.
//! - `state`, `limits`, `output`, `wasi_config`: what an instance's store holds.

mod cache;
mod cpu;
mod describe;
mod engine;
mod failure;
mod fetch;
mod fingerprint;
pub mod grants;
mod imports;
mod instance;
mod invoke;
mod limits;
mod output;
mod shared;
mod shared_args;
mod shared_read;
#[cfg(test)]
mod shared_tests;
mod state;
mod wasi_config;
mod wasi_logging;
mod wasi_otel;

use std::path::PathBuf;
use std::sync::Arc;

use wasmtime::component::{InstancePre, Linker};
use wasmtime::Engine;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

pub use cache::CacheHit;
pub use describe::{ExportedFunction, ServedFunction};
pub use engine::{AllocatorKind, EpochTicker};
pub use failure::{classify, Failure};
pub use fetch::{fetch as fetch_image, FetchError, DEFAULT_FETCH_TIMEOUT};
pub use imports::{is_native, split_interface, ImportClient, ImportError, ImportResolver, Target};
pub use instance::{Instance, InstanceSpec, Linking};
pub use invoke::call_export;
pub use limits::{format_bytes, HostLimits, LimitExceeded, MemoryBudget};
pub use output::OutputCapture;
pub use shared::{ArtifactTrust, Lookup, SharedArtifacts, MAX_ARTIFACT_BYTES};
pub use shared_args::{ArtifactArgs, ArtifactSettings, HOST_TARGET};
pub use shared_read::Rejected;
pub use state::StoreState;
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
    /// Compile for [`HOST_TARGET`] with its baseline CPU features, not the detected ones.
    pub portable_code: bool,
    /// How long fetching an image may take.
    pub fetch_timeout: std::time::Duration,
    /// Bytes of guest memory all instances may hold together.
    pub memory_budget: u64,
}

pub struct Runtime {
    engine: Engine,
    allocator: AllocatorKind,
    base_linker: Linker<StoreState>,
    cache: cache::ArtifactCache,
    ticker: EpochTicker,
    memory_ceiling: u64,
    fetch_timeout: std::time::Duration,
    budget: Arc<MemoryBudget>,
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

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{image} is not a WebAssembly component ({why})")]
    NotWasm { image: String, why: &'static str },
    #[error("{image} is a core WebAssembly module, not a component; wrap it with `wasm-tools component new`")]
    CoreModule { image: String },
    #[error("{image} failed to compile: {reason}")]
    Compile { image: String, reason: String },
    #[error(
        "{image} was not precompiled for this host ({why}), which has no compiler (a board's \
         build): on a host that has one, run `trellis-host --precompile {image} \
         --precompile-target {target} --lattice-key-file KEY` with the flags this host runs \
         with (fingerprint {fingerprint}), and give this host the key's public half"
    )]
    NotPrecompiled {
        image: String,
        target: &'static str,
        fingerprint: String,
        why: String,
    },
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error("{image}: {source}")]
    Imports {
        image: String,
        #[source]
        source: ImportError,
    },
}

impl From<LoadError> for trellis_lattice::ControlError {
    fn from(err: LoadError) -> Self {
        use trellis_lattice::ControlError as E;
        match &err {
            LoadError::Fetch(f) => f.control_error(),
            LoadError::NotWasm { .. }
            | LoadError::CoreModule { .. }
            | LoadError::Compile { .. } => E::invalid(err.to_string()),
            LoadError::Imports { .. } => E::refused(err.to_string()),
            LoadError::NotPrecompiled { .. } => E::unavailable(err.to_string()),
            LoadError::Policy(_) => match err {
                LoadError::Policy(p) => p.into(),
                _ => E::internal(err.to_string()),
            },
        }
    }
}

// `--precompile`: a component compiled by an engine configured as another host's would be —
// the same flags, maybe another target — for that host to load instead of compiling.

/// An artifact for hosts whose engine has `fingerprint`, and for hosts without a compiler
/// started with the same flags on that target (`load_fingerprint`).
pub struct Precompiled {
    pub fingerprint: String,
    pub load_fingerprint: String,
    /// The component's sha256, hex.
    pub digest: String,
    pub artifact: Vec<u8>,
}

/// Fetches `image` and compiles it for `target` with the engine `config` describes.
#[cfg(feature = "compiler")]
pub async fn precompile(
    config: &RuntimeConfig,
    target: &str,
    image: &str,
) -> Result<Precompiled, LoadError> {
    let (bytes, digest, location) = fetch::fetch_component(image, config.fetch_timeout).await?;
    check_header(&location, &bytes)?;
    let settings = engine::EngineSettings {
        target: Some(target.to_string()),
        ..engine_settings(config)
    };
    let failed = |reason: String| LoadError::Compile {
        image: location.clone(),
        reason,
    };
    let (memory_cow, target) = (settings.memory_cow, target.to_string());
    let compiled = tokio::task::spawn_blocking(move || {
        let (engine, allocator) = engine::build(&settings).map_err(|e| format!("{e:#}"))?;
        let artifact = engine
            .precompile_component(&bytes)
            .map_err(|e| format!("{e:#}"))?;
        let load = fingerprint::for_loading(&target, allocator, memory_cow);
        Ok::<_, String>((fingerprint::of_engine(&engine), load, artifact))
    })
    .await
    .map_err(|e| failed(format!("compile task failed: {e}")))?;
    let (fingerprint, load_fingerprint, artifact) = compiled.map_err(failed)?;
    Ok(Precompiled {
        fingerprint,
        load_fingerprint,
        digest,
        artifact,
    })
}

/// Without a compiler there is nothing to precompile with.
#[cfg(not(feature = "compiler"))]
pub async fn precompile(_: &RuntimeConfig, _: &str, image: &str) -> Result<Precompiled, LoadError> {
    Err(LoadError::Compile {
        image: image.to_string(),
        reason: "this trellis-host was built without a compiler (`--no-default-features`)".into(),
    })
}

/// The engine a runtime with `config` has.
fn engine_settings(config: &RuntimeConfig) -> engine::EngineSettings {
    engine::EngineSettings {
        pool_instances: config.pool_instances,
        memory_ceiling: config.memory_ceiling,
        keep_resident: config.keep_resident,
        memory_cow: config.memory_cow,
        fast_compile: config.fast_compile,
        target: config.portable_code.then(|| HOST_TARGET.to_string()),
    }
}

const WASM_MAGIC: &[u8; 4] = b"\0asm";
const CORE_VERSION: [u8; 4] = [1, 0, 0, 0];

impl Runtime {
    pub fn new(config: &RuntimeConfig) -> anyhow::Result<Self> {
        let (engine, allocator) = engine::build(&engine_settings(config))?;
        tracing::info!(allocator = %allocator, "wasm engine ready");
        let mut base_linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut base_linker)
            .map_err(|e| anyhow::anyhow!("adding WASI to the linker: {e}"))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut base_linker)
            .map_err(|e| anyhow::anyhow!("adding wasi:http to the linker: {e}"))?;
        wasi_config::add_to_linker(&mut base_linker, |s: &mut StoreState| &mut s.config)
            .map_err(|e| anyhow::anyhow!("adding wasi:config to the linker: {e}"))?;
        wasi_logging::add_to_linker(&mut base_linker, |s: &mut StoreState| &mut s.logging)
            .map_err(|e| anyhow::anyhow!("adding wasi:logging to the linker: {e}"))?;
        wasi_otel::add_to_linker(&mut base_linker, |s: &mut StoreState| &mut s.otel)
            .map_err(|e| anyhow::anyhow!("adding wasi:otel to the linker: {e}"))?;
        crate::gpio::wasi::add_to_linker(&mut base_linker, StoreState::gpio_view)
            .map_err(|e| anyhow::anyhow!("adding wasi:gpio to the linker: {e}"))?;
        #[cfg(feature = "compiler")]
        let fingerprint = fingerprint::of_engine(&engine);
        #[cfg(not(feature = "compiler"))]
        let fingerprint = fingerprint::for_loading(HOST_TARGET, allocator, config.memory_cow);
        let cache = cache::ArtifactCache::new(&config.cache_dir, fingerprint);
        tracing::debug!(dir = %cache.dir().display(), "compiled-component cache");
        let ticker = EpochTicker::start(engine.clone())?;
        Ok(Self {
            engine,
            allocator,
            base_linker,
            cache,
            ticker,
            memory_ceiling: config.memory_ceiling,
            fetch_timeout: config.fetch_timeout,
            budget: MemoryBudget::new(config.memory_budget),
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

    /// Shares compiled artifacts with the other hosts of the lattice from now on.
    pub fn share_artifacts(&self, shared: SharedArtifacts) {
        tracing::debug!(fingerprint = %self.cache.fingerprint(), can_publish = shared.can_publish(), "sharing compiled artifacts with the lattice");
        self.cache.share(shared);
    }

    /// Waits (at most `timeout`) for compiled artifacts still being written to the disk cache;
    /// false when some were not finished in time.
    pub async fn finish_cache_writes(&self, timeout: std::time::Duration) -> bool {
        self.cache.finish_writes(timeout).await
    }

    /// The memory all instances share.
    pub fn memory_budget(&self) -> &Arc<MemoryBudget> {
        &self.budget
    }

    /// A fresh instance for one invocation (see [`instance`]).
    pub fn instance(&self, linking: &Linking, spec: InstanceSpec) -> Instance {
        instance::build(&self.engine, &self.ticker, &self.budget, linking, spec)
    }

    /// Fetches, verifies, compiles (or loads from cache) and links a component.
    pub async fn load(&self, image: &str) -> Result<LoadedComponent, LoadError> {
        self.load_checked(image, None).await
    }

    /// Fetches `image` and runs the issuer policy's `check` on it, compiling nothing (a pin
    /// on a start request for a component already running); returns its `sha256:` digest.
    pub async fn check_image(
        &self,
        image: &str,
        check: crate::policy::ComponentCheck,
    ) -> Result<String, LoadError> {
        let (bytes, digest_hex, location) =
            fetch::fetch_component(image, self.fetch_timeout).await?;
        check_header(&location, &bytes)?;
        check.run_blocking(&location, bytes).await?;
        Ok(format!("sha256:{digest_hex}"))
    }

    /// [`Runtime::load`], the fetched bytes first passing the issuer policy's `check` (even
    /// when a compiled copy is cached: the claim is in the bytes).
    pub async fn load_checked(
        &self,
        image: &str,
        check: Option<crate::policy::ComponentCheck>,
    ) -> Result<LoadedComponent, LoadError> {
        let began = std::time::Instant::now();
        let (bytes, digest_hex, location) =
            fetch::fetch_component(image, self.fetch_timeout).await?;
        let fetched = began.elapsed();
        check_header(&location, &bytes)?;
        let bytes = match check {
            None => bytes,
            Some(check) => check.run_blocking(&location, bytes).await?,
        };
        let (component, lease, cache_hit) = self
            .cache
            .get(&self.engine, bytes, &digest_hex)
            .await
            .map_err(|e| match e {
                cache::GetError::Compile(e) => LoadError::Compile {
                    image: location.clone(),
                    reason: format!("{e:#}"),
                },
                cache::GetError::NotPrecompiled { fingerprint, why } => LoadError::NotPrecompiled {
                    image: location.clone(),
                    target: HOST_TARGET,
                    fingerprint,
                    why,
                },
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
        let functions = describe::served_functions(&self.engine, &component);
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
}

fn check_header(image: &str, bytes: &[u8]) -> Result<(), LoadError> {
    // What the file holds is not repeated back: it may be anything (a secret, say).
    if bytes.len() < 8 || &bytes[..4] != WASM_MAGIC {
        return Err(LoadError::NotWasm {
            image: image.to_string(),
            why: if bytes.is_empty() {
                "the file is empty"
            } else {
                "it does not start with the WebAssembly magic number"
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
