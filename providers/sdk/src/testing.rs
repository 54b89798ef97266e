//! Helpers for providers' integration tests (feature `testing`): a `nats-server` with
//! JetStream on a free loopback port, and a client that calls a provider the way a host
//! calls it for a linked component.

use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use trellis_lattice::control::Reply;
use trellis_lattice::kv::LatticeStore;
use trellis_lattice::link::{Config, Link};
use trellis_lattice::provider::HealthReport;
pub use trellis_lattice::rpc::CallError;
use trellis_lattice::rpc::{CallContext, CallReader, CallWriter, Invoker, InvokerConfig};
use trellis_lattice::trace::TraceContext;
use trellis_lattice::Subjects;

use crate::ProviderEnv;

mod ports;
pub use ports::free_port;

/// A program the tests need, or a panic saying how to install it.
pub fn require_program(name: &str, install: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([
            "/usr/sbin".into(),
            "/usr/local/sbin".into(),
            "/usr/bin".into(),
        ])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed; install it with: {install}"))
}

/// Waits until something accepts TCP connections on `port`, or `child` exits.
pub async fn wait_for_port(child: &mut Child, port: u16, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A `nats-server -js` on a free loopback port, killed on drop.
pub struct NatsServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    pub async fn start() -> Self {
        let bin = require_program("nats-server", "apt-get install nats-server");
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temp dir for nats-server");
            let port = free_port();
            let log = std::fs::File::create(dir.path().join("nats.log")).expect("nats log");
            let mut child = Command::new(&bin)
                .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
                .arg(dir.path().join("js"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log)
                .spawn()
                .expect("starting nats-server");
            if wait_for_port(&mut child, port, Duration::from_secs(10)).await {
                return Self {
                    child,
                    port,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("nats-server did not start on any of 5 free ports");
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub async fn connect(&self) -> async_nats::Client {
        trellis_lattice::client::connect(&self.url(), &Default::default(), "trellis-provider-test")
            .await
            .expect("connecting to the test nats-server")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Calls a target (a provider) as the host of a linked component does: through
/// [`Invoker`], with the component's id in `trellis-source` and the link name in
/// `trellis-link`. Usable as the `wrpc` argument of `wit-bindgen-wrpc` generated imports,
/// with `()` as their context.
#[derive(Clone)]
pub struct LinkedClient {
    caller: crate::Caller,
    source: Option<String>,
    link: Option<String>,
}

impl LinkedClient {
    pub async fn new(
        nats: async_nats::Client,
        lattice: &str,
        target: &str,
        source: Option<&str>,
        link: Option<&str>,
    ) -> Self {
        let config = InvokerConfig {
            timeout: Duration::from_secs(10),
            ..InvokerConfig::default()
        };
        let invoker = Invoker::new(nats, Subjects::new(lattice), config)
            .await
            .expect("invoker");
        Self {
            caller: crate::Caller::new(Arc::new(invoker), target),
            source: source.map(str::to_string),
            link: link.map(str::to_string),
        }
    }

    /// The same connection, calling as another component or over another link.
    pub fn with(&self, source: Option<&str>, link: Option<&str>) -> Self {
        Self {
            source: source.map(str::to_string),
            link: link.map(str::to_string),
            ..self.clone()
        }
    }
}

/// The callee's failure in an error returned by a call through a [`LinkedClient`].
pub fn call_failure(err: &anyhow::Error) -> Option<&CallError> {
    err.downcast_ref::<CallError>()
        .or_else(|| err.chain().find_map(|e| CallReader::failure(e)))
}

impl wrpc_transport::Invoke for LinkedClient {
    type Context = ();
    type Outgoing = CallWriter;
    type Incoming = CallReader;

    async fn invoke<P>(
        &self,
        (): (),
        instance: &str,
        func: &str,
        params: Bytes,
        paths: impl AsRef<[P]> + Send,
    ) -> anyhow::Result<(CallWriter, CallReader)>
    where
        P: AsRef<[Option<usize>]> + Send + Sync,
    {
        let cx = CallContext {
            trace: Some(TraceContext::new_root()),
            source: self.source.clone(),
            link: self.link.clone(),
            depth: 0,
            budget: None,
        };
        wrpc_transport::Invoke::invoke(&self.caller, cx, instance, func, params, paths).await
    }
}

/// A lattice for a provider test: a fresh `nats-server`, a connection, the link and config
/// store.
pub struct TestLattice {
    pub server: NatsServer,
    pub nats: async_nats::Client,
    pub store: LatticeStore,
    pub name: String,
}

/// A provider running in-process, stopped (cancelled) on drop.
pub struct RunningProvider {
    pub provider_id: String,
    pub host_id: String,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl RunningProvider {
    /// Stops the provider and returns what its run returned.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningProvider {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The host id test providers run under.
pub const TEST_HOST: &str = "test-host";

impl TestLattice {
    pub async fn start() -> Self {
        let server = NatsServer::start().await;
        let nats = server.connect().await;
        let name = "test".to_string();
        let store = LatticeStore::open(&nats, &Subjects::new(&name))
            .await
            .expect("opening the link and config buckets");
        Self {
            server,
            nats,
            store,
            name,
        }
    }

    pub async fn put_config(&self, name: &str, pairs: &[(&str, &str)]) {
        let config: Config = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.store
            .put_config(name, &config)
            .await
            .expect("put config");
    }

    /// Puts a link from `source` to `target` for `wit_namespace:wit_package`.
    pub async fn put_link(
        &self,
        source: &str,
        name: &str,
        target: &str,
        package: (&str, &str),
        interfaces: &[&str],
        target_config: &[&str],
    ) -> Link {
        let link = Link {
            source_id: source.to_string(),
            target_id: target.to_string(),
            name: name.to_string(),
            wit_namespace: package.0.to_string(),
            wit_package: package.1.to_string(),
            interfaces: interfaces.iter().map(|s| s.to_string()).collect(),
            source_config: vec![],
            target_config: target_config.iter().map(|s| s.to_string()).collect(),
        };
        self.store.put_link(&link).await.expect("put link");
        link
    }

    /// A client calling `target` as `source` over link `link` (see [`LinkedClient`]).
    pub async fn client(
        &self,
        target: &str,
        source: Option<&str>,
        link: Option<&str>,
    ) -> LinkedClient {
        LinkedClient::new(self.nats.clone(), &self.name, target, source, link).await
    }

    /// Runs a provider in-process (`run` is its entry point, e.g. a crate's `run(env,
    /// shutdown)`) and waits until it answers health checks.
    pub async fn start_provider<F, Fut>(
        &self,
        provider_id: &str,
        config_names: &[&str],
        run: F,
    ) -> RunningProvider
    where
        F: FnOnce(ProviderEnv, CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let env = ProviderEnv::builtin(
            self.nats.clone(),
            &self.name,
            provider_id,
            TEST_HOST,
            config_names.iter().map(|s| s.to_string()).collect(),
        );
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(env, shutdown.clone()));
        let running = RunningProvider {
            provider_id: provider_id.to_string(),
            host_id: TEST_HOST.to_string(),
            shutdown,
            task: Some(task),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if self.health(TEST_HOST, provider_id).await.is_ok() {
                return running;
            }
            if let Some(task) = &running.task {
                assert!(
                    !task.is_finished(),
                    "provider {provider_id} stopped while starting"
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "provider {provider_id} did not answer health checks within 60s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Asks a provider instance for its health, as its host does.
    pub async fn health(&self, host_id: &str, provider_id: &str) -> anyhow::Result<HealthReport> {
        let subject = Subjects::new(&self.name).provider_health(host_id, provider_id);
        let request = async_nats::Request::new()
            .payload(Bytes::from_static(b"{}"))
            .timeout(Some(Duration::from_secs(5)));
        let msg = self.nats.send_request(subject, request).await?;
        Ok(Reply::<HealthReport>::parse(&msg.payload)?.into_result()?)
    }
}
