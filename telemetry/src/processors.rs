//! The export queues' item types, and the log processor that hands records to its queue.

use opentelemetry_sdk::logs::{LogProcessor, SdkLogRecord};
use opentelemetry_sdk::trace::SpanData;

use crate::batch::Queue;

/// A finished span on its way out.
pub(crate) type SpanQueue = Queue<SpanData>;
/// A log record on its way out.
pub(crate) type LogQueue = Queue<(SdkLogRecord, opentelemetry::InstrumentationScope)>;

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
