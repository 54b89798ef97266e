//! What the HTTP server exports: a server span per routed request (continuing an incoming
//! `traceparent`), and `http.server.request.duration` / `http.server.active_requests` with
//! bounded attributes (method, route template, status; never the path).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use http::Request;
use opentelemetry::metrics::{BoundHistogram, BoundUpDownCounter, Histogram, UpDownCounter};
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

/// A route's instruments for its most common request, a `GET` answered `200`, bound to
/// their attributes once: measuring one is then an update of its aggregators, without
/// hashing attributes to find them. Other methods and statuses take the general path.
#[derive(Clone, Default)]
pub struct RouteMeters(Arc<OnceLock<GetMeters>>);

struct GetMeters {
    active: BoundUpDownCounter<i64>,
    ok: BoundHistogram<f64>,
}

impl RouteMeters {
    fn get(&self, template: &Arc<str>) -> &GetMeters {
        self.0.get_or_init(|| {
            let i = instruments();
            let attrs = attributes("GET", template, Some(200));
            GetMeters {
                active: i.active.bind(&attrs[..1]),
                ok: i.duration.bind(&attrs),
            }
        })
    }
}

// Instruments are not what a route is: two routes alike in target, link, path and host are
// equal whatever they measured.
impl PartialEq for RouteMeters {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for RouteMeters {}

impl std::fmt::Debug for RouteMeters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RouteMeters")
    }
}

fn attributes(method: &'static str, template: &Arc<str>, status: Option<u16>) -> Vec<KeyValue> {
    let mut attrs = vec![
        KeyValue::new("http.request.method", method),
        KeyValue::new(
            "http.route",
            opentelemetry::StringValue::from(Arc::clone(template)),
        ),
    ];
    if let Some(status) = status {
        attrs.push(KeyValue::new("http.response.status_code", i64::from(status)));
    }
    attrs
}

/// One routed request being measured; [`Measured::finish`] records it.
pub struct Measured {
    pub span: tracing::Span,
    started: Instant,
    /// `None` while nothing is exported.
    metered: Option<Metered>,
}

struct Metered {
    method: &'static str,
    template: Arc<str>,
    meters: RouteMeters,
}

/// Opens the server span of `req` (matched to `route`) and makes the request carry it, so
/// the component's invocation nests under it wherever it runs.
pub fn begin<B>(req: &mut Request<B>, route: &crate::routes::Route) -> Measured {
    if !trellis_telemetry::enabled() {
        return Measured {
            span: tracing::Span::none(),
            started: Instant::now(),
            metered: None,
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
    if let Ok(value) = http::HeaderValue::from_bytes(&own.encode()) {
        req.headers_mut().insert(TRACEPARENT, value);
    }
    let metered = Metered {
        method,
        template: Arc::clone(&route.template),
        meters: route.meters.clone(),
    };
    if method == "GET" {
        metered.meters.get(&metered.template).active.add(1);
    } else {
        instruments()
            .active
            .add(1, &attributes(method, &metered.template, None)[..1]);
    }
    Measured {
        span,
        started: Instant::now(),
        metered: Some(metered),
    }
}

impl Measured {
    pub fn finish(self, status: http::StatusCode) {
        spans::http_status(&self.span, status.as_u16());
        let Some(m) = self.metered else { return };
        let took = self.started.elapsed().as_secs_f64();
        let status = status.as_u16();
        if m.method == "GET" {
            let bound = m.meters.get(&m.template);
            bound.active.add(-1);
            if status == 200 {
                bound.ok.record(took);
                return;
            }
        } else {
            instruments()
                .active
                .add(-1, &attributes(m.method, &m.template, None)[..1]);
        }
        instruments()
            .duration
            .record(took, &attributes(m.method, &m.template, Some(status)));
    }
}
