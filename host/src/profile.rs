//! Host profiles: one flag (`--profile`, `TRELLIS_PROFILE`) that picks the defaults of the
//! sizing flags. `default` is the server-sized host; `edge` is for a board: a small instance
//! pool, a small memory ceiling, less memory kept resident and a quieter heartbeat. A flag
//! given explicitly (or through its environment variable) always wins over its profile.
//!
//! [`Profile::defaults`] is the only table of these values; the `--help` texts are built
//! from it.

use std::time::Duration;

/// What `--profile` picks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// A server.
    #[default]
    Default,
    /// A board: a small pool and small memories, longer intervals.
    Edge,
}

/// The defaults a profile gives the sizing flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProfileDefaults {
    /// `--pool-instances`
    pub pool_instances: u32,
    /// `--memory-ceiling`
    pub memory_ceiling: u64,
    /// `--max-memory`
    pub max_memory: u64,
    /// `--pool-keep-resident`
    pub pool_keep_resident: u64,
    /// `--heartbeat-interval`
    pub heartbeat_interval: Duration,
    /// `--provider-health-interval`
    pub provider_health_interval: Duration,
    /// `--portable-code`
    pub portable_code: bool,
}

impl Profile {
    pub const ALL: [Profile; 2] = [Profile::Default, Profile::Edge];

    /// The profile's defaults: the one place they are written down.
    pub const fn defaults(self) -> ProfileDefaults {
        match self {
            Profile::Default => ProfileDefaults {
                pool_instances: 1000,
                memory_ceiling: 1 << 30,
                max_memory: 64 << 20,
                pool_keep_resident: 128 << 10,
                heartbeat_interval: Duration::from_secs(5),
                provider_health_interval: Duration::from_secs(5),
                portable_code: false,
            },
            Profile::Edge => ProfileDefaults {
                pool_instances: 16,
                memory_ceiling: 64 << 20,
                max_memory: 16 << 20,
                pool_keep_resident: 64 << 10,
                heartbeat_interval: Duration::from_secs(15),
                provider_health_interval: Duration::from_secs(15),
                // A board loads what a server compiled for it (`--precompile`).
                portable_code: true,
            },
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Edge => "edge",
        }
    }
}

/// A flag whose default comes from the profile.
#[derive(Clone, Copy, Debug)]
pub enum Field {
    PoolInstances,
    MemoryCeiling,
    MaxMemory,
    PoolKeepResident,
    HeartbeatInterval,
    ProviderHealthInterval,
    PortableCode,
}

impl Field {
    const ALL: [Field; 7] = [
        Field::PoolInstances,
        Field::MemoryCeiling,
        Field::MaxMemory,
        Field::PoolKeepResident,
        Field::HeartbeatInterval,
        Field::ProviderHealthInterval,
        Field::PortableCode,
    ];

    fn flag(self) -> &'static str {
        match self {
            Field::PoolInstances => "--pool-instances",
            Field::MemoryCeiling => "--memory-ceiling",
            Field::MaxMemory => "--max-memory",
            Field::PoolKeepResident => "--pool-keep-resident",
            Field::HeartbeatInterval => "--heartbeat-interval",
            Field::ProviderHealthInterval => "--provider-health-interval",
            Field::PortableCode => "--portable-code",
        }
    }

    /// The field's default under `profile`, written as the flag takes it.
    fn value(self, profile: Profile) -> String {
        let d = profile.defaults();
        match self {
            Field::PoolInstances => d.pool_instances.to_string(),
            Field::MemoryCeiling => bytes(d.memory_ceiling),
            Field::MaxMemory => bytes(d.max_memory),
            Field::PoolKeepResident => bytes(d.pool_keep_resident),
            Field::HeartbeatInterval => {
                humantime::format_duration(d.heartbeat_interval).to_string()
            }
            Field::ProviderHealthInterval => {
                humantime::format_duration(d.provider_health_interval).to_string()
            }
            Field::PortableCode => d.portable_code.to_string(),
        }
    }
}

/// `1GiB`, `64MiB`, `128KiB`: the largest unit that divides `n`.
fn bytes(n: u64) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if n >= 1 << shift && n % (1 << shift) == 0 {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

/// The help of a flag whose default comes from the profile: `what` and its default under
/// every profile.
pub fn flag_help(what: &str, field: Field) -> String {
    let defaults: Vec<String> = Profile::ALL
        .iter()
        .map(|p| format!("{} {}", p.name(), field.value(*p)))
        .collect();
    format!("{what} [default by --profile: {}]", defaults.join(", "))
}

/// The help of `--profile`: the whole table.
pub fn profile_help() -> String {
    let mut help = String::from(
        "Defaults for a kind of machine: `default` (a server) or `edge` (a board). \
         Flags given explicitly win.",
    );
    for field in Field::ALL {
        let values: Vec<String> = Profile::ALL
            .iter()
            .map(|p| format!("{} {}", p.name(), field.value(*p)))
            .collect();
        help.push_str(&format!("\n  {}: {}", field.flag(), values.join(", ")));
    }
    help
}
