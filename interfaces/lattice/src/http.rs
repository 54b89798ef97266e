//! HTTP requests and responses across the lattice.
//!
//! When an HTTP server and the component that answers a route run on different hosts, the
//! request crosses the lattice as a wRPC call of `trellis:http/handler#handle`, which a host
//! serves for every component exporting `wasi:http/incoming-handler`. The values are encoded
//! exactly as wRPC encodes these WIT records, so any wRPC client can make the call:
//!
//! ```wit
//! record request { method: string, path-with-query: string, authority: string,
//!                  headers: list<tuple<string, list<u8>>>, body: list<u8> }
//! record response { status: u16, headers: list<tuple<string, list<u8>>>, body: list<u8> }
//! handle: func(request: request) -> response;
//! ```
//!
//! Bodies cross whole (up to the server's size limit); within a host they stream.

use bytes::{BufMut as _, Bytes, BytesMut};

use crate::value::leb128;

/// The instance a host serves HTTP requests for a component under.
pub const HTTP_INSTANCE: &str = "trellis:http/handler";
/// The function.
pub const HTTP_FUNCTION: &str = "handle";
/// The largest request or response that crosses the lattice whole. A length above it is
/// refused as soon as it is read, before anything waits for (or buffers) that many bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

pub type Headers = Vec<(String, Bytes)>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub path_with_query: String,
    pub authority: String,
    pub headers: Headers,
    pub body: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Headers,
    pub body: Bytes,
}

/// A message that is not a well-formed request or response.
#[derive(Debug, thiserror::Error)]
#[error("malformed HTTP {what} on the lattice: {reason}")]
pub struct CodecError {
    what: &'static str,
    reason: &'static str,
    /// The bytes so far are a valid beginning: more may complete them.
    incomplete: bool,
}

impl CodecError {
    pub fn is_incomplete(&self) -> bool {
        self.incomplete
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    let mut len = Vec::with_capacity(5);
    leb128::write_unsigned(&mut len, b.len() as u64);
    buf.put_slice(&len);
    buf.put_slice(b);
}

fn put_headers(buf: &mut BytesMut, headers: &Headers) {
    let mut len = Vec::with_capacity(5);
    leb128::write_unsigned(&mut len, headers.len() as u64);
    buf.put_slice(&len);
    for (name, value) in headers {
        put_bytes(buf, name.as_bytes());
        put_bytes(buf, value);
    }
}

struct Reader<'a> {
    src: &'a Bytes,
    pos: usize,
    what: &'static str,
}

impl Reader<'_> {
    fn err(&self, reason: &'static str) -> CodecError {
        CodecError {
            what: self.what,
            reason,
            incomplete: false,
        }
    }

    fn truncated(&self) -> CodecError {
        CodecError {
            what: self.what,
            reason: "truncated",
            incomplete: true,
        }
    }

    /// A length field: refused when above [`MAX_MESSAGE_BYTES`], whatever follows.
    fn len(&mut self) -> Result<usize, CodecError> {
        let mut rest = &self.src[self.pos..];
        let before = rest.len();
        let n = match leb128::read_unsigned(&mut rest, 32) {
            Some(n) => n,
            // A LEB128 that runs off the end may just be cut short.
            None if self.src[self.pos..].iter().all(|b| b & 0x80 != 0) => {
                return Err(self.truncated())
            }
            None => return Err(self.err("bad length")),
        };
        self.pos += before - rest.len();
        if n > MAX_MESSAGE_BYTES as u64 {
            return Err(self.err("a length above the limit of 64 MiB"));
        }
        Ok(n as usize)
    }

    fn bytes(&mut self) -> Result<Bytes, CodecError> {
        let n = self.len()?;
        if self.src.len() - self.pos < n {
            return Err(self.truncated());
        }
        let out = self.src.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(out)
    }

    fn string(&mut self) -> Result<String, CodecError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err("invalid UTF-8"))
    }

    fn headers(&mut self) -> Result<Headers, CodecError> {
        let n = self.len()?;
        // Every header takes at least two bytes; cap the allocation by what has arrived.
        let mut headers = Vec::with_capacity(n.min((self.src.len() - self.pos) / 2));
        for _ in 0..n {
            headers.push((self.string()?, self.bytes()?));
        }
        Ok(headers)
    }

    fn done(&self) -> Result<(), CodecError> {
        if self.pos == self.src.len() {
            Ok(())
        } else {
            Err(self.err("trailing bytes"))
        }
    }
}

impl HttpRequest {
    /// The envelope of a request whose body was read whole. The authority is the `Host`
    /// header's (HTTP/1.1 requests carry it there, not in the URI).
    pub fn from_parts(parts: &http::request::Parts, body: Bytes) -> Self {
        Self {
            method: parts.method.to_string(),
            path_with_query: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".into()),
            authority: parts
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .or_else(|| parts.uri.authority().map(|a| a.as_str()))
                .unwrap_or_default()
                .to_string(),
            headers: headers_of(&parts.headers),
            body,
        }
    }

    /// The request as `http` types again, on the host that serves it.
    pub fn into_http(self) -> Result<http::Request<Bytes>, http::Error> {
        let uri = http::Uri::builder()
            .scheme("http")
            .authority(if self.authority.is_empty() {
                "localhost"
            } else {
                self.authority.as_str()
            })
            .path_and_query(self.path_with_query.as_str())
            .build()?;
        let mut builder = http::Request::builder()
            .method(self.method.as_str())
            .uri(uri);
        for (name, value) in &self.headers {
            builder = builder.header(name.as_str(), value.as_ref());
        }
        builder.body(self.body)
    }

    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(64 + self.path_with_query.len() + self.body.len());
        put_bytes(&mut buf, self.method.as_bytes());
        put_bytes(&mut buf, self.path_with_query.as_bytes());
        put_bytes(&mut buf, self.authority.as_bytes());
        put_headers(&mut buf, &self.headers);
        put_bytes(&mut buf, &self.body);
        buf.freeze()
    }

    /// Decodes a request from the bytes received so far: `Ok(None)` when more are needed.
    pub fn decode_partial(src: &Bytes) -> Result<Option<Self>, CodecError> {
        match Self::decode(src) {
            Ok(req) => Ok(Some(req)),
            Err(e) if e.is_incomplete() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn decode(src: &Bytes) -> Result<Self, CodecError> {
        let mut r = Reader {
            src,
            pos: 0,
            what: "request",
        };
        let req = Self {
            method: r.string()?,
            path_with_query: r.string()?,
            authority: r.string()?,
            headers: r.headers()?,
            body: r.bytes()?,
        };
        r.done()?;
        Ok(req)
    }
}

fn headers_of(headers: &http::HeaderMap) -> Headers {
    headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), Bytes::copy_from_slice(v.as_bytes())))
        .collect()
}

impl HttpResponse {
    /// The envelope of a response whose body was read whole.
    pub fn from_parts(parts: &http::response::Parts, body: Bytes) -> Self {
        Self {
            status: parts.status.as_u16(),
            headers: headers_of(&parts.headers),
            body,
        }
    }

    /// The response as `http` types again; headers that are not valid HTTP are left out, an
    /// impossible status becomes 502.
    pub fn into_http(self) -> http::Response<Bytes> {
        let mut out = http::Response::new(self.body);
        *out.status_mut() =
            http::StatusCode::from_u16(self.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
        for (name, value) in self.headers {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::try_from(name),
                http::HeaderValue::from_bytes(&value),
            ) {
                out.headers_mut().append(n, v);
            }
        }
        out
    }

    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(32 + self.body.len());
        let mut status = Vec::with_capacity(3);
        leb128::write_unsigned(&mut status, self.status.into());
        buf.put_slice(&status);
        put_headers(&mut buf, &self.headers);
        put_bytes(&mut buf, &self.body);
        buf.freeze()
    }

    pub fn decode(src: &Bytes) -> Result<Self, CodecError> {
        let mut r = Reader {
            src,
            pos: 0,
            what: "response",
        };
        let mut rest = &src[..];
        let before = rest.len();
        let status =
            leb128::read_unsigned(&mut rest, 16).ok_or_else(|| r.err("bad status"))? as u16;
        r.pos = before - rest.len();
        let resp = Self {
            status,
            headers: r.headers()?,
            body: r.bytes()?,
        };
        r.done()?;
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{decode_results, Field, FunctionSignature, ValueType};

    #[test]
    fn round_trips() {
        let req = HttpRequest {
            method: "POST".into(),
            path_with_query: "/hello?x=1".into(),
            authority: "example.com".into(),
            headers: vec![("content-type".into(), Bytes::from_static(b"text/plain"))],
            body: Bytes::from(vec![7u8; 300]),
        };
        assert_eq!(HttpRequest::decode(&req.encode()).unwrap(), req);
        let resp = HttpResponse {
            status: 404,
            headers: vec![],
            body: Bytes::from_static(b"nope"),
        };
        assert_eq!(HttpResponse::decode(&resp.encode()).unwrap(), resp);
        assert!(HttpResponse::decode(&Bytes::from_static(b"\xff")).is_err());
        let full = req.encode();
        for cut in [0, 1, 5, full.len() / 2, full.len() - 1] {
            let part = full.slice(..cut);
            assert!(
                HttpRequest::decode_partial(&part).unwrap().is_none(),
                "cut at {cut}"
            );
        }
        assert_eq!(HttpRequest::decode_partial(&full).unwrap(), Some(req));
        let mut extra = full.to_vec();
        extra.push(0);
        assert!(HttpRequest::decode_partial(&Bytes::from(extra)).is_err());
    }

    #[test]
    fn converts_to_and_from_http_types() {
        let req = http::Request::builder()
            .method("PUT")
            .uri("/a/b?c=1")
            .header("host", "example.com:8080")
            .header("x-one", "1")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let env = HttpRequest::from_parts(&parts, Bytes::from_static(b"body"));
        assert_eq!(env.authority, "example.com:8080");
        assert_eq!(env.path_with_query, "/a/b?c=1");
        let back = HttpRequest::decode(&env.encode())
            .unwrap()
            .into_http()
            .unwrap();
        assert_eq!(back.method(), "PUT");
        assert_eq!(back.uri(), "http://example.com:8080/a/b?c=1");
        assert_eq!(back.headers()["x-one"], "1");
        assert_eq!(back.body().as_ref(), b"body");

        let resp = http::Response::builder()
            .status(201)
            .header("x-two", "2")
            .body(())
            .unwrap();
        let (parts, ()) = resp.into_parts();
        let env = HttpResponse::from_parts(&parts, Bytes::from_static(b"ok"));
        let back = env.into_http();
        assert_eq!(back.status(), 201);
        assert_eq!(back.headers()["x-two"], "2");
        let odd = HttpResponse {
            status: 1000,
            headers: vec![("bad header".into(), Bytes::new())],
            body: Bytes::new(),
        }
        .into_http();
        assert_eq!(odd.status(), 502);
        assert!(odd.headers().is_empty());
    }

    #[test]
    fn matches_the_generic_wrpc_encoding_of_the_record() {
        let bytes_ty = ValueType::List {
            element: Box::new(ValueType::U8),
        };
        let record = ValueType::Record {
            fields: vec![
                Field {
                    name: "status".into(),
                    ty: ValueType::U16,
                },
                Field {
                    name: "headers".into(),
                    ty: ValueType::List {
                        element: Box::new(ValueType::Tuple {
                            types: vec![ValueType::String, bytes_ty.clone()],
                        }),
                    },
                },
                Field {
                    name: "body".into(),
                    ty: bytes_ty,
                },
            ],
        };
        let sig = FunctionSignature {
            instance: HTTP_INSTANCE.into(),
            name: HTTP_FUNCTION.into(),
            params: vec![],
            results: vec![record],
        };
        let resp = HttpResponse {
            status: 200,
            headers: vec![("a".into(), Bytes::from_static(b"b"))],
            body: Bytes::from_static(b"hi"),
        };
        let json = decode_results(&sig, &resp.encode()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"status": 200, "headers": [["a", [98]]], "body": [104, 105]})
        );
    }
}
