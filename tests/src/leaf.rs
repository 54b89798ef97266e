//! NATS leaf nodes for the edge tests: a hub with a JetStream domain and a leaf-node port,
//! and leaves connected to it through an uplink (a TCP forwarder) the test can cut and
//! restore without touching the hub.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use crate::nats::NatsServer;

/// A hub `nats-server`: JetStream in `domain`, accepting leaf nodes.
pub struct Hub {
    pub server: NatsServer,
    pub leaf_port: u16,
}

impl Hub {
    pub async fn start(domain: &str) -> Self {
        let leaf_port = crate::wait::free_port();
        // A hub tells its leaves its own leaf-node address (nats-server 2.9 does so even
        // with `no_advertise`), and a leaf that lost its remote tries that too: it would
        // reconnect around the uplink. Advertising an address where nothing listens keeps
        // the leaf on its configured remote.
        let config = format!(
            "jetstream {{ domain: {domain} }}\nleafnodes {{ listen: \"127.0.0.1:{leaf_port}\", advertise: \"127.0.0.2:{leaf_port}\" }}\n"
        );
        Self {
            server: NatsServer::start_with_config(&config).await,
            leaf_port,
        }
    }
}

/// A leaf `nats-server` whose remote is `uplink`, with a JetStream of its own in `domain`.
pub async fn leaf(uplink: &Uplink, domain: &str) -> NatsServer {
    let config = format!(
        "jetstream {{ domain: {domain} }}\nleafnodes {{ reconnect: 1, remotes: [ {{ url: \"nats-leaf://127.0.0.1:{}\" }} ] }}\n",
        uplink.port()
    );
    NatsServer::start_with_config(&config).await
}

/// Waits until a message published on `leaf` reaches a subscriber on `hub` (the leaf link is
/// up and interest has propagated).
pub async fn wait_linked(hub: &NatsServer, leaf: &NatsServer, timeout: Duration) {
    let hub_nats = hub.connect().await;
    let leaf_nats = leaf.connect().await;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let subject = format!("trellis-test.link.{}.{nanos}", std::process::id());
    let mut sub = hub_nats
        .subscribe(subject.clone())
        .await
        .expect("subscribing on the hub");
    hub_nats.flush().await.expect("flush");
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let _ = leaf_nats.publish(subject.clone(), "ping".into()).await;
        let _ = leaf_nats.flush().await;
        if let Ok(Some(_)) = tokio::time::timeout(
            Duration::from_millis(200),
            futures::StreamExt::next(&mut sub),
        )
        .await
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the leaf did not link to the hub within {timeout:?}"
        );
    }
}

/// A TCP forwarder between a leaf and its hub: the leaf's uplink.
pub struct Uplink {
    port: u16,
    cut: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Uplink {
    /// Forwards a free loopback port to `to`.
    pub async fn start(to: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("binding the uplink");
        let port = listener.local_addr().expect("uplink address").port();
        let cut = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = tokio::spawn({
            let (cut, connections) = (Arc::clone(&cut), Arc::clone(&connections));
            async move {
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    // While cut, a connection is closed at once: the leaf keeps retrying.
                    if cut.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let task = tokio::spawn(async move {
                        // Nagle's algorithm on a proxy delays every small message by the
                        // peer's delayed ACK (~40 ms): a real uplink does not.
                        let _ = inbound.set_nodelay(true);
                        if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", to)).await {
                            let _ = outbound.set_nodelay(true);
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    if let Ok(mut c) = connections.lock() {
                        c.retain(|h| !h.is_finished());
                        c.push(task.abort_handle());
                    }
                }
            }
        })
        .abort_handle();
        Self {
            port,
            cut,
            connections,
            accept,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Drops every connection and refuses new ones: the leaf loses its hub.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        if let Ok(mut c) = self.connections.lock() {
            for h in c.drain(..) {
                h.abort();
            }
        }
    }

    /// Lets the leaf reconnect.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Uplink {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
