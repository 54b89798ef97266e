//! The host as the lattice sees it: its identity, labels and what it runs (the inventory of
//! every heartbeat and `host.get`), and the switch that stops it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use trellis_lattice::inventory::{HostInventory, HostResources};

use crate::components::Components;
use crate::control::parts::HostControl;
use crate::labels::HostLabels;
use crate::providers::Providers;
use crate::runtime::Runtime;

pub struct HostInfo {
    pub id: String,
    pub friendly_name: String,
    pub lattice: String,
    pub labels: Arc<HostLabels>,
    pub components: Arc<Components>,
    pub providers: Arc<Providers>,
    pub runtime: Arc<Runtime>,
    pub heartbeat_interval: Duration,
    pub started_at: DateTime<Utc>,
    pub started: Instant,
    /// Fires when the host begins shutting down.
    pub shutdown: CancellationToken,
    /// How long a requested stop lets in-flight work finish, when the request said.
    pub stop_timeout: Mutex<Option<Duration>>,
    /// The connection, for what its server accepts.
    pub nats: async_nats::Client,
    /// Where the host's events stand, stamped on every inventory.
    pub events: trellis_lattice::server::EventPublisher,
}

impl HostControl for HostInfo {
    fn host_id(&self) -> &str {
        &self.id
    }

    fn friendly_name(&self) -> &str {
        &self.friendly_name
    }

    fn inventory(&self) -> HostInventory {
        HostInventory {
            host_id: self.id.clone(),
            friendly_name: self.friendly_name.clone(),
            lattice: self.lattice.clone(),
            labels: self.labels.get(),
            version: trellis_lattice::VERSION.to_string(),
            uptime_seconds: self.started.elapsed().as_secs(),
            started_at: self.started_at,
            components: self.components.all().iter().map(|c| c.info()).collect(),
            providers: self.providers.all().iter().map(|p| p.info()).collect(),
            resources: HostResources {
                rss_bytes: crate::labels::rss_bytes(),
                active_invocations: self.runtime.ticker().active() as u64,
                memory_budget_bytes: self.runtime.memory_budget().limit(),
                memory_in_use_bytes: self.runtime.memory_budget().in_use(),
            },
            heartbeat_interval_ms: self.heartbeat_interval.as_millis() as u64,
            page: None,
            seq: Some(self.events.sequence()),
        }
    }

    fn max_message_bytes(&self) -> usize {
        self.nats.server_info().max_payload
    }

    fn stats(&self) -> trellis_lattice::stats::HostStats {
        trellis_lattice::stats::HostStats {
            host_id: self.id.clone(),
            friendly_name: self.friendly_name.clone(),
            uptime_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            components: self.components.all().iter().map(|c| c.stats()).collect(),
        }
    }

    fn request_stop(&self, timeout_ms: Option<u64>) {
        if let Ok(mut t) = self.stop_timeout.lock() {
            *t = timeout_ms.map(Duration::from_millis);
        }
        self.shutdown.cancel();
    }
}
