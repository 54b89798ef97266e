//! For tests of MQTT providers and apps: a real `mosquitto` on a free loopback port, and a
//! probe client that publishes and subscribes as a device on the plant network would.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::sync::mpsc;
use trellis_provider::testing::free_port;

/// A `mosquitto` broker, stopped on drop.
pub struct Mosquitto {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Mosquitto {
    /// A broker that keeps sessions and queued messages on disk across restarts.
    pub async fn start() -> Self {
        Self::start_with(true).await
    }

    /// A broker that forgets every session when it restarts.
    pub async fn start_volatile() -> Self {
        Self::start_with(false).await
    }

    /// A broker that speaks only TLS, with a certificate for `127.0.0.1` from a test CA made
    /// with `openssl`; the CA's PEM file is at [`Mosquitto::ca_file`].
    pub async fn start_tls() -> Self {
        Self::start_with_listener(false, true).await
    }

    /// The test CA of a TLS broker.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    async fn start_with(persistent: bool) -> Self {
        Self::start_with_listener(persistent, false).await
    }

    async fn start_with_listener(persistent: bool, tls: bool) -> Self {
        let bin = which("mosquitto").expect("mosquitto (apt-get install mosquitto)");
        let dir = tempfile::tempdir().expect("temp dir for mosquitto");
        let tls_lines = if tls {
            make_certificates(dir.path());
            let d = dir.path().display();
            format!("cafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n")
        } else {
            String::new()
        };
        for _ in 0..5 {
            let port = free_port();
            let config = format!(
                "listener {port} 127.0.0.1\n{tls_lines}allow_anonymous true\n\
                 persistence {persistent}\npersistence_location {}/\nautosave_interval 1\n\
                 user root\nset_tcp_nodelay true\nmax_queued_messages 100000\nlog_dest stderr\nlog_type error\n",
                dir.path().display()
            );
            std::fs::write(dir.path().join("mosquitto.conf"), config).expect("write config");
            if let Some(child) = spawn(&bin, &dir, port).await {
                return Self {
                    child: Some(child),
                    port,
                    dir,
                    bin,
                };
            }
        }
        panic!("mosquitto did not start on any of 5 free ports");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:PORT` (`mqtts://` for a TLS broker).
    pub fn url(&self) -> String {
        let scheme = if self.dir.path().join("ca.pem").exists() {
            "mqtts"
        } else {
            "mqtt"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Stops the broker the way an operator does (SIGTERM: it saves its sessions).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let _ = c.wait();
        }
    }

    /// Starts the stopped broker again on the same port with the same files.
    pub async fn restart(&mut self) {
        self.stop();
        for _ in 0..50 {
            if let Some(child) = spawn(&self.bin, &self.dir, self.port).await {
                self.child = Some(child);
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("mosquitto did not start again on port {}", self.port);
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A CA and a server certificate for `127.0.0.1` signed by it, in `dir`.
fn make_certificates(dir: &std::path::Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=trellis-test-ca",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext.cnf");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

/// Starts mosquitto with the config in `dir`; `None` if it exits or does not listen.
async fn spawn(bin: &PathBuf, dir: &tempfile::TempDir, port: u16) -> Option<Child> {
    let mut child = Command::new(bin)
        .arg("-c")
        .arg(dir.path().join("mosquitto.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting mosquitto");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(child);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn which(name: &str) -> Option<PathBuf> {
    [
        "/usr/sbin",
        "/usr/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
        "/sbin",
    ]
    .iter()
    .map(|d| PathBuf::from(d).join(name))
    .find(|p| p.is_file())
}

/// A plain MQTT 5 client for assertions: every message its subscriptions receive arrives
/// on [`Probe::next`].
pub struct Probe {
    client: AsyncClient,
    messages: mpsc::UnboundedReceiver<Publish>,
    acks: mpsc::UnboundedReceiver<Packet>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Probe {
    pub async fn connect(broker: &Mosquitto, id: &str) -> Self {
        let mut options = MqttOptions::new(id, "127.0.0.1", broker.port());
        options.set_keep_alive(Duration::from_secs(5));
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        options.set_network_options(network);
        let (client, mut events) = AsyncClient::new(options, 1024);
        let (msg_tx, messages) = mpsc::unbounded_channel();
        let (ack_tx, acks) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = msg_tx.send(p);
                    }
                    Ok(Event::Incoming(
                        p @ (Packet::SubAck(_) | Packet::PubAck(_) | Packet::ConnAck(_)),
                    )) => {
                        let _ = ack_tx.send(p);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        let mut probe = Self {
            client,
            messages,
            acks,
            task,
        };
        probe.ack("connack").await;
        probe
    }

    async fn ack(&mut self, what: &str) -> Packet {
        tokio::time::timeout(Duration::from_secs(20), self.acks.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} from the broker within 20 s"))
            .expect("probe running")
    }

    /// Subscribes at QoS 1 and waits for the broker's `SUBACK`.
    pub async fn subscribe(&mut self, filter: &str) {
        self.client
            .subscribe_many([Filter::new(filter, QoS::AtLeastOnce)])
            .await
            .expect("subscribe");
        loop {
            if let Packet::SubAck(_) = self.ack("suback").await {
                return;
            }
        }
    }

    /// Publishes and, at QoS 1, waits for the broker's `PUBACK`.
    pub async fn publish(
        &mut self,
        topic: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
        properties: PublishProperties,
    ) {
        self.client
            .publish_with_properties(topic, qos, false, payload.into(), properties)
            .await
            .expect("publish");
        if qos == QoS::AtLeastOnce {
            loop {
                if let Packet::PubAck(_) = self.ack("puback").await {
                    return;
                }
            }
        }
    }

    /// Publishes without waiting for the broker's answer (its `PUBACK`s are dropped).
    pub async fn publish_nowait(&mut self, topic: &str, payload: impl Into<Bytes>, qos: QoS) {
        self.client
            .publish(topic, qos, false, payload.into())
            .await
            .expect("publish");
        while self.acks.try_recv().is_ok() {}
    }

    /// The next message received, within `within`.
    pub async fn next_within(&mut self, within: Duration) -> Option<Publish> {
        tokio::time::timeout(within, self.messages.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next message received (panics after 20 s).
    pub async fn next(&mut self) -> Publish {
        self.next_within(Duration::from_secs(20))
            .await
            .expect("a message within 20 s")
    }
}

pub use rumqttc::v5::mqttbytes::v5::PublishProperties as Properties;
pub use rumqttc::v5::mqttbytes::QoS as Qos;
