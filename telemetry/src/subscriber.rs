//! The process's `tracing` subscriber: the stderr log as before, and with export on, the
//! OpenTelemetry span layer and the log bridge, each with its own filter.

use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer, Registry};

use crate::export::Pipelines;
use crate::switch::Logging;

type Boxed = Box<dyn Layer<Registry> + Send + Sync>;

/// Targets whose events must never be exported: the exporters' own machinery (a failed
/// export logged and exported again would feed itself).
const MACHINERY: &[&str] = &[
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
    "opentelemetry_http",
    "opentelemetry_appender_tracing",
    "tracing_opentelemetry",
    "trellis_telemetry",
    "tonic",
    "h2",
    "hyper",
    "hyper_util",
    "reqwest",
    "tower",
    "rustls",
];

fn machinery(target: &str) -> bool {
    MACHINERY
        .iter()
        .any(|m| target == *m || target.strip_prefix(m).is_some_and(|r| r.starts_with("::")))
}

fn filter(directives: &str) -> EnvFilter {
    EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info"))
}

fn stderr_layer(logging: &Logging) -> Boxed {
    use std::io::IsTerminal as _;
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let boxed: Boxed = if logging.json {
        layer.json().with_filter(filter(&logging.filter)).boxed()
    } else if logging.plain {
        layer
            .without_time()
            .with_filter(filter(&logging.filter))
            .boxed()
    } else {
        layer.with_filter(filter(&logging.filter)).boxed()
    };
    boxed
}

pub(crate) fn install(logging: &Logging, pipelines: Option<&Pipelines>) {
    let mut layers: Vec<Boxed> = vec![stderr_layer(logging)];
    if let Some(pipelines) = pipelines {
        if let Some(tracer) = pipelines.tracer.clone() {
            // Only the spans Trellis names (target `trellis`) are exported, with the warnings
            // and errors logged inside them as span events.
            let spans = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_threads(false)
                .with_location(false)
                .with_tracked_inactivity(false)
                .with_filter(filter_fn(|meta| {
                    if meta.is_span() {
                        meta.target() == "trellis"
                    } else {
                        meta.target() == "trellis::event"
                            || (*meta.level() <= tracing::Level::WARN && !machinery(meta.target()))
                    }
                }));
            layers.push(spans.boxed());
        }
        if let Some(provider) = &pipelines.logger_provider {
            let bridge = OpenTelemetryTracingBridge::new(provider)
                .with_filter(filter(&logging.filter))
                .with_filter(filter_fn(|meta| !machinery(meta.target())));
            layers.push(bridge.boxed());
        }
    }
    let _ = tracing_subscriber::registry().with(layers).try_init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn machinery_targets() {
        assert!(crate::subscriber::machinery("tonic"));
        assert!(crate::subscriber::machinery("opentelemetry_sdk"));
        assert!(crate::subscriber::machinery("h2::codec"));
        assert!(!crate::subscriber::machinery("trellis_host::components"));
        assert!(!crate::subscriber::machinery("hyperion"));
    }
}
