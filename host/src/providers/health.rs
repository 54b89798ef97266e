//! Health checks of one provider instance, on an interval, over the lattice.

use std::sync::Arc;
use std::time::Duration;

use trellis_lattice::control::Reply;
use trellis_lattice::inventory::ProviderHealth;
use trellis_lattice::provider::HealthReport;

use super::context::ProvidersContext;
use super::running::{health_changed, RunningProvider};

/// Checks quickly until the first answer, then every health interval, until stopped.
pub async fn watch(ctx: Arc<ProvidersContext>, prov: Arc<RunningProvider>) {
    let interval = ctx.health_interval;
    let subject = ctx.subjects.provider_health(&ctx.host_id, &prov.id);
    let mut answered = false;
    let started = tokio::time::Instant::now();
    loop {
        let pause = if answered || started.elapsed() > interval {
            interval
        } else {
            Duration::from_millis(100)
        };
        tokio::select! {
            _ = prov.cancel.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        if prov.health().0 == ProviderHealth::Restarting {
            continue;
        }
        let wait = interval
            .min(Duration::from_secs(2))
            .max(Duration::from_millis(200));
        let request = async_nats::Request::new().timeout(Some(wait));
        let (health, message) = match ctx.nats.send_request(subject.clone(), request).await {
            Ok(msg) => {
                match Reply::<HealthReport>::parse(&msg.payload).and_then(Reply::into_result) {
                    Ok(r) if r.healthy => (ProviderHealth::Healthy, r.message),
                    Ok(r) => (ProviderHealth::Unhealthy, r.message),
                    Err(e) => (
                        ProviderHealth::Unhealthy,
                        Some(format!("unreadable health answer: {e}")),
                    ),
                }
            }
            Err(e) => {
                // Before its first answer a provider is still starting, not silent.
                if !answered && started.elapsed() < interval {
                    continue;
                }
                let why = match e.kind() {
                    async_nats::RequestErrorKind::NoResponders => {
                        "does not answer health checks (not listening)".to_string()
                    }
                    async_nats::RequestErrorKind::TimedOut => format!(
                        "no health answer within {}",
                        humantime::format_duration(wait)
                    ),
                    _ => format!("health check failed: {e}"),
                };
                (ProviderHealth::NoAnswer, Some(why))
            }
        };
        if health != ProviderHealth::NoAnswer {
            answered = true;
        }
        if prov.cancel.is_cancelled() || prov.health().0 == ProviderHealth::Restarting {
            continue;
        }
        health_changed(&ctx, &prov, health, message).await;
    }
}
