//! A real OTLP receiver for tests: gRPC (the collector services generated from the
//! OpenTelemetry protobuf definitions) and HTTP/protobuf (`/v1/traces`, `/v1/logs`,
//! `/v1/metrics`), each on a free loopback port, decoding everything it receives.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message as _;
use tokio_util::sync::CancellationToken;

pub use crate::otlp_model::{Point, ReceivedLog, ReceivedSpan};

/// How much arrived, in a counting receiver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counted {
    pub spans: u64,
    pub logs: u64,
    pub points: u64,
}

/// Which transport the exporters are pointed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

#[derive(Default)]
struct Received {
    /// Only count what arrives (a benchmark's collector), keeping nothing.
    count_only: bool,
    /// Count spans arriving over HTTP by walking their wire format instead of decoding
    /// them into objects (see `otlp_wire`).
    wire_spans: bool,
    counted: Counted,
    /// The last `trellis.telemetry.dropped` value reported for spans.
    dropped_spans: u64,
    spans: Vec<ReceivedSpan>,
    logs: Vec<ReceivedLog>,
    points: Vec<Point>,
    /// Request headers seen (lower-case names), per request.
    headers: Vec<BTreeMap<String, String>>,
}

type Store = Arc<Mutex<Received>>;

/// `env` as the `(&str, &str)` pairs process starters take.
pub fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// A running receiver; stops on drop.
pub struct OtlpReceiver {
    store: Store,
    grpc: std::net::SocketAddr,
    http: std::net::SocketAddr,
    stop: CancellationToken,
}

impl OtlpReceiver {
    pub async fn start() -> Self {
        Self::start_with(Received::default()).await
    }

    /// A receiver that decodes everything and keeps only counts (for benchmarks).
    pub async fn start_counting() -> Self {
        Self::start_with(Received {
            count_only: true,
            ..Received::default()
        })
        .await
    }

    /// A counting receiver that counts spans sent over HTTP/protobuf by walking the wire
    /// format (checked, not built into objects): a benchmark's collector that costs the
    /// machine little, so the figures are the exporter's.
    pub async fn start_wire_counting() -> Self {
        Self::start_with(Received {
            count_only: true,
            wire_spans: true,
            ..Received::default()
        })
        .await
    }

    /// The spans the exporting process last reported dropping (its
    /// `trellis.telemetry.dropped{signal=spans}`).
    pub fn dropped_spans(&self) -> u64 {
        self.store.lock().map(|s| s.dropped_spans).unwrap_or(0)
    }

    pub fn counted(&self) -> Counted {
        self.store.lock().map(|s| s.counted).unwrap_or_default()
    }

    async fn start_with(received: Received) -> Self {
        let store: Store = Arc::new(Mutex::new(received));
        let stop = CancellationToken::new();
        let grpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind grpc");
        let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind http");
        let grpc = grpc_listener.local_addr().expect("grpc addr");
        let http = http_listener.local_addr().expect("http addr");
        let svc = Collector(store.clone());
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(grpc_listener);
        let grpc_stop = stop.clone();
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(svc.clone()))
                .add_service(LogsServiceServer::new(svc.clone()))
                .add_service(MetricsServiceServer::new(svc))
                .serve_with_incoming_shutdown(incoming, grpc_stop.cancelled_owned())
                .await;
        });
        tokio::spawn(serve_http(http_listener, store.clone(), stop.clone()));
        Self {
            store,
            grpc,
            http,
            stop,
        }
    }

    /// The variables that point a Trellis process at this receiver, with short export
    /// delays so tests need not wait long.
    pub fn env(&self, protocol: Protocol) -> Vec<(String, String)> {
        let (endpoint, proto) = match protocol {
            Protocol::Grpc => (format!("http://{}", self.grpc), "grpc"),
            Protocol::HttpProtobuf => (format!("http://{}", self.http), "http/protobuf"),
        };
        [
            ("TRELLIS_OBSERVABILITY", "1".to_string()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", proto.to_string()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
            ("OTEL_BLRP_SCHEDULE_DELAY", "100".to_string()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "300".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.store
            .lock()
            .map(|s| s.spans.clone())
            .unwrap_or_default()
    }

    pub fn logs(&self) -> Vec<ReceivedLog> {
        self.store
            .lock()
            .map(|s| s.logs.clone())
            .unwrap_or_default()
    }

    pub fn points(&self) -> Vec<Point> {
        self.store
            .lock()
            .map(|s| s.points.clone())
            .unwrap_or_default()
    }

    pub fn headers(&self) -> Vec<BTreeMap<String, String>> {
        self.store
            .lock()
            .map(|s| s.headers.clone())
            .unwrap_or_default()
    }

    /// Whether anything at all arrived.
    pub fn is_empty(&self) -> bool {
        self.store
            .lock()
            .map(|s| {
                s.spans.is_empty()
                    && s.logs.is_empty()
                    && s.points.is_empty()
                    && s.headers.is_empty()
            })
            .unwrap_or(true)
    }

    /// Polls `check` until it returns something (deadline generous: it only stops a hung
    /// test); on timeout panics with what did arrive.
    pub async fn wait_for<T>(&self, what: &str, check: impl Fn(&Self) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(found) = check(self) {
                return found;
            }
            if tokio::time::Instant::now() > deadline {
                let spans: Vec<String> = self
                    .spans()
                    .iter()
                    .map(|s| format!("{} [{}] {}", s.service, s.trace_id, s.name))
                    .collect();
                panic!(
                    "{what}: not received within 60s; {} spans: {spans:#?}; {} logs; {} points",
                    spans.len(),
                    self.logs().len(),
                    self.points().len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[derive(Clone)]
struct Collector(Store);

fn metadata_headers<T>(req: &tonic::Request<T>) -> BTreeMap<String, String> {
    req.metadata()
        .clone()
        .into_headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect()
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = metadata_headers(&request);
        take_traces(&self.0, headers, request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let headers = metadata_headers(&request);
        take_logs(&self.0, headers, request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let headers = metadata_headers(&request);
        take_metrics(&self.0, headers, request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

async fn serve_http(listener: tokio::net::TcpListener, store: Store, stop: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
        };
        let store = store.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let store = store.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let headers = req
                            .headers()
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                            })
                            .collect();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let wire = store.lock().is_ok_and(|s| s.wire_spans);
                        let ok = match path.as_str() {
                            "/v1/traces" if wire => crate::otlp_wire::count_spans(&body)
                                .map(|n| {
                                    if let Ok(mut s) = store.lock() {
                                        s.counted.spans += n;
                                    }
                                })
                                .is_some(),
                            "/v1/traces" => ExportTraceServiceRequest::decode(body)
                                .map(|r| take_traces(&store, headers, r))
                                .is_ok(),
                            "/v1/logs" => ExportLogsServiceRequest::decode(body)
                                .map(|r| take_logs(&store, headers, r))
                                .is_ok(),
                            "/v1/metrics" => ExportMetricsServiceRequest::decode(body)
                                .map(|r| take_metrics(&store, headers, r))
                                .is_ok(),
                            _ => false,
                        };
                        let status = if ok { 200 } else { 400 };
                        http::Response::builder()
                            .status(status)
                            .header("content-type", "application/x-protobuf")
                            .body(Full::new(Bytes::new()))
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

pub(crate) fn value(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

pub(crate) fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), value(&kv.value)))
        .collect()
}

fn take_traces(store: &Store, headers: BTreeMap<String, String>, req: ExportTraceServiceRequest) {
    let mut spans = Vec::new();
    for rs in req.resource_spans {
        let resource = rs
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for span in ss.spans {
                spans.push(ReceivedSpan::from_proto(&resource, span));
            }
        }
    }
    if let Ok(mut s) = store.lock() {
        s.counted.spans += spans.len() as u64;
        if !s.count_only {
            s.headers.push(headers);
            s.spans.extend(spans);
        }
    }
}

fn take_logs(store: &Store, headers: BTreeMap<String, String>, req: ExportLogsServiceRequest) {
    let mut logs = Vec::new();
    for rl in req.resource_logs {
        let resource = rl
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        for sl in rl.scope_logs {
            for record in sl.log_records {
                logs.push(ReceivedLog::from_proto(&resource, record));
            }
        }
    }
    if let Ok(mut s) = store.lock() {
        s.counted.logs += logs.len() as u64;
        if !s.count_only {
            s.headers.push(headers);
            s.logs.extend(logs);
        }
    }
}

fn take_metrics(
    store: &Store,
    headers: BTreeMap<String, String>,
    req: ExportMetricsServiceRequest,
) {
    let mut points = Vec::new();
    for rm in req.resource_metrics {
        let resource = rm
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for sm in rm.scope_metrics {
            for m in sm.metrics {
                let mut push = |attrs: &[KeyValue], value: f64| {
                    points.push(Point {
                        service: service.clone(),
                        name: m.name.clone(),
                        attributes: attributes(attrs),
                        value,
                    });
                };
                let number = |v: &Option<number_data_point::Value>| match v {
                    Some(number_data_point::Value::AsDouble(d)) => *d,
                    Some(number_data_point::Value::AsInt(i)) => *i as f64,
                    None => 0.0,
                };
                match &m.data {
                    Some(metric::Data::Sum(sum)) => sum
                        .data_points
                        .iter()
                        .for_each(|p| push(&p.attributes, number(&p.value))),
                    Some(metric::Data::Gauge(g)) => g
                        .data_points
                        .iter()
                        .for_each(|p| push(&p.attributes, number(&p.value))),
                    Some(metric::Data::Histogram(h)) => h
                        .data_points
                        .iter()
                        .for_each(|p| push(&p.attributes, p.count as f64)),
                    _ => {}
                }
            }
        }
    }
    if let Ok(mut s) = store.lock() {
        s.counted.points += points.len() as u64;
        if let Some(dropped) = points
            .iter()
            .filter(|p| p.name == "trellis.telemetry.dropped")
            .find(|p| p.attributes.get("signal").is_some_and(|v| v == "spans"))
        {
            s.dropped_spans = dropped.value as u64;
        }
        if !s.count_only {
            s.headers.push(headers);
            s.points.extend(points);
        }
    }
}
