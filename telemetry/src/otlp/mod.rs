//! Trellis's own OTLP trace exporter: spans are written from the SDK's `SpanData` straight
//! into the protobuf bytes of an `ExportTraceServiceRequest` and sent as they are, over
//! HTTP/protobuf or gRPC. The SDK's exporter converts every span into `opentelemetry-proto`'s
//! messages first; on a host where every request is sampled that conversion was the larger
//! part of the export's cost. Logs and metrics, far fewer records, keep the SDK's exporters.

mod traces;
mod transport;
mod wire;

#[cfg(test)]
mod traces_tests;

pub(crate) use traces::{encode_request, EncodedResource};
pub(crate) use transport::{Sender, Settings};
