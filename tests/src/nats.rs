//! A `nats-server` with JetStream on a free loopback port, stopped on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use trellis_lattice::LatticeClient;

pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    /// Extra server configuration (nats-server's config file syntax).
    config: String,
}

impl NatsServer {
    /// Starts a server; retries on another port if the chosen one was taken meanwhile.
    pub async fn start() -> Self {
        Self::start_with_config("").await
    }

    /// A server with extra configuration, e.g. `max_payload: 65536`.
    pub async fn start_with_config(config: &str) -> Self {
        let mut dir = tempfile::tempdir().expect("temp dir for nats-server");
        for _ in 0..5 {
            let port = crate::wait::free_port();
            let mut server = Self {
                child: None,
                port,
                dir,
                config: config.to_string(),
            };
            if server.spawn().await {
                return server;
            }
            dir = server.take_dir();
        }
        panic!("nats-server did not start on any of 5 free ports");
    }

    fn take_dir(mut self) -> tempfile::TempDir {
        self.stop();
        let placeholder = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.dir, placeholder)
    }

    async fn spawn(&mut self) -> bool {
        let bin = crate::paths::require_program("nats-server", "apt-get install nats-server");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("nats.log"))
            .expect("nats log file");
        let config = self.dir.path().join("nats.conf");
        std::fs::write(&config, &self.config).expect("nats config file");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&config)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.path().join("js"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("starting nats-server");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            if let Some(Ok(Some(_exited))) = self.child.as_mut().map(|c| c.try_wait()) {
                return false;
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats.log")
    }

    /// A plain NATS connection.
    pub async fn connect(&self) -> async_nats::Client {
        trellis_lattice::client::connect(&self.url(), &Default::default(), "trellis-test")
            .await
            .expect("connecting to the test nats-server")
    }

    /// A lattice client for `lattice`.
    pub async fn client(&self, lattice: &str) -> LatticeClient {
        LatticeClient::new(self.connect().await, lattice).expect("lattice client")
    }

    /// A lattice client of the server at `url` (from a task that does not hold the server).
    pub async fn client_for(url: &str, lattice: &str) -> LatticeClient {
        let nats = trellis_lattice::client::connect(url, &Default::default(), "trellis-test")
            .await
            .expect("connecting to the test nats-server");
        LatticeClient::new(nats, lattice).expect("lattice client")
    }

    /// Kills the server at once (as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same JetStream store.
    pub async fn restart(&mut self) {
        self.stop();
        assert!(
            self.spawn().await,
            "nats-server did not restart on port {}",
            self.port
        );
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
