//! The span and log processors of the pipelines: finished spans and records go to the
//! bounded export queues.

use opentelemetry_sdk::logs::{LogProcessor, SdkLogRecord};
use opentelemetry_sdk::trace::{SpanData, SpanProcessor};

use crate::batch::Queue;

/// A finished span on its way out.
pub(crate) type SpanQueue = Queue<SpanData>;
/// A log record on its way out.
pub(crate) type LogQueue = Queue<(SdkLogRecord, opentelemetry::InstrumentationScope)>;

/// Hands finished spans to the export queue.
#[derive(Debug)]
pub(crate) struct QueueProcessor(pub SpanQueue);

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            self.0.push(span);
        }
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(
        &self,
        _timeout: std::time::Duration,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

/// Hands log records to the export queue.
#[derive(Debug)]
pub(crate) struct LogQueueProcessor(pub LogQueue);

impl LogProcessor for LogQueueProcessor {
    fn emit(&self, data: &mut SdkLogRecord, scope: &opentelemetry::InstrumentationScope) {
        self.0.push((data.clone(), scope.clone()));
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(
        &self,
        _timeout: std::time::Duration,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}
