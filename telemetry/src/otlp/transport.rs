//! Sends encoded OTLP trace requests over HTTP/protobuf (a `POST` to `…/v1/traces`) or gRPC
//! (`TraceService/Export`, the bytes passed through as they are), with the headers and
//! timeout the standard variables give.

use std::time::Duration;

use bytes::{Buf as _, BufMut as _};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};

use crate::export::Transport;

const GRPC_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Headers and timeout of the trace exporter, from `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`
/// and `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT` (milliseconds); the signal's own wins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Settings {
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
}

impl Settings {
    pub fn resolve(get: impl Fn(&str) -> Option<String>) -> Self {
        let mut headers: Vec<(String, String)> = Vec::new();
        for var in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ] {
            for (name, value) in get(var).as_deref().map(parse_headers).unwrap_or_default() {
                headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
                headers.push((name, value));
            }
        }
        // 0 or garbage is no setting: a zero timeout would fail every export.
        let millis = |var: &str| {
            get(var)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|ms| *ms > 0)
        };
        let timeout = millis("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
            .or_else(|| millis("OTEL_EXPORTER_OTLP_TIMEOUT"))
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        Self { headers, timeout }
    }
}

/// `key1=value1,key2=value2`, values percent-decoded (W3C Baggage style, as the
/// specification says); malformed pairs are left out.
fn parse_headers(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), percent_decode(v.trim())))
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}

/// Where and how encoded requests go.
#[derive(Clone, Debug)]
pub(crate) enum Sender {
    Http {
        client: reqwest::Client,
        url: String,
        headers: reqwest::header::HeaderMap,
    },
    Grpc {
        grpc: tonic::client::Grpc<tonic::transport::Channel>,
        metadata: MetadataMap,
    },
}

impl Sender {
    /// Fails on a malformed endpoint or header (named, with no value echoed).
    pub fn build(transport: &Transport, settings: &Settings) -> Result<Self, String> {
        if transport.grpc {
            let mut metadata = MetadataMap::new();
            for (name, value) in &settings.headers {
                let key = MetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
                    .map_err(|_| format!("header {name:?} is not a valid gRPC metadata key"))?;
                let value = MetadataValue::try_from(value.as_str())
                    .map_err(|_| format!("the value of header {name:?} is not valid"))?;
                metadata.insert(key, value);
            }
            let mut endpoint = tonic::transport::Endpoint::from_shared(transport.endpoint.clone())
                .map_err(|e| format!("invalid endpoint: {e}"))?
                .timeout(settings.timeout);
            if let Some(tls) = transport.tls() {
                endpoint = endpoint.tls_config(tls).map_err(|e| format!("TLS: {e}"))?;
            }
            Ok(Self::Grpc {
                grpc: tonic::client::Grpc::new(endpoint.connect_lazy()),
                metadata,
            })
        } else {
            let mut headers = reqwest::header::HeaderMap::new();
            for (name, value) in &settings.headers {
                let key = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("header {name:?} is not a valid HTTP header name"))?;
                let value = reqwest::header::HeaderValue::from_str(value)
                    .map_err(|_| format!("the value of header {name:?} is not valid"))?;
                headers.insert(key, value);
            }
            headers.insert(
                reqwest::header::CONTENT_TYPE,
                reqwest::header::HeaderValue::from_static("application/x-protobuf"),
            );
            reqwest::Url::parse(&transport.endpoint)
                .map_err(|e| format!("invalid endpoint: {e}"))?;
            let client = reqwest::Client::builder()
                .timeout(settings.timeout)
                .build()
                .map_err(|e| e.to_string())?;
            Ok(Self::Http {
                client,
                url: transport.endpoint.clone(),
                headers,
            })
        }
    }

    /// Sends one encoded `ExportTraceServiceRequest`.
    pub async fn send(&self, body: Vec<u8>) -> Result<(), String> {
        match self {
            Self::Http {
                client,
                url,
                headers,
            } => {
                let response = client
                    .post(url)
                    .headers(headers.clone())
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| e.without_url().to_string())?;
                let status = response.status();
                if status.is_success() {
                    Ok(())
                } else {
                    Err(format!("the collector answered {status}"))
                }
            }
            Self::Grpc { grpc, metadata } => {
                let mut grpc = grpc.clone();
                grpc.ready().await.map_err(|e| e.to_string())?;
                let mut request = tonic::Request::new(body);
                *request.metadata_mut() = metadata.clone();
                grpc.unary(request, PathAndQuery::from_static(GRPC_EXPORT), RawCodec)
                    .await
                    .map(|_| ())
                    .map_err(|status| {
                        format!(
                            "the collector answered {}: {}",
                            status.code(),
                            status.message()
                        )
                    })
            }
        }
    }
}

/// Passes an already encoded message through, and takes the answer's bytes as read (an
/// `ExportTraceServiceResponse`: at most a partial success, which nothing here acts on).
#[derive(Clone, Copy, Debug, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = ();
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, Self::Error> {
        src.advance(src.remaining());
        Ok(Some(()))
    }
}

#[cfg(test)]
mod tests {
    use crate::otlp::transport::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn headers_are_percent_decoded_and_the_signal_wins() {
        let s = Settings::resolve(env(&[
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-honeycomb-team=abc%3D%3D, x-a=1,broken,=v,k=",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "X-A=2"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ]));
        assert_eq!(
            s.headers,
            vec![
                ("x-honeycomb-team".to_string(), "abc==".to_string()),
                ("X-A".to_string(), "2".to_string())
            ]
        );
        assert_eq!(s.timeout, Duration::from_millis(2500));
        let t = Settings::resolve(env(&[
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "700"),
        ]));
        assert_eq!(t.timeout, Duration::from_millis(700));
        assert_eq!(Settings::resolve(env(&[])).timeout, DEFAULT_TIMEOUT);
        for garbage in ["0", "-5", "soon", ""] {
            let g = Settings::resolve(env(&[("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", garbage)]));
            assert_eq!(g.timeout, DEFAULT_TIMEOUT, "{garbage:?}");
        }
    }

    #[test]
    fn a_stray_percent_is_kept_as_it_is() {
        assert_eq!(percent_decode("50%"), "50%");
        assert_eq!(percent_decode("a%zzb"), "a%zzb");
        assert_eq!(percent_decode("%e2%82%ac"), "€");
    }

    #[tokio::test]
    async fn a_header_that_cannot_be_sent_is_named_without_its_value() {
        let transport = Transport {
            grpc: false,
            endpoint: "http://127.0.0.1:9/v1/traces".into(),
        };
        let settings = Settings {
            headers: vec![("x-key".into(), "secret\nvalue".into())],
            timeout: DEFAULT_TIMEOUT,
        };
        let err = Sender::build(&transport, &settings).expect_err("refused");
        assert!(err.contains("x-key") && !err.contains("secret"), "{err}");
        let grpc = Transport {
            grpc: true,
            ..transport
        };
        let err = Sender::build(&grpc, &settings).expect_err("refused");
        assert!(err.contains("x-key") && !err.contains("secret"), "{err}");
    }
}
