//! What the control router needs of the host's other parts, each as a narrow trait: the
//! parts implement them, and the router's tests use in-memory fakes.

use futures::future::BoxFuture;
use trellis_lattice::control::{
    ComponentScaled, ProviderStartedReply, ScaleComponent, StartProvider,
};
use trellis_lattice::inventory::HostInventory;
use trellis_lattice::ControlError;

/// Room left in a message for what wraps an inventory (a reply or an event's envelope).
const ENVELOPE_BYTES: usize = 4096;

/// The components of the host.
pub trait ComponentControl: Send + Sync {
    /// Starts, rescales, replaces or stops (`replicas: 0`) a component; answers once done.
    fn scale(&self, req: ScaleComponent) -> BoxFuture<'_, Result<ComponentScaled, ControlError>>;
    fn is_running(&self, id: &str) -> bool;
    /// What a running component imports.
    fn imports_of(&self, id: &str) -> Option<Vec<String>>;
    fn count(&self) -> usize;
}

/// The capability providers the host supervises.
pub trait ProviderControl: Send + Sync {
    /// Starts a provider and waits for its first health answer (or its failure). The flag
    /// is false when the same provider already ran here (nothing was started).
    fn start(
        &self,
        req: StartProvider,
    ) -> BoxFuture<'_, Result<(ProviderStartedReply, bool), ControlError>>;
    fn stop<'a>(&'a self, provider_id: &'a str) -> BoxFuture<'a, Result<(), ControlError>>;
    fn is_running(&self, id: &str) -> bool;
    fn count(&self) -> usize;
}

/// The host itself: what it has, and being told to stop.
pub trait HostControl: Send + Sync {
    fn host_id(&self) -> &str;
    fn friendly_name(&self) -> &str;
    fn inventory(&self) -> HostInventory;
    /// The largest message the NATS server accepts.
    fn max_message_bytes(&self) -> usize;
    /// Page `index` of the inventory, each page small enough for one message with the
    /// envelope around it (the whole inventory when it fits).
    fn inventory_page(&self, index: u32) -> Result<HostInventory, ControlError> {
        let room = self.max_message_bytes().saturating_sub(ENVELOPE_BYTES);
        self.inventory()
            .paged(index, room)
            .ok_or_else(|| ControlError::not_found(format!("the inventory has no page {index}")))
    }
    /// Live per-component figures (`host.stats`).
    fn stats(&self) -> trellis_lattice::stats::HostStats;
    /// Begins an orderly stop; in-flight invocations get `timeout_ms` (or the host's default).
    fn request_stop(&self, timeout_ms: Option<u64>);
}

/// What a component imports, from this host or any other running it; `None` when no host
/// runs it.
pub trait ImportsLookup: Send + Sync {
    fn imports_of<'a>(&'a self, component_id: &'a str) -> BoxFuture<'a, Option<Vec<String>>>;
}
