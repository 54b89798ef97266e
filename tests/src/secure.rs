//! A secured lattice for tests: the keys, certificates and nats-server configuration of
//! `examples/secure/make-keys.sh` (TLS with client certificates, one nkey user per role), a
//! nats-server running it, and Trellis processes and clients connecting as a given user.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use trellis_lattice::client::{NatsAuth, NatsOptions, NatsTls};
use trellis_lattice::LatticeClient;

use crate::{Cli, NatsServer};

/// The lattice every secured test uses (the configuration's permissions name it).
pub const LATTICE: &str = "default";

/// The users of examples/secure's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum User {
    Operator,
    Manager,
    /// Host N's user (1 or 2).
    Host(u8),
    Provider,
    Caller,
    /// No nkey at all.
    Nobody,
}

impl User {
    fn file(self) -> Option<String> {
        match self {
            User::Operator => Some("operator".into()),
            User::Manager => Some("manager".into()),
            User::Host(n) => Some(format!("host{n}")),
            User::Provider => Some("provider".into()),
            User::Caller => Some("caller".into()),
            User::Nobody => None,
        }
    }
}

/// Keys made by make-keys.sh and a nats-server running its configuration.
pub struct SecureLattice {
    pub nats: NatsServer,
    dir: tempfile::TempDir,
    keys: BTreeMap<String, String>,
    mode: Mode,
}

/// What the server asks of clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// examples/secure's configuration: TLS with client certificates and nkey users.
    Secure,
    /// The same TLS, no users (every [`User`] connects as nobody).
    TlsOnly,
    /// Neither: the baseline the others are measured against.
    Plain,
}

/// Runs `examples/secure/make-keys.sh DIR` with this build's CLI.
pub fn make_keys(dir: &Path) {
    crate::paths::require_program("openssl", "apt-get install openssl");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/secure/make-keys.sh");
    let out = Command::new(&script)
        .arg(dir)
        .env("TRELLIS", crate::paths::bin("trellis"))
        .env("LATTICE", LATTICE)
        .output()
        .expect("running make-keys.sh");
    assert!(
        out.status.success(),
        "make-keys.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl SecureLattice {
    /// The server with examples/secure's configuration: TLS and nkey users.
    pub async fn start() -> Self {
        Self::start_with(Mode::Secure).await
    }

    /// The same TLS (client certificates verified), no users: what TLS alone costs.
    pub async fn start_tls_only() -> Self {
        Self::start_with(Mode::TlsOnly).await
    }

    /// Neither TLS nor users, with the same processes: the baseline of [`Self::start_tls_only`].
    pub async fn start_plain() -> Self {
        Self::start_with(Mode::Plain).await
    }

    async fn start_with(mode: Mode) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for keys");
        make_keys(dir.path());
        let mut config =
            std::fs::read_to_string(dir.path().join("nats.conf")).expect("make-keys' nats.conf");
        match mode {
            Mode::Secure => {}
            Mode::TlsOnly => {
                let at = config
                    .find("\nauthorization {")
                    .expect("an authorization block in nats.conf");
                config.truncate(at);
            }
            Mode::Plain => config = "jetstream: enabled\n".into(),
        }
        let keys = std::fs::read_to_string(dir.path().join("keys.env"))
            .expect("make-keys' keys.env")
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let nats = NatsServer::start_with_config(&config).await;
        Self {
            nats,
            dir,
            keys,
            mode,
        }
    }

    /// A value of keys.env (`HOST1_ID`, `OPERATOR`, ...).
    pub fn key(&self, name: &str) -> &str {
        self.keys
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not in keys.env"))
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// The server's URL (with the `tls://` scheme unless plain).
    pub fn url(&self) -> String {
        match self.mode {
            Mode::Plain => self.nats.url(),
            _ => format!("tls://127.0.0.1:{}", self.nats.port()),
        }
    }

    fn user(&self, user: User) -> User {
        match self.mode {
            Mode::Secure => user,
            _ => User::Nobody,
        }
    }

    /// How `user` connects: its nkey seed file, the CA and the client certificate.
    pub fn options(&self, user: User) -> NatsOptions {
        let user = self.user(user);
        let tls = match self.mode {
            Mode::Plain => NatsTls::default(),
            _ => NatsTls {
                ca: Some(self.path("ca.pem")),
                cert: Some(self.path("client.pem")),
                key: Some(self.path("client-key.pem")),
            },
        };
        NatsOptions {
            auth: match user.file() {
                Some(name) => NatsAuth::NkeySeed(
                    std::fs::read_to_string(self.path(&format!("{name}.nk")))
                        .expect("seed file")
                        .trim()
                        .to_string(),
                ),
                None => NatsAuth::None,
            },
            tls,
        }
    }

    /// The environment a Trellis binary connects as `user` with.
    pub fn env(&self, user: User) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = Vec::new();
        if self.mode != Mode::Plain {
            for (var, file) in [
                ("NATS_TLS_CA", "ca.pem"),
                ("NATS_TLS_CERT", "client.pem"),
                ("NATS_TLS_KEY", "client-key.pem"),
            ] {
                env.push((var.into(), self.path(file).display().to_string()));
            }
        }
        let user = self.user(user);
        if let Some(name) = user.file() {
            let seed = self.path(&format!("{name}.nk"));
            env.push(("NATS_NKEY".into(), seed.display().to_string()));
        }
        env
    }

    /// The CLI as `user`.
    pub fn cli(&self, user: User) -> Cli {
        self.env(user)
            .iter()
            .fold(Cli::new(&self.url(), LATTICE), |cli, (k, v)| cli.env(k, v))
    }

    /// A lattice client as `user`, failing requests the server refuses at once.
    pub async fn client(&self, user: User) -> LatticeClient {
        let options = self.options(user);
        let violations = trellis_lattice::client::Violations::new(options.auth.who(), false);
        let nats = trellis_lattice::client::connect_watched(
            &self.url(),
            &options,
            "trellis-test",
            &violations,
        )
        .await
        .expect("connecting to the secured nats-server");
        LatticeClient::new(nats, LATTICE)
            .expect("lattice client")
            .with_violations(violations)
    }

    /// Host N as a `trellis-host` process under its host user and its own key (the id its
    /// permissions name); returns once the operator sees it.
    pub async fn host(&self, n: u8) -> Process {
        let seed = self.path(&format!("host{n}.seed"));
        let args = [
            "--seed-file".into(),
            seed.display().to_string(),
            "--ephemeral".into(),
            "--cache-dir".into(),
            crate::paths::shared_cache_dir().display().to_string(),
            "--name".into(),
            format!("host{n}"),
        ];
        let host = self.spawn("trellis-host", &args, User::Host(n));
        let id = self.key(&format!("HOST{n}_ID")).to_string();
        let operator = self.client(User::Operator).await;
        crate::wait_for(
            "the host to answer the operator",
            Duration::from_secs(30),
            || {
                let (operator, id) = (&operator, &id);
                async move { operator.inventory(id).await.ok() }
            },
        )
        .await;
        host
    }

    /// The deployment manager under the manager user; returns once its API answers.
    pub async fn manager(&self) -> Process {
        let manager = self.spawn("trellis-deploy", &[], User::Manager);
        let operator = self.client(User::Operator).await;
        crate::wait_for("the manager's API", Duration::from_secs(30), || {
            let operator = &operator;
            async move { operator.apps().await.ok() }
        })
        .await;
        manager
    }

    /// A Trellis binary connecting as `user`, logging to a file.
    pub fn spawn(&self, binary: &str, args: &[String], user: User) -> Process {
        let log = tempfile::NamedTempFile::new().expect("log file");
        let file = log.reopen().expect("log handle");
        let child = Command::new(crate::paths::bin(binary))
            .args([
                "--nats-url",
                &self.url(),
                "--lattice",
                LATTICE,
                "--log",
                "info",
            ])
            .args(args)
            .envs(self.env(user))
            .env_remove("NATS_CREDS")
            .env_remove("NATS_TOKEN")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        Process {
            child: Some(child),
            log,
        }
    }
}

/// A process started by [`SecureLattice::spawn`], killed on drop.
pub struct Process {
    child: Option<Child>,
    log: tempfile::NamedTempFile,
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Waits (generously) for the process to exit by itself.
    pub async fn exit_status(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + within;
        let child = self.child.as_mut()?;
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
