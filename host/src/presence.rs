//! The host's presence in its lattice (see `trellis_lattice::presence`): written before it
//! takes control requests, refreshed while it runs, purged when it stops. Without JetStream
//! (a leaf cut off from the hub) the host runs all the same; broadcasts then wait for quiet.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use trellis_lattice::{presence, Subjects};

/// How long start-up waits for the first announcement.
const PATIENCE: Duration = Duration::from_secs(1);

/// The presence of one host.
#[derive(Clone)]
pub struct Presence {
    nats: async_nats::Client,
    subjects: Subjects,
    host_id: String,
}

impl Presence {
    pub fn new(nats: async_nats::Client, subjects: Subjects, host_id: String) -> Self {
        Self {
            nats,
            subjects,
            host_id,
        }
    }

    /// Announces the host once (bounded), then keeps it announced until `shutdown`.
    pub async fn start(&self, shutdown: CancellationToken) {
        self.announce().await;
        let me = self.clone();
        tokio::spawn(async move {
            let first = tokio::time::Instant::now() + presence::REFRESH;
            let mut ticker = tokio::time::interval_at(first, presence::REFRESH);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = ticker.tick() => me.announce().await,
                }
            }
        });
    }

    async fn announce(&self) {
        let announced = presence::announce(&self.nats, &self.subjects, &self.host_id);
        match tokio::time::timeout(PATIENCE, announced).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::debug!(%err, "presence not announced"),
            Err(_) => tracing::debug!("presence not announced within {PATIENCE:?}"),
        }
    }

    /// Takes the host out of the count (bounded: a host leaving an unreachable lattice ages out).
    pub async fn withdraw(&self) {
        let withdrawn = presence::withdraw(&self.nats, &self.subjects, &self.host_id);
        match tokio::time::timeout(PATIENCE, withdrawn).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::debug!(%err, "presence not withdrawn"),
            Err(_) => tracing::debug!("presence not withdrawn within {PATIENCE:?}"),
        }
    }
}
