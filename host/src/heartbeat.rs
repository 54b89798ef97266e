//! The heartbeat: the inventory (its first page when it is too large for one message), every
//! interval, and at once after a reconnect.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use trellis_lattice::event::Event;
use trellis_lattice::server::EventSink;

use crate::control::parts::HostControl;

/// Publishes heartbeats until `shutdown`. `now` triggers one out of schedule.
pub async fn run(
    host: Arc<dyn HostControl>,
    events: Arc<dyn EventSink>,
    interval: Duration,
    now: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
            _ = now.notified() => ticker.reset(),
        }
        // Too much to say in one message: the first page, which tells the manager to read
        // the rest with `host.get`. Never silence.
        match host.inventory_page(0) {
            Ok(inventory) => {
                events
                    .publish(Event::HostHeartbeat(Box::new(inventory)), None)
                    .await
            }
            Err(err) => tracing::error!(%err, "cannot build the heartbeat"),
        }
    }
}
