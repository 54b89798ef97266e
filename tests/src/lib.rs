//! Harness for Trellis integration tests: real `nats-server`s on free loopback ports, hosts
//! in-process and as processes, the `trellis` CLI, and components built from `examples/`.
//!
//! Everything a test starts is stopped when its handle drops, so tests run in parallel and
//! leave nothing behind.

mod cli;
pub mod deploy;
mod host;
mod nats;
mod redis;
pub mod slow_files;
pub mod stats;
mod web;

use std::path::PathBuf;
use std::time::Duration;

pub use cli::{Cli, CliOutput};
pub use deploy::ManagerProcess;
pub use host::{HostProcess, InProcessHost};
pub use nats::NatsServer;
pub use redis::{pids_with_env, RedisServer};
pub use web::{route, start_http_server};

/// The workspace's target directory (where the binaries and components are).
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    // Test executables live in target/<profile>/deps/.
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "target"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// A binary of this workspace, built by `cargo build --workspace` in the same profile.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from)
        .expect("test executable in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the workspace first (cargo build --workspace{})",
        path.display(),
        if profile_dir.ends_with("release") {
            " --release"
        } else {
            ""
        }
    );
    path
}

/// A component built by `examples/build.sh`.
pub fn component(name: &str) -> PathBuf {
    let path = target_dir().join("components").join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run examples/build.sh first",
        path.display()
    );
    path
}

/// `file://` reference to a component.
pub fn component_ref(name: &str) -> String {
    format!("file://{}", component(name).display())
}

/// A compiled-component cache shared by all tests, so each component compiles once per run.
pub fn shared_cache_dir() -> PathBuf {
    let dir = target_dir().join("test-cache");
    std::fs::create_dir_all(&dir).expect("creating the shared test cache");
    dir
}

/// A program the tests need, or a panic saying how to install it.
pub fn require_program(name: &str, install: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed; install it with: {install}"))
}

/// A free TCP port on 127.0.0.1 (free when asked; callers retry if it is taken meanwhile).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral port")
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

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

mod events;
pub use events::EventLog;
