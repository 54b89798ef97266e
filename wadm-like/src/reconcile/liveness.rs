//! Which hosts are still there: late heartbeats are probed; a host that stops answering
//! without a goodbye is unreachable (kept, sent nothing), and forgotten after a day.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use trellis_lattice::control::Empty;
use trellis_lattice::inventory::HostInventory;
use trellis_lattice::Error as LatticeError;

use super::input::{Input, Probe};
use super::Reconciler;

/// How long an unreachable host is kept before the manager forgets it.
const FORGET_UNREACHABLE: Duration = Duration::from_secs(24 * 3600);

impl Reconciler {
    pub(super) fn check_liveness(&mut self, now: Instant) {
        for host in self.view.expired(now) {
            if self.view.mark_unreachable(&host) {
                tracing::warn!(host_id = %host, "host is unreachable (missed heartbeats)");
                self.dirty = true;
            }
        }
        for host in self.view.long_unreachable(now, FORGET_UNREACHABLE) {
            if self.view.remove_host(&host) {
                tracing::info!(host_id = %host, "forgetting a host unreachable for a day");
                self.dirty = true;
            }
        }
        for (host, timeout) in self.view.to_probe(now) {
            let client = Arc::clone(&self.client);
            let tx = self.tx.clone();
            self.tasks.spawn(async move {
                let answer: Result<HostInventory, _> = client
                    .request(client.subjects().host_get(&host), &Empty {}, timeout)
                    .await;
                let probe = match answer {
                    Ok(inv) => Probe::Alive(Box::new(inv)),
                    Err(LatticeError::NoResponders(_)) => Probe::Gone,
                    Err(_) => Probe::NoAnswer,
                };
                let _ = tx.send(Input::Probe(host, probe)).await;
            });
        }
    }
}
