//! Telling a leaf cut off from its hub from a hub that is slow or failing, and waiting the
//! cut out cheaply. While a leaf node is cut off, a request for the hub's JetStream domain
//! fails at once on the leaf (nobody beyond it listens), so asking every moment costs the hub
//! nothing and whoever waits resumes moments after the link returns, not after a back-off
//! grown through a long cut (a back-off that is right for a hub that answers but fails).

use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

/// How long the hub may take to answer whether it is reachable.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// How often a waiter cut off from the hub asks again.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// Whether the hub answers `probe` (a subject only it answers, such as
/// [`crate::Subjects::js_domain_probe`]). Only an answer says it is there: no responders, an
/// error or a slow answer all say it is not.
pub async fn hub_answers(nats: &async_nats::Client, probe: &str) -> bool {
    let asked = nats.request(probe.to_string(), Bytes::new());
    matches!(tokio::time::timeout(PROBE_TIMEOUT, asked).await, Ok(Ok(_)))
}

/// Whether this side is cut off from the hub that `probe` asks: `false` when there is no
/// hub to ask (the state is on the server this side is connected to).
pub async fn cut_off(nats: &async_nats::Client, probe: Option<&str>) -> bool {
    match probe {
        Some(probe) => !hub_answers(nats, probe).await,
        None => false,
    }
}

/// Waits until the hub answers `probe`; `false` when stopped first.
pub async fn hub_back(nats: &async_nats::Client, probe: &str, stop: &CancellationToken) -> bool {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return false,
            _ = tokio::time::sleep(PROBE_INTERVAL) => {}
        }
        if hub_answers(nats, probe).await {
            return true;
        }
    }
}
