//! Answering health checks on `Subjects::provider_health(host_id, provider_id)`.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;
use trellis_lattice::provider::HealthReport;
use trellis_lattice::server::{self, Incoming};

/// A health check that takes longer than this is answered "unhealthy".
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Answers every health request in `checks` with `check()` until `shutdown`.
pub(crate) async fn answer<F, Fut>(
    checks: futures::stream::BoxStream<'static, Incoming<()>>,
    check: F,
    shutdown: CancellationToken,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = HealthReport>,
{
    let mut checks = server::until_cancelled(checks, shutdown);
    while let Some(incoming) = checks.next().await {
        let report = tokio::time::timeout(HEALTH_TIMEOUT, check())
            .await
            .unwrap_or_else(|_| {
                HealthReport::unhealthy(format!(
                    "the health check did not finish within {HEALTH_TIMEOUT:?}"
                ))
            });
        incoming.respond(server::answer(Ok(report))).await;
    }
}
