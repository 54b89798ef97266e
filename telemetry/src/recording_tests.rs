//! What the span layer records and the log layer attaches, under a real `tracing` registry
//! (kept apart from both layers, which the tests drive through `context` and `spans`).

mod spans {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use opentelemetry::trace::{SpanId, SpanKind, Status};
    use opentelemetry_sdk::trace::SpanData;
    use tracing::field::Empty;
    use tracing_subscriber::filter::filter_fn;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::Layer as _;
    use trellis_lattice::trace::TraceContext;

    use crate::batch::{BatchConfig, Queue};
    use crate::context;

    /// Runs `f` under a subscriber with the span layer; returns what it exported.
    async fn exported(f: impl FnOnce()) -> Vec<SpanData> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let config = BatchConfig {
            capacity: 1000,
            batch: 1000,
            delay: Duration::from_secs(3600),
        };
        let (queue, drain) = Queue::start(config, move |batch| {
            sink.lock().unwrap().extend(batch);
            async { Ok(()) }
        });
        let layer = crate::layer::SpanLayer::new(queue).with_filter(filter_fn(|meta| {
            !meta.is_span() || meta.target() == "trellis"
        }));
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
        drain.stop(Duration::from_secs(30)).await;
        let spans = seen.lock().unwrap().clone();
        spans
    }

    fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name} in {spans:?}"))
    }

    #[tokio::test]
    async fn spans_continue_the_caller_and_nest_through_unrecorded_spans() {
        let incoming = TraceContext::new_root();
        let mut own = None;
        let spans = exported(|| {
            let server = tracing::info_span!(
                target: "trellis",
                "invocation",
                otel.name = "counter increment",
                otel.kind = "server",
                rpc.method = "increment",
                otel.status_code = Empty,
                otel.status_description = Empty,
                error.type = Empty,
            );
            let cx = context::continue_remote(&server, Some(incoming));
            own = Some(cx);
            server.in_scope(|| {
                let plumbing = tracing::info_span!(target: "trellis_host::runtime", "plumbing");
                plumbing.in_scope(|| {
                    assert_eq!(context::of(&tracing::Span::current()), Some(cx));
                    let client =
                        tracing::info_span!(target: "trellis", "import call", otel.kind = "client");
                    let child = context::of(&client).expect("recorded");
                    assert_eq!(child.trace_id, cx.trace_id);
                    assert_ne!(child.span_id, cx.span_id);
                    tracing::warn!(target: "trellis_host::runtime", attempt = 2u64, "retrying");
                });
            });
            crate::spans::fail(&server, "trap", "it trapped");
        })
        .await;
        let own = own.expect("continued");
        assert_eq!(own.trace_id, incoming.trace_id);
        assert_eq!(spans.len(), 2, "{spans:?}");

        let server = named(&spans, "counter increment");
        assert_eq!(server.span_kind, SpanKind::Server);
        assert_eq!(server.parent_span_id, SpanId::from(incoming.span_id));
        assert!(server.parent_span_is_remote);
        assert_eq!(server.span_context.span_id(), SpanId::from(own.span_id));
        assert_eq!(server.status, Status::error("it trapped"));
        let attr = |s: &SpanData, k: &str| {
            s.attributes
                .iter()
                .find(|kv| kv.key.as_str() == k)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(attr(server, "error.type").as_deref(), Some("trap"));
        assert_eq!(attr(server, "rpc.method").as_deref(), Some("increment"));
        assert_eq!(
            attr(server, "otel.kind"),
            None,
            "otel.* fields are not attributes"
        );
        assert_eq!(server.events.events.len(), 1);
        assert_eq!(server.events.events[0].name, "retrying");

        let client = named(&spans, "import call");
        assert_eq!(client.span_kind, SpanKind::Client);
        assert_eq!(client.parent_span_id, SpanId::from(own.span_id));
        assert!(!client.parent_span_is_remote);
        assert_eq!(
            client.span_context.trace_id(),
            server.span_context.trace_id()
        );
    }

    #[tokio::test]
    async fn a_caller_that_did_not_sample_makes_nothing_exported() {
        let mut incoming = TraceContext::new_root();
        incoming.sampled = false;
        let spans = exported(|| {
            let server = tracing::info_span!(target: "trellis", "control", otel.kind = "server");
            let cx = context::continue_remote(&server, Some(incoming));
            assert!(!cx.sampled);
            let child = tracing::info_span!(target: "trellis", parent: &server, "command");
            assert_eq!(context::of(&child).map(|c| c.sampled), Some(false));
        })
        .await;
        assert!(spans.is_empty(), "{spans:?}");
    }
}

mod logs {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use opentelemetry::logs::{AnyValue, Severity};
    use opentelemetry::trace::{SpanId, TraceId};
    use opentelemetry_sdk::logs::{SdkLogRecord, SdkLoggerProvider};
    use tracing_subscriber::layer::SubscriberExt as _;
    use trellis_lattice::trace::TraceContext;

    use crate::batch::{BatchConfig, Queue};
    use crate::processors::LogQueueProcessor;

    fn config() -> BatchConfig {
        BatchConfig {
            capacity: 1000,
            batch: 1000,
            delay: Duration::from_secs(3600),
        }
    }

    /// A record logged inside a span made for export carries that span's trace, even when
    /// the log directives are above the span's level.
    #[tokio::test]
    async fn records_carry_the_trace_of_the_span_they_are_logged_in() {
        let seen: Arc<Mutex<Vec<SdkLogRecord>>> = Arc::default();
        let sink = Arc::clone(&seen);
        let (logs, log_drain) = Queue::start(config(), move |batch: Vec<(SdkLogRecord, _)>| {
            sink.lock()
                .unwrap()
                .extend(batch.into_iter().map(|(r, _)| r));
            async { Ok(()) }
        });
        let (spans, span_drain) = Queue::start(config(), |_batch| async { Ok(()) });
        let provider = SdkLoggerProvider::builder()
            .with_log_processor(LogQueueProcessor(logs))
            .build();
        let logging = crate::switch::Logging {
            filter: "warn".into(),
            json: false,
            plain: true,
        };
        let layers = crate::subscriber::layers(&logging, Some(spans), Some(&provider));
        let incoming = TraceContext::new_root();
        let mut own = None;
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layers), || {
            let span = tracing::info_span!(target: "trellis", "invocation", otel.kind = "server");
            own = Some(crate::context::continue_remote(&span, Some(incoming)));
            span.in_scope(|| {
                tracing::warn!(target: "trellis_host::runtime", component_id = "c1", "hello");
                tracing::info!(target: "trellis_host::runtime", "below the directives");
            });
            tracing::error!(target: "trellis_host::runtime", "outside");
        });
        log_drain.stop(Duration::from_secs(30)).await;
        span_drain.stop(Duration::from_secs(30)).await;
        let own = own.expect("continued");
        let records = seen.lock().unwrap();
        assert_eq!(records.len(), 2, "{records:?}");
        let inside = &records[0];
        assert_eq!(inside.body(), Some(&AnyValue::from("hello".to_string())));
        assert_eq!(inside.severity_number(), Some(Severity::Warn));
        assert_eq!(inside.severity_text(), Some("WARN"));
        assert!(inside
            .attributes_iter()
            .any(|(k, v)| k.as_str() == "component_id" && *v == AnyValue::from("c1".to_string())));
        let trace = inside.trace_context().expect("trace context");
        assert_eq!(trace.trace_id, TraceId::from(own.trace_id));
        assert_eq!(trace.span_id, SpanId::from(own.span_id));
        assert!(records[1].trace_context().is_none(), "{:?}", records[1]);
    }
}
