//! One provider instance the host supervises: its health as last seen and how it stops.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use trellis_lattice::event::{Event, ProviderHealthChanged};
use trellis_lattice::inventory::{ProviderHealth, ProviderInfo};

use super::context::ProvidersContext;

/// Health as last seen, with the provider's message.
pub type Health = (ProviderHealth, Option<String>);

pub struct RunningProvider {
    pub id: String,
    pub image: String,
    pub config: Vec<String>,
    pub(super) annotations: BTreeMap<String, String>,
    pub(super) started_at: DateTime<Utc>,
    pub(super) health: watch::Sender<Health>,
    pub(super) ever_healthy: std::sync::atomic::AtomicBool,
    pub(super) cancel: CancellationToken,
    pub(super) tasks: TaskTracker,
}

impl RunningProvider {
    pub fn health(&self) -> Health {
        self.health.borrow().clone()
    }

    pub fn info(&self) -> ProviderInfo {
        let (health, message) = self.health();
        ProviderInfo {
            id: self.id.clone(),
            image: self.image.clone(),
            health,
            annotations: self.annotations.clone(),
            health_message: message,
            started_at: self.started_at,
        }
    }

    /// Whether the provider has answered healthy at least once.
    pub fn ever_healthy(&self) -> bool {
        self.ever_healthy.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Records a health change; true when it changed.
    pub(super) fn set_health(&self, health: ProviderHealth, message: Option<String>) -> bool {
        if health == ProviderHealth::Healthy {
            self.ever_healthy
                .store(true, std::sync::atomic::Ordering::Release);
        }
        self.health.send_if_modified(|h| {
            if h.0 == health && h.1 == message {
                false
            } else {
                *h = (health, message);
                true
            }
        })
    }

    pub(super) async fn stop(&self, timeout: Duration) {
        self.cancel.cancel();
        self.tasks.close();
        if tokio::time::timeout(timeout, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(provider_id = %self.id, "provider did not stop in time");
        }
    }
}

/// Back-off between restarts: 500 ms doubling to 30 s.
pub(super) fn restart_delay(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(30))
}

/// Sleeps unless the provider is stopped first; false when stopped.
pub(super) async fn sleep_or_cancel(prov: &RunningProvider, delay: Duration) -> bool {
    tokio::select! {
        _ = prov.cancel.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}

/// Records a health change and, when it is one, announces it as an event.
pub(super) async fn health_changed(
    ctx: &ProvidersContext,
    p: &RunningProvider,
    health: ProviderHealth,
    message: Option<String>,
) {
    if p.set_health(health, message.clone()) {
        tracing::info!(provider_id = %p.id, ?health, message = message.as_deref().unwrap_or(""), "provider health changed");
        let event = Event::ProviderHealthChanged(ProviderHealthChanged {
            host_id: ctx.host_id.clone(),
            provider_id: p.id.clone(),
            health,
            message,
        });
        ctx.events.publish(event, None).await;
    }
}
