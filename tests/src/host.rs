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
    /// How it was started, to start it again as the same host.
    spec: Spec,
    _dir: tempfile::TempDir,
}

struct Spec {
    binary: PathBuf,
    args: Vec<std::ffi::OsString>,
    env: Vec<(String, String)>,
    nats_url: String,
    lattice: String,
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
        env_extra: &[(&str, &str)],
    ) -> Self {
        let key = nkeys::KeyPair::new_server();
        let id = key.public_key();
        let dir = tempfile::tempdir().expect("temp dir for a host");
        let log = dir.path().join("host.log");
        let mut args: Vec<std::ffi::OsString> = ["--nats-url", nats_url, "--lattice", lattice]
            .iter()
            .map(Into::into)
            .collect();
        // A test may ask for another filter (`--log trace`, to grep everything logged).
        if !extra.contains(&"--log") {
            args.extend(["--log", "info,trellis_host=debug"].iter().map(Into::into));
        }
        for (k, v) in labels {
            args.push("--label".into());
            args.push(format!("{k}={v}").into());
        }
        if !extra.contains(&"--cache-dir") {
            args.push("--cache-dir".into());
            args.push(crate::paths::shared_cache_dir().into());
        }
        if !extra.contains(&"--state-dir") && !extra.contains(&"--ephemeral") {
            args.push("--state-dir".into());
            args.push(dir.path().join("state").into());
        }
        // The workspace's provider executables sit next to the host: tests may start them.
        let dirs_given = env_extra.iter().any(|(k, _)| *k == "TRELLIS_PROVIDER_DIRS");
        if !extra.contains(&"--provider-dir") && !dirs_given {
            if let Some(bins) = binary.parent() {
                args.push("--provider-dir".into());
                args.push(bins.into());
            }
        }
        args.extend(extra.iter().map(Into::into));
        let mut env: Vec<(String, String)> =
            vec![("TRELLIS_HOST_SEED".into(), key.seed().expect("seed"))];
        env.extend(
            env_extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let mut host = Self {
            child: None,
            id,
            log,
            spec: Spec {
                binary: binary.to_path_buf(),
                args,
                env,
                nats_url: nats_url.to_string(),
                lattice: lattice.to_string(),
            },
            _dir: dir,
        };
        host.spawn_child().await;
        host
    }

    async fn spawn_child(&mut self) {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("host log");
        let child = Command::new(&self.spec.binary)
            .args(&self.spec.args)
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file)
            .spawn()
            .expect("starting trellis-host");
        self.child = Some(child);
        let (url, lattice) = (self.spec.nats_url.clone(), self.spec.lattice.clone());
        self.wait_ready(&url, &lattice).await;
    }

    /// SIGKILL, then the same host again (same key, flags and state directory): a power
    /// cycle. Returns once it answers.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn_child().await;
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
