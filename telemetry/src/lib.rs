//! OpenTelemetry for every Trellis process: the host, providers, the deployment manager and
//! the CLI turn it on with one switch (`--observability` / `TRELLIS_OBSERVABILITY=1`) and
//! configure it with the standard `OTEL_*` variables only.
//!
//! Off (the default) installs the plain log subscriber and nothing else: no exporter, no
//! queue, and every span constructor in [`spans`] returns a disabled span, so the hot paths
//! pay one relaxed load. On, spans, logs and metrics leave through bounded queues drained by
//! tokio tasks: a slow or unreachable collector costs requests nothing, and what the queues
//! drop is counted (`trellis.telemetry.dropped`).

mod batch;
pub mod context;
mod export;
pub mod foreign;
mod layer;
mod leaf;
mod logs;
mod metrics;
mod otlp;
mod processors;
mod record;
#[cfg(test)]
mod recording_tests;
mod resource;
pub mod sampling;
pub mod spans;
mod subscriber;
mod switch;

use std::time::Duration;

pub use leaf::Leaf;
pub use opentelemetry::KeyValue;
pub use switch::{enabled, Logging, Service};

/// The switch every Trellis binary reads (and `trellis up` and the host pass on).
pub const OBSERVABILITY_ENV: &str = "TRELLIS_OBSERVABILITY";

/// The installed pipelines; [`Telemetry::shutdown`] flushes them.
pub struct Telemetry {
    pipelines: Option<export::Pipelines>,
}

/// Installs logging, and with `observability` the OpenTelemetry pipelines. With
/// observability on it must be called inside a tokio runtime (its export tasks run there).
pub fn init(service: Service, logging: &Logging, observability: bool) -> Telemetry {
    if !observability {
        subscriber::install(logging, None);
        return Telemetry { pipelines: None };
    }
    let resource = resource::build(&service);
    let pipelines = export::Pipelines::start(resource);
    subscriber::install(logging, Some(&pipelines));
    context::install();
    sampling::install(sampling::Rule::from_lookup(|k| std::env::var(k).ok()));
    if let Some(queue) = &pipelines.span_queue {
        foreign::install(queue.clone());
    }
    switch::set(true);
    pipelines.report_start();
    Telemetry {
        pipelines: Some(pipelines),
    }
}

impl Telemetry {
    /// Whether this process exports.
    pub fn is_on(&self) -> bool {
        self.pipelines.is_some()
    }

    /// Flushes what is queued (bounded by `deadline`) and stops the export tasks.
    pub async fn shutdown(self, deadline: Duration) {
        if let Some(pipelines) = self.pipelines {
            switch::set(false);
            pipelines.shutdown(deadline).await;
        }
    }
}

/// Whether `TRELLIS_OBSERVABILITY` turns observability on (`1`, `true`, `yes`, `on`).
pub fn env_switch() -> bool {
    std::env::var(OBSERVABILITY_ENV)
        .map(|v| truthy(&v))
        .unwrap_or(false)
}

fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// The environment a child process (an external provider) needs to export like its parent:
/// the switch and every standard `OTEL_*` variable except the service name (a provider
/// names itself).
pub fn child_env() -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("OTEL_") && k != "OTEL_SERVICE_NAME")
        .collect();
    env.push((
        OBSERVABILITY_ENV.to_string(),
        if enabled() { "1" } else { "0" }.to_string(),
    ));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_values() {
        for on in ["1", "true", "TRUE", " yes", "on"] {
            assert!(truthy(on), "{on}");
        }
        for off in ["", "0", "false", "no", "off", "2"] {
            assert!(!truthy(off), "{off}");
        }
    }
}
