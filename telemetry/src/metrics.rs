//! The metrics pipeline: a manual reader collected by a tokio task every
//! `OTEL_METRIC_EXPORT_INTERVAL` (the SDK's periodic reader runs on its own thread, where
//! the async exporters have no runtime), plus the process's own gauges.

use std::sync::{Arc, Weak};
use std::time::Duration;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter as _;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Temporality,
};
use opentelemetry_sdk::Resource;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::batch::Counts;

/// The reader is owned by the provider; the export task collects through this handle.
#[derive(Debug, Clone)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline)
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

pub(crate) struct MetricsPipeline {
    provider: SdkMeterProvider,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

fn interval() -> Duration {
    let ms = std::env::var("OTEL_METRIC_EXPORT_INTERVAL")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(60_000);
    Duration::from_millis(ms.clamp(10, 86_400_000))
}

impl MetricsPipeline {
    pub fn start(
        resource: Resource,
        exporter: opentelemetry_otlp::MetricExporter,
        queues: Vec<(&'static str, Arc<Counts>)>,
    ) -> Self {
        let reader = Arc::new(
            ManualReader::builder()
                .with_temporality(exporter.temporality())
                .build(),
        );
        let provider = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(SharedReader(reader.clone()))
            .build();
        opentelemetry::global::set_meter_provider(provider.clone());
        register_process_gauges(&provider, queues);

        let (stop, mut stopped) = oneshot::channel::<()>();
        let every = interval();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                let last = tokio::select! {
                    _ = tick.tick() => false,
                    _ = &mut stopped => true,
                };
                let mut rm = ResourceMetrics::default();
                match reader.collect(&mut rm) {
                    Ok(()) => {
                        if let Err(err) = exporter.export(&rm).await {
                            tracing::debug!(target: "trellis_telemetry", %err, "metric export failed");
                        }
                    }
                    Err(err) => {
                        tracing::debug!(target: "trellis_telemetry", %err, "metric collection failed")
                    }
                }
                if last {
                    return;
                }
            }
        });
        Self {
            provider,
            stop,
            task,
        }
    }

    pub async fn shutdown(self, deadline: Duration) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(deadline, &mut task).await.is_err() {
            task.abort();
        }
        let _ = self.provider.shutdown();
    }
}

/// `process.cpu.time`, `process.memory.usage` and what the export queues dropped.
fn register_process_gauges(provider: &SdkMeterProvider, queues: Vec<(&'static str, Arc<Counts>)>) {
    let meter = provider.meter("trellis");
    meter
        .f64_observable_counter("process.cpu.time")
        .with_unit("s")
        .with_description("CPU time of this process")
        .with_callback(|obs| {
            if let Some((user, system)) = cpu_seconds() {
                obs.observe(user, &[KeyValue::new("cpu.mode", "user")]);
                obs.observe(system, &[KeyValue::new("cpu.mode", "system")]);
            }
        })
        .build();
    meter
        .i64_observable_up_down_counter("process.memory.usage")
        .with_unit("By")
        .with_description("Resident memory of this process")
        .with_callback(|obs| {
            if let Some(rss) = rss_bytes() {
                obs.observe(rss, &[]);
            }
        })
        .build();
    meter
        .u64_observable_counter("trellis.telemetry.dropped")
        .with_description("Spans and log records dropped because the export queue was full")
        .with_callback(move |obs| {
            for (signal, counts) in &queues {
                let attrs = [KeyValue::new("signal", *signal)];
                obs.observe(
                    counts.dropped.load(std::sync::atomic::Ordering::Relaxed),
                    &attrs,
                );
            }
        })
        .build();
}

/// User and system CPU seconds from `/proc/self/stat` (in USER_HZ, 100 on Linux).
fn cpu_seconds() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces; fields count from after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user / 100.0, system / 100.0))
}

fn rss_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_own_process() {
        let (user, system) = crate::metrics::cpu_seconds().expect("cpu");
        assert!(user >= 0.0 && system >= 0.0);
        assert!(crate::metrics::rss_bytes().expect("rss") > 0);
    }
}
