//! The heartbeat: the full inventory, every interval, and at once after a reconnect.

use std::sync::Arc;

use tokio::sync::Notify;
use trellis_lattice::event::Event;

use crate::host::HostState;

/// Publishes heartbeats until the host shuts down. `now` triggers one out of schedule.
pub async fn run(host: Arc<HostState>, now: Arc<Notify>) {
    let mut ticker = tokio::time::interval(host.config.heartbeat_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = host.shutdown.cancelled() => return,
            _ = ticker.tick() => {}
            _ = now.notified() => ticker.reset(),
        }
        let inventory = host.inventory();
        host.events
            .publish(Event::HostHeartbeat(Box::new(inventory)), None)
            .await;
    }
}
