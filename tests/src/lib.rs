//! Harness for Trellis integration tests: real `nats-server`s on free loopback ports, hosts
//! in-process and as processes, the `trellis` CLI, and components built from `examples/`.
//!
//! Everything a test starts is stopped when its handle drops, so tests run in parallel and
//! leave nothing behind.

pub mod artifacts;
mod cli;
pub mod deploy;
mod events;
mod fixtures;
pub mod gpio;
mod host;
pub mod leaf;
pub mod messaging;

mod nats;
pub mod otlp;
mod otlp_wire;
mod otlp_model;
mod paths;
pub mod proc;
mod redis;
pub mod secure;
pub mod slow_files;
pub mod stats;
mod wait;
mod web;

pub use cli::{Cli, CliChild, CliOutput};
pub use deploy::ManagerProcess;
pub use events::EventLog;
pub use fixtures::{
    counter_across_two_hosts, counter_across_two_hosts_with, counter_link, greeter_keeps_answering,
    start_provider_on,
};
pub use host::{HostProcess, InProcessHost};
pub use nats::NatsServer;
pub use otlp::{OtlpReceiver, Protocol};
pub use otlp_model::connected_trace;
pub use paths::{
    bin, component, component_ref, require_program, scale_request, shared_cache_dir, target_dir,
};
pub use redis::{pids_with_env, RedisServer};
pub use wait::{free_port, wait_for};
pub use web::{route, start_http_server};

/// Logs to the test's output (shown for failing tests), once per process.
pub fn init_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("TRELLIS_TEST_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
    });
}
