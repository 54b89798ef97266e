//! The deployment manager for tests: `trellis-deploy` processes, manifests on disk, and
//! what the lattice runs per component.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use trellis_lattice::app::{AppState, AppStatus};
use trellis_lattice::LatticeClient;

/// A `trellis-deploy` process, killed on drop.
pub struct ManagerProcess {
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ManagerProcess {
    /// Starts a manager of `lattice` and waits until its API answers.
    pub async fn start(nats_url: &str, lattice: &str, extra: &[&str]) -> Self {
        Self::start_with_env(nats_url, lattice, extra, &[]).await
    }

    /// [`Self::start`] with extra environment variables.
    pub async fn start_with_env(
        nats_url: &str,
        lattice: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        Self::spawn(
            nats_url,
            lattice,
            "info,trellis_deploy=debug,trellis_deploy::view=trace",
            extra,
            env,
        )
        .await
    }

    /// [`Self::start`] logging by `filter` (a benchmark's manager logs little, so its CPU is
    /// its work).
    pub async fn start_logging(
        nats_url: &str,
        lattice: &str,
        filter: &str,
        extra: &[&str],
    ) -> Self {
        Self::spawn(nats_url, lattice, filter, extra, &[]).await
    }

    async fn spawn(
        nats_url: &str,
        lattice: &str,
        filter: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for a manager");
        let log = dir.path().join("deploy.log");
        let file = std::fs::File::create(&log).expect("manager log");
        let child = Command::new(crate::paths::bin("trellis-deploy"))
            .args(["--nats-url", nats_url, "--lattice", lattice])
            .args(["--log", filter])
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file)
            .spawn()
            .expect("starting trellis-deploy");
        let mut m = Self {
            child: Some(child),
            log,
            _dir: dir,
        };
        m.wait_ready(nats_url, lattice).await;
        m
    }

    async fn wait_ready(&mut self, nats_url: &str, lattice: &str) {
        let nats = trellis_lattice::client::connect(nats_url, &Default::default(), "test-probe")
            .await
            .expect("connecting to NATS");
        let client = LatticeClient::new(nats, lattice).expect("client");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if client.apps().await.is_ok() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "trellis-deploy exited with {status} before answering:\n{}",
                    self.log()
                );
            }
            if tokio::time::Instant::now() > deadline {
                panic!("trellis-deploy did not answer within 30s:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: the manager dies holding whatever it held (the leader lease included).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the process to exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("manager already stopped");
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
                    "trellis-deploy did not exit within 30s of SIGTERM:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ManagerProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            crate::paths::print_log_tail("trellis-deploy", &self.log());
        }
    }
}

/// Writes a manifest file into `dir`.
pub fn write_manifest(dir: &Path, file: &str, text: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, text).expect("writing a manifest");
    path
}

/// Replicas of `component_id` per host id, as the hosts report them now.
pub async fn replicas(client: &LatticeClient, component_id: &str) -> BTreeMap<String, u32> {
    client
        .inventories()
        .await
        .expect("inventories")
        .iter()
        .filter_map(|inv| Some((inv.host_id.clone(), inv.component(component_id)?.replicas)))
        .collect()
}

/// Hosts running provider `provider_id`.
pub async fn provider_hosts(client: &LatticeClient, provider_id: &str) -> Vec<String> {
    let mut hosts: Vec<String> = client
        .inventories()
        .await
        .expect("inventories")
        .iter()
        .filter(|inv| inv.providers.iter().any(|p| p.id == provider_id))
        .map(|inv| inv.host_id.clone())
        .collect();
    hosts.sort();
    hosts
}

/// Waits until the app has `state`, or panics with its last status.
pub async fn wait_for_app(
    client: &LatticeClient,
    name: &str,
    state: AppState,
    timeout: Duration,
) -> AppStatus {
    let mut last = None;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(st) = client.app_status(name).await {
            if st.status == state {
                return st;
            }
            last = Some(st);
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for app {name} to be {state}; last status: {last:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An app of `components` greeter components, each spread as `replicas` replicas over every
/// host (the deploy and scaling benches' fleet).
pub fn greeter_fleet(app: &str, version: &str, components: usize, replicas: u32) -> String {
    let greeter = crate::component_ref("greeter");
    let mut yaml = format!(
        "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: {app}\n  annotations:\n    version: {version}\nspec:\n  components:\n"
    );
    for i in 0..components {
        yaml.push_str(&format!(
            "    - name: c{i}\n      type: component\n      properties:\n        image: {greeter}\n      traits:\n        - type: spreadscaler\n          properties:\n            instances: {replicas}\n"
        ));
    }
    yaml
}
