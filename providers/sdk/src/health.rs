//! Answering health checks on `Subjects::provider_health(host_id, provider_id)`.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;
use trellis_lattice::control::Reply;
use trellis_lattice::provider::HealthReport;

/// A health check that takes longer than this is answered "unhealthy".
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Answers every health request on `sub` with `check()` until `shutdown`.
pub(crate) async fn answer<F, Fut>(
    nats: async_nats::Client,
    mut sub: async_nats::Subscriber,
    check: F,
    shutdown: CancellationToken,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = HealthReport>,
{
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break,
            msg = sub.next() => match msg {
                Some(msg) => msg,
                None => break,
            },
        };
        let Some(reply) = msg.reply else { continue };
        let report = tokio::time::timeout(HEALTH_TIMEOUT, check())
            .await
            .unwrap_or_else(|_| {
                HealthReport::unhealthy(format!(
                    "the health check did not finish within {HEALTH_TIMEOUT:?}"
                ))
            });
        let body = match serde_json::to_vec(&Reply::ok(report)) {
            Ok(body) => body,
            Err(err) => {
                tracing::warn!(%err, "cannot encode a health report");
                continue;
            }
        };
        if let Err(err) = nats.publish(reply, body.into()).await {
            tracing::debug!(%err, "cannot answer a health check");
        }
    }
    let _ = sub.unsubscribe().await;
}
