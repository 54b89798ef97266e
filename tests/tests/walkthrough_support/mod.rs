//! What the walkthrough tests share: the CLI run from the checkout's root (so paths read as
//! the README writes them), `trellis up` on free ports, and plain HTTP.

#![allow(dead_code)] // each walkthrough file uses a part

use std::path::PathBuf;
use std::time::Duration;

use trellis_tests::{free_port, shared_cache_dir, Cli, CliChild};

/// Generous: only a hung test waits this long.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// The checkout's root, where the README's commands are typed.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the workspace root")
}

/// A component as the README names it (`target/components/NAME.wasm`, relative to the
/// checkout), or its absolute path when the build went to another target directory.
pub fn readme_component(name: &str) -> String {
    let relative = format!("target/components/{name}.wasm");
    if workspace().join(&relative).is_file() {
        relative
    } else {
        trellis_tests::component(name).display().to_string()
    }
}

/// The CLI in the checkout's root, pointed at `nats_url` through `NATS_URL`.
pub fn cli(nats_url: &str, lattice: &str) -> Cli {
    Cli::new(nats_url, lattice).current_dir(workspace())
}

/// The CLI in the checkout's root, given `--nats-url` and `--lattice` as flags.
pub fn cli_with_flags(nats_url: &str, lattice: &str) -> Cli {
    Cli::with_flags(nats_url, lattice).current_dir(workspace())
}

/// A NATS URL on a free loopback port, for `trellis up` to start its server on.
pub fn free_nats_url() -> String {
    format!("nats://127.0.0.1:{}", free_port())
}

/// `trellis up ARGS...` in the foreground, once it says it is ready. Its host compiles into
/// the tests' shared cache.
pub async fn up_foreground(cli: Cli, args: &[&str]) -> CliChild {
    let cache = shared_cache_dir().display().to_string();
    let mut all = vec!["up"];
    all.extend_from_slice(args);
    let mut up = cli.env("TRELLIS_CACHE_DIR", &cache).spawn(&all);
    up.wait_for_stderr("press Ctrl-C to stop", PATIENCE, |l| {
        l.contains("press Ctrl-C to stop")
    })
    .await;
    up
}

/// `trellis up --detach ARGS...`, which returns once everything runs.
pub async fn up_detached(cli: &Cli, args: &[&str]) -> trellis_tests::CliOutput {
    let cache = shared_cache_dir().display().to_string();
    let mut all = vec!["up", "--detach"];
    all.extend_from_slice(args);
    let mut cmd = cli.command(&all);
    cmd.env("TRELLIS_CACHE_DIR", &cache);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("CLI task")
        .expect("running trellis up --detach");
    trellis_tests::CliOutput {
        success: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Stops what a detached `up` recorded in `state_dir` if the test did not get to
/// `trellis down` (it failed first).
pub struct DetachedGuard(pub PathBuf);

impl Drop for DetachedGuard {
    fn drop(&mut self) {
        let Ok(text) = std::fs::read_to_string(self.0.join("up.json")) else {
            return;
        };
        let record: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        for entry in record["processes"].as_array().into_iter().flatten() {
            if let Some(pid) = entry[1].as_u64() {
                if running(pid as u32) {
                    // SAFETY: a process this test's `trellis up --detach` started.
                    unsafe {
                        libc::kill(pid as libc::pid_t, libc::SIGKILL);
                    }
                }
            }
        }
    }
}

/// Whether a process runs (a zombie does not).
pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let state = s.rsplit_once(')')?.1.split_whitespace().next()?.to_string();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// Whether anything accepts TCP connections on `addr`.
pub fn listening(addr: &str) -> bool {
    std::net::TcpStream::connect(addr).is_ok()
}

/// `curl URL`: the status and the body.
pub async fn get(url: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let body = response.text().await.expect("response body");
    (status, body)
}

/// The friendly name of host `id`, from `trellis get hosts -o json`.
pub async fn friendly_name(cli: &Cli, id: &str) -> String {
    let hosts = cli.run(&["get", "hosts", "-o", "json"]).await.ok().json();
    hosts
        .as_array()
        .into_iter()
        .flatten()
        .find(|h| h["id"] == id)
        .and_then(|h| h["friendly_name"].as_str())
        .unwrap_or_else(|| panic!("host {id} is not in {hosts:#}"))
        .to_string()
}

/// Ids of the hosts `trellis get hosts -o json` lists.
pub async fn host_ids(cli: &Cli) -> Vec<String> {
    let hosts = cli.run(&["get", "hosts", "-o", "json"]).await.ok().json();
    hosts
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["id"].as_str().map(str::to_string))
        .collect()
}
