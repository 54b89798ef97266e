//! The process's `tracing` subscriber: the stderr log as before, and with export on, the
//! OpenTelemetry span layer and the log bridge, each with its own filter.

use opentelemetry_sdk::logs::SdkLoggerProvider;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{filter_fn, EnvFilter, FilterExt as _};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer, Registry};

use crate::export::Pipelines;
use crate::layer::SpanLayer;
use crate::logs::LogLayer;
use crate::processors::SpanQueue;
use crate::switch::Logging;

type Boxed = Box<dyn Layer<Registry> + Send + Sync>;

/// Targets whose events must never be exported: the exporters' own machinery (a failed
/// export logged and exported again would feed itself).
const MACHINERY: &[&str] = &[
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
    "opentelemetry_http",
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

/// The log directives, narrowed by `keep`, keeping the directives' level hint (see
/// [`layers`] for why the hint matters).
fn directives_and(
    logging: &Logging,
    keep: fn(&tracing::Metadata<'_>) -> bool,
) -> impl tracing_subscriber::layer::Filter<Registry> {
    let directives = filter(&logging.filter);
    let hint = tracing_subscriber::layer::Filter::<Registry>::max_level_hint(&directives)
        .unwrap_or(LevelFilter::TRACE);
    directives.and(filter_fn(keep).with_max_level_hint(hint))
}

/// Spans made for export (target `trellis`) stay out of the stderr log: it reads the same with
/// export on as off, and the log layer does not format every exported span's fields.
fn stderr_filter(logging: &Logging) -> impl tracing_subscriber::layer::Filter<Registry> {
    directives_and(logging, |meta| {
        !(meta.is_span() && meta.target() == "trellis")
    })
}

fn stderr_layer(logging: &Logging) -> Boxed {
    use std::io::IsTerminal as _;
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let boxed: Boxed = if logging.json {
        layer.json().with_filter(stderr_filter(logging)).boxed()
    } else if logging.plain {
        layer
            .without_time()
            .with_filter(stderr_filter(logging))
            .boxed()
    } else {
        layer.with_filter(stderr_filter(logging)).boxed()
    };
    boxed
}

pub(crate) fn install(logging: &Logging, pipelines: Option<&Pipelines>) {
    let layers = layers(
        logging,
        pipelines.and_then(|p| p.span_queue.clone()),
        pipelines.and_then(|p| p.logger_provider.as_ref()),
    );
    let _ = tracing_subscriber::registry().with(layers).try_init();
}

/// The layers: stderr always; spans and the log bridge when their pipelines are built.
pub(crate) fn layers(
    logging: &Logging,
    span_queue: Option<SpanQueue>,
    logger_provider: Option<&SdkLoggerProvider>,
) -> Vec<Boxed> {
    let mut layers: Vec<Boxed> = vec![stderr_layer(logging)];
    if let Some(queue) = span_queue {
        // Only the spans Trellis names (target `trellis`, all at INFO) are exported, with
        // the warnings and errors logged inside them as span events. The level hint
        // matters: without one the process's maximum level becomes TRACE, and every
        // `log::trace!` of wasmtime and cranelift is turned into an event and filtered
        // at run time (`log` records have no callsite whose interest could be cached).
        let spans = SpanLayer::new(queue).with_filter(
            filter_fn(|meta| {
                if meta.is_span() {
                    meta.target() == "trellis"
                } else {
                    meta.target() == "trellis::event"
                        || (*meta.level() <= tracing::Level::WARN && !machinery(meta.target()))
                }
            })
            .with_max_level_hint(LevelFilter::INFO),
        );
        layers.push(spans.boxed());
    }
    if let Some(provider) = logger_provider {
        // The spans made for export are visible to the bridge whatever the directives say,
        // so a record logged inside one carries its trace.
        let keep = filter_fn(|meta| meta.is_span() && meta.target() == "trellis")
            .with_max_level_hint(LevelFilter::INFO)
            .or(directives_and(logging, |meta| !machinery(meta.target())));
        let bridge = LogLayer::new(provider).with_filter(keep);
        layers.push(bridge.boxed());
    }
    layers
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

    /// The stderr log sees events and spans of its own, never the spans made for export.
    #[test]
    fn spans_made_for_export_stay_out_of_the_stderr_log() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        use tracing_subscriber::layer::{Context, SubscriberExt as _};
        use tracing_subscriber::Layer as _;

        #[derive(Clone, Default)]
        struct Seen(Arc<AtomicUsize>, Arc<AtomicUsize>);
        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Seen {
            fn on_new_span(
                &self,
                _: &tracing::span::Attributes<'_>,
                _: &tracing::span::Id,
                _: Context<'_, S>,
            ) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
            fn on_event(&self, _: &tracing::Event<'_>, _: Context<'_, S>) {
                self.1.fetch_add(1, Ordering::Relaxed);
            }
        }
        let logging = crate::switch::Logging {
            filter: "info".into(),
            json: false,
            plain: true,
        };
        let seen = Seen::default();
        let subscriber = tracing_subscriber::registry().with(
            seen.clone()
                .with_filter(crate::subscriber::stderr_filter(&logging)),
        );
        tracing::subscriber::with_default(subscriber, || {
            let exported = tracing::info_span!(target: "trellis", "invocation");
            let own = tracing::info_span!(target: "trellis_host::components", "serve");
            let _in = exported.enter();
            tracing::info!(target: "trellis_host::components", "an event inside it");
            tracing::debug!(target: "trellis_host::components", "below the directives");
            drop(own);
        });
        assert_eq!(
            seen.0.load(Ordering::Relaxed),
            1,
            "spans seen by the stderr log"
        );
        assert_eq!(
            seen.1.load(Ordering::Relaxed),
            1,
            "events seen by the stderr log"
        );
    }

    /// With export on, the process's maximum level stays that of its log directives: were it
    /// TRACE, every `log::trace!` of wasmtime would be dispatched and filtered per record.
    #[tokio::test]
    async fn export_keeps_the_level_hint_of_the_directives() {
        use tracing::level_filters::LevelFilter;
        use tracing::Subscriber as _;
        use tracing_subscriber::layer::SubscriberExt as _;

        let config = crate::batch::BatchConfig {
            capacity: 10,
            batch: 10,
            delay: std::time::Duration::from_secs(3600),
        };
        let (queue, _drain) = crate::batch::Queue::start(config, |_batch| async { Ok(()) });
        let logs = opentelemetry_sdk::logs::SdkLoggerProvider::builder().build();
        for (directives, expected) in [("info", LevelFilter::INFO), ("debug", LevelFilter::DEBUG)] {
            let logging = crate::switch::Logging {
                filter: directives.into(),
                json: false,
                plain: true,
            };
            let layers = crate::subscriber::layers(&logging, Some(queue.clone()), Some(&logs));
            assert_eq!(layers.len(), 3);
            let subscriber = tracing_subscriber::registry().with(layers);
            assert_eq!(subscriber.max_level_hint(), Some(expected), "{directives}");
        }
    }
}
