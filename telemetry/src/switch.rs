//! Whether this process exports, and what it says about itself: the leaf every other
//! module reads.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::KeyValue;

static ON: AtomicBool = AtomicBool::new(false);

/// Whether spans and metrics are exported by this process.
#[inline]
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

pub(crate) fn set(on: bool) {
    ON.store(on, Ordering::Relaxed);
}

/// Who is exporting: becomes the OpenTelemetry resource.
#[derive(Clone, Debug)]
pub struct Service {
    /// `service.name` unless `OTEL_SERVICE_NAME` says otherwise.
    pub name: String,
    pub version: &'static str,
    /// `service.instance.id`: the host id, or the provider's or manager's instance id.
    pub instance_id: String,
    /// More resource attributes (`trellis.lattice`, labels, …).
    pub attributes: Vec<KeyValue>,
}

/// How the process logs to stderr (unchanged by the switch).
#[derive(Clone, Debug)]
pub struct Logging {
    /// An `EnvFilter` directive string.
    pub filter: String,
    pub json: bool,
    /// Lines without timestamps (whoever reads them stamps them: a host reading its
    /// provider's stderr).
    pub plain: bool,
}
