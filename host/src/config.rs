//! Host configuration: command-line flags and environment, with defaults.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use trellis_lattice::client::NatsTls;
use trellis_lattice::labels::{self, Labels};
use trellis_lattice::NatsAuth;

use crate::profile::{flag_help, Field, Profile};

/// Flags of `trellis-host`. Every flag has an environment variable.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "trellis-host",
    version,
    about = "A Trellis host: joins a NATS lattice and runs WebAssembly components"
)]
pub struct HostArgs {
    /// The NATS server to join: URL, credentials and TLS.
    #[command(flatten)]
    pub nats: trellis_lattice::client::NatsArgs,

    // The long help is the profile table (`profile::profile_help`).
    #[arg(
        long,
        env = "TRELLIS_PROFILE",
        value_enum,
        default_value = "default",
        help = "Defaults for a kind of machine: `default` (a server) or `edge` (a board); flags \
                given explicitly win",
        long_help = crate::profile::profile_help()
    )]
    pub profile: Profile,

    /// Lattice to join; lattices share a NATS server without seeing each other.
    #[arg(long, env = "TRELLIS_LATTICE", default_value = trellis_lattice::DEFAULT_LATTICE)]
    pub lattice: String,

    /// The JetStream domain holding the lattice's state, for a host on a leaf node whose
    /// own server runs JetStream (or has none): the hub's domain, e.g. `hub`.
    #[arg(long, env = "TRELLIS_JS_DOMAIN")]
    pub js_domain: Option<String>,

    /// Where the host keeps what makes it itself across restarts: its key, the workload it
    /// was last told to run (restored at start, with or without the manager) and a copy of
    /// the links and config that workload uses (read while the lattice store is
    /// unreachable). Default: `$XDG_STATE_HOME/trellis/host` or `~/.local/state/trellis/host`.
    #[arg(long, env = "TRELLIS_HOST_STATE_DIR", conflicts_with = "ephemeral")]
    pub state_dir: Option<PathBuf>,

    /// Keep nothing across restarts: a new id at each start, no workload restored.
    #[arg(long, env = "TRELLIS_HOST_EPHEMERAL")]
    pub ephemeral: bool,

    /// File holding the host's nkey seed (a server key, `SN...`); generated when absent.
    #[arg(long, env = "TRELLIS_HOST_SEED_FILE")]
    pub seed_file: Option<PathBuf>,

    /// The host's nkey seed itself.
    #[arg(
        long,
        env = "TRELLIS_HOST_SEED",
        hide_env_values = true,
        conflicts_with = "seed_file"
    )]
    pub seed: Option<String>,

    /// Human-friendly name; generated when absent.
    #[arg(long, env = "TRELLIS_HOST_NAME")]
    pub name: Option<String>,

    /// A label `key=value` (repeatable). `TRELLIS_LABEL_key=value` in the environment works too.
    #[arg(long = "label", short = 'l', value_name = "KEY=VALUE")]
    pub labels: Vec<String>,

    #[arg(
        long,
        env = "TRELLIS_HEARTBEAT_INTERVAL",
        value_parser = humantime::parse_duration,
        help = flag_help(
            "How often the host announces its full inventory",
            Field::HeartbeatInterval,
        )
    )]
    pub heartbeat_interval: Option<Duration>,

    #[arg(
        long,
        env = "TRELLIS_MAX_MEMORY",
        value_parser = parse_bytes,
        help = flag_help(
            "Default cap on a component instance's linear memory (e.g. 64MiB, 512KiB)",
            Field::MaxMemory,
        )
    )]
    pub max_memory: Option<u64>,

    #[arg(
        long,
        env = "TRELLIS_MEMORY_CEILING",
        value_parser = parse_bytes,
        help = flag_help(
            "The largest memory cap a component may ask for; sizes the pooling allocator's \
             slots",
            Field::MemoryCeiling,
        )
    )]
    pub memory_ceiling: Option<u64>,

    /// Default wall-clock limit on one invocation.
    #[arg(long, env = "TRELLIS_MAX_EXECUTION_TIME", default_value = "10s", value_parser = humantime::parse_duration)]
    pub max_execution_time: Duration,

    /// The longest execution time limit a component may ask for.
    #[arg(long, env = "TRELLIS_MAX_EXECUTION_TIME_CEILING", default_value = "10m", value_parser = humantime::parse_duration)]
    pub max_execution_time_ceiling: Duration,

    /// Guest memory all instances of this host may hold together (e.g. 4GiB); default: half
    /// of the machine's memory (or of the cgroup's limit, when smaller).
    #[arg(long, env = "TRELLIS_MEMORY_BUDGET", value_parser = parse_bytes)]
    pub memory_budget: Option<u64>,

    /// How long a call through a linked import may take before it fails.
    #[arg(long, env = "TRELLIS_RPC_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub rpc_timeout: Duration,

    #[arg(
        long,
        env = "TRELLIS_PROVIDER_HEALTH_INTERVAL",
        value_parser = humantime::parse_duration,
        help = flag_help(
            "How often supervised providers are checked for health",
            Field::ProviderHealthInterval,
        )
    )]
    pub provider_health_interval: Option<Duration>,

    #[arg(
        long,
        env = "TRELLIS_POOL_INSTANCES",
        help = flag_help(
            "Instances the pooling allocator keeps ready (all components together); 0 \
             disables it",
            Field::PoolInstances,
        )
    )]
    pub pool_instances: Option<u32>,

    #[arg(
        long,
        env = "TRELLIS_POOL_KEEP_RESIDENT",
        value_parser = parse_bytes,
        help = flag_help(
            "Bytes of each pooled memory kept resident (reset in place rather than returned to \
             the kernel) between instances. A component whose calls touch only this much \
             memory (link it with a small stack) costs no page-table changes per call",
            Field::PoolKeepResident,
        )
    )]
    pub pool_keep_resident: Option<u64>,

    /// Map memory images copy-on-write (`true`) or copy data in at instantiation (`false`).
    #[arg(long, env = "TRELLIS_MEMORY_COW", default_value_t = true, action = clap::ArgAction::Set)]
    pub memory_cow: bool,

    /// Compile with Cranelift's single-pass register allocator: shorter compiles (a shorter
    /// cold start; the README's Performance section has the measured difference) and
    /// somewhat slower code.
    #[arg(long, env = "TRELLIS_FAST_COMPILE")]
    pub fast_compile: bool,

    /// How long fetching a component or provider image may take before the start fails.
    #[arg(long, env = "TRELLIS_FETCH_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub fetch_timeout: Duration,

    /// Where compiled components are cached.
    #[arg(long, env = "TRELLIS_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Time in-flight invocations get to finish when the host stops.
    #[arg(long, env = "TRELLIS_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// Log filter (tracing's env-filter syntax).
    #[arg(long, env = "TRELLIS_LOG", default_value = "info")]
    pub log: String,

    /// Log as JSON lines.
    #[arg(long, env = "TRELLIS_LOG_JSON")]
    pub log_json: bool,

    /// Export traces, metrics and logs over OTLP, configured by the standard `OTEL_*`
    /// variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL`, …); providers
    /// the host starts inherit the setting.
    #[arg(long, env = "TRELLIS_OBSERVABILITY", action = clap::ArgAction::SetTrue, value_parser = clap::builder::FalseyValueParser::new())]
    pub observability: bool,

    /// A host label to put on the exported resource as `trellis.label.KEY` (repeatable;
    /// `tier` always is).
    #[arg(long = "otel-label", value_name = "KEY")]
    pub otel_labels: Vec<String>,

    /// A simulated GPIO chip `NAME=LINES` (repeatable, e.g. `--gpio-sim sim0=8`): its inputs
    /// are driven with `trellis gpio set`.
    #[arg(long = "gpio-sim", value_name = "NAME=LINES")]
    pub gpio_sim: Vec<String>,

    #[command(flatten)]
    pub secrets: crate::secrets::SecretsArgs,

    #[command(flatten)]
    pub provider_exec: crate::providers::allow::ProviderExecArgs,

    #[command(flatten)]
    pub grants: crate::runtime::grants::GrantArgs,

    #[command(flatten)]
    pub issuers: crate::policy::IssuerArgs,

    #[command(flatten)]
    pub artifacts: crate::runtime::ArtifactArgs,
}

pub use trellis_lattice::units::parse_bytes;

/// Everything a host needs to start, resolved from flags and environment.
#[derive(Clone, Debug)]
pub struct HostConfig {
    pub nats_url: String,
    pub nats_auth: NatsAuth,
    /// TLS files of the NATS connection (passed on to external providers).
    pub nats_tls: NatsTls,
    /// The profile the sizing defaults came from.
    pub profile: Profile,
    pub lattice: String,
    /// The JetStream domain of the lattice's state (`None`: the nearest JetStream).
    pub js_domain: Option<String>,
    /// The state directory (`None`: an ephemeral host).
    pub state_dir: Option<PathBuf>,
    pub seed: Option<String>,
    pub friendly_name: Option<String>,
    /// User labels (built-in ones are added by the host).
    pub labels: Labels,
    pub heartbeat_interval: Duration,
    pub max_memory: u64,
    pub memory_ceiling: u64,
    pub max_execution_time: Duration,
    pub max_execution_time_ceiling: Duration,
    pub memory_budget: u64,
    pub rpc_timeout: Duration,
    pub provider_health_interval: Duration,
    pub pool_instances: u32,
    pub pool_keep_resident: u64,
    pub memory_cow: bool,
    pub fast_compile: bool,
    pub fetch_timeout: Duration,
    pub cache_dir: PathBuf,
    pub shutdown_timeout: Duration,
    /// Simulated GPIO chips: name and number of lines.
    pub gpio_sim: Vec<(String, u32)>,
    /// The lattice's secrets key file (`--secrets-key`): opens sealed config.
    pub secrets_key: Option<PathBuf>,
    /// What the host may execute as an external provider, and as whom.
    pub provider_exec: crate::providers::allow::ExecPolicy,
    /// Which of the host's directories components may be given.
    pub grants: crate::runtime::grants::GrantPolicy,
    /// Whose signed components and provider executables run here (`--allowed-issuer`).
    pub issuers: crate::policy::IssuerPolicy,
    /// Which lattice key signs the compiled artifacts hosts share (`--lattice-key-file`),
    /// portable code, `--precompile`.
    pub artifacts: crate::runtime::ArtifactSettings,
}

impl HostConfig {
    /// The settings of the host's wasm runtime.
    pub fn runtime_config(&self) -> crate::runtime::RuntimeConfig {
        crate::runtime::RuntimeConfig {
            pool_instances: self.pool_instances,
            memory_ceiling: self.memory_ceiling,
            cache_dir: self.cache_dir.clone(),
            keep_resident: self.pool_keep_resident,
            memory_cow: self.memory_cow,
            fast_compile: self.fast_compile,
            portable_code: self.artifacts.portable_code,
            fetch_timeout: self.fetch_timeout,
            memory_budget: self.memory_budget,
        }
    }

    /// The credentials and TLS of the host's NATS connection.
    pub fn nats_options(&self) -> trellis_lattice::client::NatsOptions {
        trellis_lattice::client::NatsOptions {
            auth: self.nats_auth.clone(),
            tls: self.nats_tls.clone(),
        }
    }

    /// A configuration with defaults (the `default` profile's), for embedding a host (tests,
    /// `trellis up`).
    pub fn new(nats_url: impl Into<String>, lattice: impl Into<String>) -> Self {
        let sizing = Profile::Default.defaults();
        Self {
            nats_url: nats_url.into(),
            nats_auth: NatsAuth::None,
            nats_tls: NatsTls::default(),
            profile: Profile::Default,
            lattice: lattice.into(),
            js_domain: None,
            state_dir: None,
            seed: None,
            friendly_name: None,
            labels: Labels::new(),
            heartbeat_interval: sizing.heartbeat_interval,
            max_memory: sizing.max_memory,
            memory_ceiling: sizing.memory_ceiling,
            max_execution_time: Duration::from_secs(10),
            max_execution_time_ceiling: Duration::from_secs(600),
            memory_budget: default_memory_budget(),
            rpc_timeout: Duration::from_secs(10),
            provider_health_interval: sizing.provider_health_interval,
            pool_instances: sizing.pool_instances,
            pool_keep_resident: sizing.pool_keep_resident,
            memory_cow: true,
            fast_compile: false,
            fetch_timeout: crate::runtime::DEFAULT_FETCH_TIMEOUT,
            cache_dir: default_cache_dir(),
            shutdown_timeout: Duration::from_secs(10),
            gpio_sim: Vec::new(),
            secrets_key: None,
            provider_exec: Default::default(),
            grants: Default::default(),
            issuers: Default::default(),
            artifacts: Default::default(),
        }
    }

    /// Resolves flags, the profile's defaults for flags not given, the environment's
    /// `TRELLIS_LABEL_*` variables and the seed file.
    pub fn from_args(args: HostArgs) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let sizing = args.profile.defaults();
        let memory_ceiling = args.memory_ceiling.unwrap_or(sizing.memory_ceiling);
        // The profile's per-instance default never exceeds a ceiling given explicitly.
        let max_memory = args
            .max_memory
            .unwrap_or(sizing.max_memory.min(memory_ceiling));
        trellis_lattice::id::validate_lattice(&args.lattice)?;
        let js_domain = args.js_domain.filter(|d| !d.is_empty());
        if let Some(domain) = &js_domain {
            trellis_lattice::id::validate_js_domain(domain).context("--js-domain")?;
        }
        let mut labels = Labels::new();
        for (key, value) in std::env::vars() {
            if let Some(k) = key.strip_prefix("TRELLIS_LABEL_") {
                let (k, v) = (k.to_string(), value);
                labels::validate_user_label(&k, &v)
                    .with_context(|| format!("environment variable {key}"))?;
                labels.insert(k, v);
            }
        }
        for pair in &args.labels {
            let (k, v) = labels::parse_pair(pair).with_context(|| format!("--label {pair}"))?;
            labels::validate_user_label(&k, &v).with_context(|| format!("--label {pair}"))?;
            labels.insert(k, v);
        }
        let state_dir = match (args.ephemeral, args.state_dir) {
            (true, _) => None,
            (false, Some(dir)) => Some(dir),
            (false, None) => Some(crate::state_dir::default_path()),
        };
        let seed = match (&args.seed, &args.seed_file, &state_dir) {
            (Some(seed), _, _) => Some(seed.trim().to_string()),
            (None, Some(path), _) => Some(crate::identity::seed_from_file(path)?),
            (None, None, Some(dir)) => {
                crate::state_dir::ensure(dir)?;
                Some(crate::identity::seed_from_file(
                    &crate::state_dir::seed_path(dir),
                )?)
            }
            (None, None, None) => None,
        };
        if args.max_execution_time > args.max_execution_time_ceiling {
            anyhow::bail!(
                "--max-execution-time ({}) is longer than --max-execution-time-ceiling ({})",
                humantime::format_duration(args.max_execution_time),
                humantime::format_duration(args.max_execution_time_ceiling)
            );
        }
        let memory_budget = args.memory_budget.unwrap_or_else(default_memory_budget);
        if max_memory > memory_budget {
            anyhow::bail!(
                "--max-memory ({}) is larger than the memory budget ({}); give a larger --memory-budget",
                max_memory,
                memory_budget
            );
        }
        if max_memory > memory_ceiling {
            anyhow::bail!(
                "--max-memory ({}) is larger than --memory-ceiling ({})",
                max_memory,
                memory_ceiling
            );
        }
        let nats = args.nats.options()?;
        Ok(Self {
            nats_url: args.nats.nats_url,
            nats_auth: nats.auth,
            nats_tls: nats.tls,
            profile: args.profile,
            lattice: args.lattice,
            js_domain,
            state_dir,
            seed,
            friendly_name: args.name,
            labels,
            heartbeat_interval: args.heartbeat_interval.unwrap_or(sizing.heartbeat_interval),
            max_memory,
            memory_ceiling,
            max_execution_time: args.max_execution_time,
            max_execution_time_ceiling: args.max_execution_time_ceiling,
            memory_budget,
            rpc_timeout: args.rpc_timeout,
            provider_health_interval: args
                .provider_health_interval
                .unwrap_or(sizing.provider_health_interval),
            pool_instances: args.pool_instances.unwrap_or(sizing.pool_instances),
            pool_keep_resident: args.pool_keep_resident.unwrap_or(sizing.pool_keep_resident),
            memory_cow: args.memory_cow,
            fast_compile: args.fast_compile,
            fetch_timeout: args.fetch_timeout,
            cache_dir: args.cache_dir.unwrap_or_else(default_cache_dir),
            shutdown_timeout: args.shutdown_timeout,
            secrets_key: args.secrets.secrets_key.clone(),
            gpio_sim: args
                .gpio_sim
                .iter()
                .map(|s| crate::gpio::flags::parse_gpio_sim(s))
                .collect::<anyhow::Result<_>>()?,
            grants: crate::runtime::grants::GrantPolicy::from_args(&args.grants)?,
            issuers: crate::policy::IssuerPolicy::from_args(&args.issuers)?,
            artifacts: args.artifacts.resolve(args.profile)?,
            provider_exec: crate::providers::allow::ExecPolicy::from_args(args.provider_exec)?,
        })
    }
}

impl HostConfig {
    /// Fixes the host's identity before it starts, so what needs the host id earlier (the
    /// telemetry resource) and the host agree: a generated key becomes this config's seed.
    pub fn pin_identity(&mut self) -> anyhow::Result<crate::identity::Identity> {
        let identity =
            crate::identity::Identity::new(self.seed.as_deref(), self.friendly_name.clone())?;
        if self.seed.is_none() {
            let seed = identity
                .key
                .seed()
                .map_err(|e| anyhow::anyhow!("cannot keep the generated host key: {e}"))?;
            self.seed = Some(seed);
        }
        self.friendly_name = Some(identity.friendly_name.clone());
        Ok(identity)
    }
}

/// Half of the machine's memory, or of the cgroup's limit when that is smaller: what guest
/// instances may hold together unless told otherwise.
pub fn default_memory_budget() -> u64 {
    let machine = crate::labels::memory_bytes().unwrap_or(2 << 30);
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    machine.min(cgroup) / 2
}

/// `$TRELLIS_CACHE_DIR`, else `$XDG_CACHE_HOME/trellis`, else `~/.cache/trellis`, else a
/// directory under the system temp dir.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("trellis");
    }
    if let Some(home) = std::env::var_os("HOME") {
        return PathBuf::from(home).join(".cache").join("trellis");
    }
    std::env::temp_dir().join("trellis-cache")
}
