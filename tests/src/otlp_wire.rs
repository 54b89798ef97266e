//! Counting the spans of an OTLP `ExportTraceServiceRequest` by walking its protobuf wire
//! format, without building the message: a benchmark's collector, so that what the bench
//! measures is the exporting host and not a receiver allocating every attribute on the
//! same two cores. Every level down to each span is still checked to be well-formed
//! protobuf; a malformed request is refused.

/// The spans in an encoded `ExportTraceServiceRequest`, or `None` when it is not well-formed.
pub fn count_spans(request: &[u8]) -> Option<u64> {
    let mut spans = 0;
    // ExportTraceServiceRequest.resource_spans = 1
    for resource_spans in embedded(request, 1) {
        // ResourceSpans.scope_spans = 2
        for scope_spans in embedded(resource_spans?, 2) {
            // ScopeSpans.spans = 2
            for span in embedded(scope_spans?, 2) {
                // A span must itself parse, down to its fields.
                Fields::new(span?).try_for_each(|f| f.map(drop))?;
                spans += 1;
            }
        }
    }
    Some(spans)
}

/// The length-delimited fields numbered `number` of a message (an error item when the
/// message is malformed).
fn embedded(message: &[u8], number: u64) -> impl Iterator<Item = Option<&[u8]>> {
    Fields::new(message).filter_map(move |field| match field {
        None => Some(None),
        Some((n, Value::Bytes(b))) if n == number => Some(Some(b)),
        Some(_) => None,
    })
}

enum Value<'a> {
    Scalar,
    Bytes(&'a [u8]),
}

/// The fields of one message; yields `None` once and stops at the first malformed byte.
struct Fields<'a> {
    rest: &'a [u8],
    broken: bool,
}

impl<'a> Fields<'a> {
    fn new(message: &'a [u8]) -> Self {
        Self {
            rest: message,
            broken: false,
        }
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for (i, byte) in self.rest.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.rest = &self.rest[i + 1..];
                return Some(value);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    fn field(&mut self) -> Option<(u64, Value<'a>)> {
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 {
            return None;
        }
        let value = match key & 7 {
            0 => self.varint().map(|_| Value::Scalar)?,
            1 => self.take(8).map(|_| Value::Scalar)?,
            2 => {
                let len = usize::try_from(self.varint()?).ok()?;
                Value::Bytes(self.take(len)?)
            }
            5 => self.take(4).map(|_| Value::Scalar)?,
            _ => return None,
        };
        Some((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Option<(u64, Value<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.broken || self.rest.is_empty() {
            return None;
        }
        let field = self.field();
        self.broken = field.is_none();
        Some(field)
    }
}

#[cfg(test)]
mod tests {
    use crate::otlp_wire::count_spans;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message as _;

    fn span(name: &str) -> Span {
        Span {
            trace_id: vec![7; 16],
            span_id: vec![9; 8],
            name: name.into(),
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            attributes: vec![KeyValue {
                key: "k".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::IntValue(-3)),
                }),
                ..KeyValue::default()
            }],
            ..Span::default()
        }
    }

    fn request(groups: &[usize]) -> Vec<u8> {
        let scope_spans = groups
            .iter()
            .map(|n| ScopeSpans {
                spans: (0..*n).map(|i| span(&format!("s{i}"))).collect(),
                ..ScopeSpans::default()
            })
            .collect();
        ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    scope_spans,
                    ..ResourceSpans::default()
                },
                ResourceSpans::default(),
            ],
        }
        .encode_to_vec()
    }

    #[test]
    fn counts_what_prost_encoded() {
        assert_eq!(count_spans(&request(&[3, 0, 5])), Some(8));
        assert_eq!(count_spans(&request(&[])), Some(0));
        assert_eq!(count_spans(&[]), Some(0));
    }

    #[test]
    fn refuses_malformed_bytes() {
        let good = request(&[2]);
        // Cut anywhere but between the two whole `resource_spans` (the last two bytes are
        // the second, empty one).
        for cut in (1..good.len()).filter(|c| *c != good.len() - 2) {
            assert_eq!(count_spans(&good[..cut]), None, "cut at {cut}");
        }
        assert_eq!(count_spans(&[0x0b, 0x00]), None, "wire type 3 is not OTLP");
        assert_eq!(count_spans(&[0x0a, 0xff]), None, "unterminated length");
    }
}
