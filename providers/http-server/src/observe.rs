//! What the HTTP server exports: a server span per routed request (continuing an incoming
//! `traceparent`), and `http.server.request.duration` / `http.server.active_requests` with
//! bounded attributes (method, route template, status; never the path).

use std::sync::OnceLock;
use std::time::Instant;

use http::Request;
use opentelemetry::metrics::{Histogram, UpDownCounter};
use opentelemetry::KeyValue;
use trellis_lattice::trace::{TraceContext, TRACEPARENT};
use trellis_telemetry::{context, spans};

struct Instruments {
    duration: Histogram<f64>,
    active: UpDownCounter<i64>,
}

static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();

fn instruments() -> &'static Instruments {
    INSTRUMENTS.get_or_init(|| {
        let meter = opentelemetry::global::meter("trellis-http-server");
        Instruments {
            duration: meter
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .with_description("Duration of HTTP server requests")
                .build(),
            active: meter
                .i64_up_down_counter("http.server.active_requests")
                .with_unit("{request}")
                .with_description("HTTP server requests in flight")
                .build(),
        }
    })
}

/// Methods outside the standard set are reported as `_OTHER` (bounded cardinality).
fn method_attr(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::PATCH => "PATCH",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::CONNECT => "CONNECT",
        http::Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// One routed request being measured; [`Measured::finish`] records it.
pub struct Measured {
    pub span: tracing::Span,
    started: Instant,
    attrs: Option<Vec<KeyValue>>,
}

/// Opens the server span of `req` (matched to `route`) and makes the request carry it, so
/// the component's invocation nests under it wherever it runs.
pub fn begin<B>(req: &mut Request<B>, route: &crate::routes::Route) -> Measured {
    if !trellis_telemetry::enabled() {
        return Measured {
            span: tracing::Span::none(),
            started: Instant::now(),
            attrs: None,
        };
    }
    let method = method_attr(req.method());
    let incoming = req
        .headers()
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse);
    // An unsampled request makes no span; what it hands on says so.
    let sampled = trellis_telemetry::sampling::decide(incoming.as_ref());
    let span = if sampled {
        let server_address = req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()))
            .map_or("", |h| h.rsplit_once(':').map_or(h, |(name, _)| name));
        spans::http_server(method, &route.template, req.uri().path(), server_address)
    } else {
        tracing::Span::none()
    };
    let mut own = context::continue_remote(&span, incoming);
    own.sampled &= sampled;
    if let Ok(value) = http::HeaderValue::from_str(&own.to_string()) {
        req.headers_mut().insert(TRACEPARENT, value);
    }
    let attrs = vec![
        KeyValue::new("http.request.method", method),
        KeyValue::new(
            "http.route",
            opentelemetry::StringValue::from(std::sync::Arc::clone(&route.template)),
        ),

    ];
    instruments().active.add(1, &attrs[..1]);
    Measured {
        span,
        started: Instant::now(),
        attrs: Some(attrs),
    }
}

impl Measured {
    pub fn finish(self, status: http::StatusCode) {
        spans::http_status(&self.span, status.as_u16());
        if let Some(mut attrs) = self.attrs {
            let i = instruments();
            i.active.add(-1, &attrs[..1]);
            attrs.push(KeyValue::new(
                "http.response.status_code",
                i64::from(status.as_u16()),
            ));
            i.duration
                .record(self.started.elapsed().as_secs_f64(), &attrs);
        }
    }
}
