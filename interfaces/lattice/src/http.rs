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

impl HttpResponse {
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
