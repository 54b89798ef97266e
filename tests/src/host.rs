//! Hosts for tests: as separate `trellis-host` processes (to kill them for real) and
//! in-process through the library.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use trellis_host::{Host, HostConfig};
use trellis_lattice::labels::Labels;
use trellis_lattice::LatticeClient;

/// A `trellis-host` process, killed on drop.
pub struct HostProcess {
    child: Option<Child>,
    id: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl HostProcess {
    /// Starts a host in `lattice` with `labels` and extra flags, and waits until it answers.
    pub async fn start(
        nats_url: &str,
        lattice: &str,
        labels: &[(&str, &str)],
        extra: &[&str],
    ) -> Self {
        Self::start_with_env(nats_url, lattice, labels, extra, &[]).await
    }

    /// [`Self::start`] with extra environment variables (`OTEL_*`, say).
    pub async fn start_with_env(
        nats_url: &str,
        lattice: &str,
        labels: &[(&str, &str)],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        Self::spawn(
            &crate::paths::bin("trellis-host"),
            nats_url,
            lattice,
            labels,
            extra,
            env,
        )
        .await
    }

    /// [`Self::start`] with another `trellis-host` executable (an earlier build, for a
    /// benchmark's baseline).
    pub async fn start_binary(
        binary: &std::path::Path,
        nats_url: &str,
        lattice: &str,
        labels: &[(&str, &str)],
        extra: &[&str],
    ) -> Self {
        Self::spawn(binary, nats_url, lattice, labels, extra, &[]).await
    }

    async fn spawn(
        binary: &std::path::Path,
        nats_url: &str,
        lattice: &str,
        labels: &[(&str, &str)],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let key = nkeys::KeyPair::new_server();
        let id = key.public_key();
        let dir = tempfile::tempdir().expect("temp dir for a host");
        let log = dir.path().join("host.log");
        let file = std::fs::File::create(&log).expect("host log");
        let mut cmd = Command::new(binary);
        cmd.args(["--nats-url", nats_url, "--lattice", lattice])
            .args(["--log", "info,trellis_host=debug"])
            .env("TRELLIS_HOST_SEED", key.seed().expect("seed"))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file);
        for (k, v) in labels {
            cmd.arg("--label").arg(format!("{k}={v}"));
        }
        if !extra.contains(&"--cache-dir") {
            cmd.arg("--cache-dir").arg(crate::paths::shared_cache_dir());
        }
        if !extra.contains(&"--state-dir") && !extra.contains(&"--ephemeral") {
            cmd.arg("--state-dir").arg(dir.path().join("state"));
        }
        cmd.args(extra);
        cmd.envs(env.iter().copied());
        let child = cmd.spawn().expect("starting trellis-host");
        let mut host = Self {
            child: Some(child),
            id,
            log,
            _dir: dir,
        };
        host.wait_ready(nats_url, lattice).await;
        host
    }

    async fn wait_ready(&mut self, nats_url: &str, lattice: &str) {
        let nats = trellis_lattice::client::connect(nats_url, &Default::default(), "test-probe")
            .await
            .expect("connecting to NATS");
        let client = LatticeClient::new(nats, lattice).expect("client");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if client.inventory(&self.id).await.is_ok() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "trellis-host exited with {status} before answering:\n{}",
                    self.log()
                );
            }
            if tokio::time::Instant::now() > deadline {
                panic!("trellis-host did not answer within 30s:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What the host logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: the host dies without a word.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the process to exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("host already stopped");
        // SAFETY: signalling the child we spawned.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if tokio::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "trellis-host did not exit within 30s of SIGTERM:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            crate::paths::print_log_tail(&format!("trellis-host {}", self.id), &self.log());
        }
    }
}

/// A host running inside the test process.
pub struct InProcessHost {
    host: Option<Host>,
}

impl InProcessHost {
    pub async fn start(nats_url: &str, lattice: &str, labels: &[(&str, &str)]) -> Self {
        let mut config = HostConfig::new(nats_url, lattice);
        config.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Labels>();
        config.cache_dir = crate::paths::shared_cache_dir();
        Self::with_config(config).await
    }

    pub async fn with_config(config: HostConfig) -> Self {
        let host = Host::start(config)
            .await
            .expect("starting an in-process host");
        Self { host: Some(host) }
    }

    pub fn id(&self) -> String {
        self.host
            .as_ref()
            .map(|h| h.id().to_string())
            .unwrap_or_default()
    }

    pub async fn stop(mut self) {
        if let Some(h) = self.host.take() {
            h.stop("test finished").await;
        }
    }
}

impl Drop for InProcessHost {
    fn drop(&mut self) {
        if let Some(h) = self.host.take() {
            h.abort();
        }
    }
}
