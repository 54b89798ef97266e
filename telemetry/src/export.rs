//! The three OTLP pipelines (spans, logs, metrics) of a process, chosen and configured by
//! the standard `OTEL_EXPORTER_OTLP_*` variables.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_otlp::{WithExportConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::logs::{LogBatch, LogExporter as _, SdkLogRecord, SdkLoggerProvider};
use opentelemetry_sdk::Resource;

use crate::batch::{BatchConfig, Counts, Drain, Queue};
use crate::metrics::MetricsPipeline;
use crate::processors::LogQueueProcessor;

/// Which signal an exporter carries (names its variables).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    Traces,
    Metrics,
    Logs,
}

impl Signal {
    fn var(self, what: &str) -> String {
        let signal = match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
            Signal::Logs => "LOGS",
        };
        format!("OTEL_EXPORTER_OTLP_{signal}_{what}")
    }

    fn path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
            Signal::Logs => "/v1/logs",
        }
    }
}

/// The transport of one signal as the variables choose it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Transport {
    pub grpc: bool,
    /// Where to send, with the signal's path for HTTP.
    pub endpoint: String,
}

impl Transport {
    pub fn resolve(signal: Signal, get: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: String| {
            get(&name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let protocol = var(signal.var("PROTOCOL"))
            .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL".into()))
            .unwrap_or_else(|| "http/protobuf".into());
        let grpc = protocol.eq_ignore_ascii_case("grpc");
        let endpoint = match var(signal.var("ENDPOINT")) {
            // A signal's own endpoint is used as given.
            Some(url) => url,
            None => {
                let base = var("OTEL_EXPORTER_OTLP_ENDPOINT".into()).unwrap_or_else(|| {
                    if grpc {
                        "http://localhost:4317"
                    } else {
                        "http://localhost:4318"
                    }
                    .into()
                });
                if grpc {
                    base
                } else {
                    format!("{}{}", base.trim_end_matches('/'), signal.path())
                }
            }
        };
        Self { grpc, endpoint }
    }

    fn from_env(signal: Signal) -> Self {
        Self::resolve(signal, |k| std::env::var(k).ok())
    }

    /// Why this transport cannot be built, if it cannot.
    pub fn refusal(&self) -> Option<&'static str> {
        (!self.grpc && self.endpoint.starts_with("https://")).then_some(HTTPS_OVER_HTTP)
    }

    pub fn tls(&self) -> Option<tonic::transport::ClientTlsConfig> {
        self.endpoint
            .starts_with("https://")
            .then(|| tonic::transport::ClientTlsConfig::new().with_webpki_roots())
    }
}

type BuildError = opentelemetry_otlp::ExporterBuildError;

const HTTPS_OVER_HTTP: &str =
    "HTTPS endpoints are reached over gRPC in this build: set OTEL_EXPORTER_OTLP_PROTOCOL=grpc";

macro_rules! build_exporter {
    ($exporter:ty, $transport:expr) => {{
        let transport: &Transport = $transport;
        if let Some(why) = transport.refusal() {
            Err(opentelemetry_otlp::ExporterBuildError::InvalidConfiguration(why.into()))
        } else if transport.grpc {
            let builder = <$exporter>::builder()
                .with_tonic()
                .with_endpoint(transport.endpoint.clone());
            match transport.tls() {
                Some(tls) => builder.with_tls_config(tls).build(),
                None => builder.build(),
            }
        } else {
            <$exporter>::builder()
                .with_http()
                .with_endpoint(transport.endpoint.clone())
                .build()
        }
    }};
}

pub(crate) fn log_exporter(t: &Transport) -> Result<opentelemetry_otlp::LogExporter, BuildError> {
    build_exporter!(opentelemetry_otlp::LogExporter, t)
}

pub(crate) fn metric_exporter(
    t: &Transport,
) -> Result<opentelemetry_otlp::MetricExporter, BuildError> {
    build_exporter!(opentelemetry_otlp::MetricExporter, t)
}

/// The running pipelines of the process.
pub(crate) struct Pipelines {
    /// Where spans finished elsewhere (by components) join this process's export.
    pub span_queue: Option<crate::processors::SpanQueue>,
    pub logger_provider: Option<SdkLoggerProvider>,
    metrics: Option<MetricsPipeline>,
    drains: Vec<Drain>,
    problems: Vec<String>,
}

impl Pipelines {
    /// Builds what the variables ask for. A signal whose exporter cannot be built (a
    /// malformed endpoint) is left out and reported once logging is up.
    pub fn start(resource: Resource) -> Self {
        let mut problems = Vec::new();
        let mut drains = Vec::new();
        let mut counts: Vec<(&'static str, Arc<Counts>)> = Vec::new();
        let mut span_queue = None;

        let traces = Transport::from_env(Signal::Traces);
        let settings = crate::otlp::Settings::resolve(|k| std::env::var(k).ok());
        match traces.refusal().map_or_else(
            || crate::otlp::Sender::build(&traces, &settings),
            |why| Err(why.to_string()),
        ) {
            Ok(sender) => {
                let encoded = Arc::new(crate::otlp::EncodedResource::new(&resource));
                let (queue, drain) =
                    Queue::start(BatchConfig::from_env("OTEL_BSP", 5000), move |batch| {
                        let body = crate::otlp::encode_request(&encoded, &batch);
                        drop(batch);
                        let sender = sender.clone();
                        async move { sender.send(body).await }
                    });
                counts.push(("spans", queue.counts()));
                span_queue = Some(queue);
                drains.push(drain);
            }
            Err(err) => problems.push(format!("traces to {}: {err}", traces.endpoint)),
        }

        let logs = Transport::from_env(Signal::Logs);
        let logger_provider = match log_exporter(&logs) {
            Ok(mut exporter) => {
                exporter.set_resource(&resource);
                let exporter = Arc::new(exporter);
                let (queue, drain) = Queue::start(
                    BatchConfig::from_env("OTEL_BLRP", 1000),
                    move |batch: Vec<(SdkLogRecord, opentelemetry::InstrumentationScope)>| {
                        let exporter = exporter.clone();
                        async move {
                            let refs: Vec<(&SdkLogRecord, &opentelemetry::InstrumentationScope)> =
                                batch.iter().map(|(r, s)| (r, s)).collect();
                            exporter
                                .export(LogBatch::new(&refs))
                                .await
                                .map_err(|e| e.to_string())
                        }
                    },
                );
                counts.push(("logs", queue.counts()));
                drains.push(drain);
                Some(
                    SdkLoggerProvider::builder()
                        .with_resource(resource.clone())
                        .with_log_processor(LogQueueProcessor(queue))
                        .build(),
                )
            }
            Err(err) => {
                problems.push(format!("logs to {}: {err}", logs.endpoint));
                None
            }
        };

        let metrics_transport = Transport::from_env(Signal::Metrics);
        let metrics = match metric_exporter(&metrics_transport) {
            Ok(exporter) => Some(MetricsPipeline::start(resource, exporter, counts)),
            Err(err) => {
                problems.push(format!("metrics to {}: {err}", metrics_transport.endpoint));
                None
            }
        };

        Self {
            span_queue,
            logger_provider,
            metrics,
            drains,
            problems,
        }
    }

    /// Logs what was built (after the subscriber is installed).
    pub fn report_start(&self) {
        for problem in &self.problems {
            tracing::warn!(target: "trellis_telemetry", "OpenTelemetry export disabled for {problem}");
        }
        tracing::info!(
            target: "trellis_telemetry",
            traces = self.span_queue.is_some(),
            logs = self.logger_provider.is_some(),
            metrics = self.metrics.is_some(),
            "OpenTelemetry export on"
        );
    }

    pub async fn shutdown(self, deadline: Duration) {
        if let Some(metrics) = self.metrics {
            metrics.shutdown(deadline).await;
        }
        for drain in self.drains {
            drain.stop(deadline).await;
        }
        drop(self.logger_provider);
    }
}

#[cfg(test)]
mod tests {
    use crate::export::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn https_over_http_protobuf_is_refused_with_the_way_out() {
        let t = Transport {
            grpc: false,
            endpoint: "https://api.honeycomb.io/v1/traces".into(),
        };
        let err = log_exporter(&t).expect_err("refused");
        assert_eq!(t.refusal(), Some(HTTPS_OVER_HTTP));
        assert!(
            err.to_string().contains("OTEL_EXPORTER_OTLP_PROTOCOL=grpc"),
            "{err}"
        );
    }

    #[test]
    fn defaults_are_http_protobuf_on_localhost() {
        let t = Transport::resolve(Signal::Traces, env(&[]));
        assert_eq!(
            t,
            Transport {
                grpc: false,
                endpoint: "http://localhost:4318/v1/traces".into()
            }
        );
        let g = Transport::resolve(
            Signal::Logs,
            env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]),
        );
        assert_eq!(
            g,
            Transport {
                grpc: true,
                endpoint: "http://localhost:4317".into()
            }
        );
    }

    #[test]
    fn signal_variables_win_and_are_used_verbatim() {
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://api.honeycomb.io/"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:9/custom"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc"),
        ];
        let t = Transport::resolve(Signal::Traces, env(&vars));
        assert_eq!(t.endpoint, "https://api.honeycomb.io/v1/traces");
        assert!(t.tls().is_some());
        let m = Transport::resolve(Signal::Metrics, env(&vars));
        assert_eq!(m.endpoint, "http://m:9/custom");
        assert!(m.tls().is_none());
        let l = Transport::resolve(Signal::Logs, env(&vars));
        assert!(l.grpc);
        assert_eq!(l.endpoint, "https://api.honeycomb.io/");
    }
}
