//! W3C trace context (`traceparent`) carried in the NATS headers of every control request
//! and invocation, so one request is one trace across hosts.

use std::fmt;
use std::sync::OnceLock;

use async_nats::HeaderMap;
use rand::Rng as _;

/// Header name defined by W3C Trace Context.
pub const TRACEPARENT: &str = "traceparent";

/// One position in a trace: the trace, the span that made the request, and whether it is
/// sampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: u128,
    pub span_id: u64,
    pub sampled: bool,
}

/// Where the context of the code running now comes from, when a process records spans
/// (installed once by its telemetry).
static CURRENT: OnceLock<fn() -> Option<TraceContext>> = OnceLock::new();

/// Installs the source of [`TraceContext::current`]. Later calls are ignored.
pub fn set_current_source(source: fn() -> Option<TraceContext>) {
    let _ = CURRENT.set(source);
}

impl TraceContext {
    /// The context of the span running now, so a request made here joins its trace. None
    /// when there is none or this process records nothing: its requests then carry no
    /// `traceparent` and the callee starts the trace by its own sampler (a caller that
    /// records nothing must not make every callee sample by claiming `sampled`).
    pub fn current() -> Option<Self> {
        CURRENT.get().and_then(|current| current())
    }

    /// Headers carrying `trace`, or none.
    pub fn headers_of(trace: Option<Self>) -> HeaderMap {
        trace.map(|t| t.headers()).unwrap_or_default()
    }


    /// Starts a new trace.
    pub fn new_root() -> Self {
        let mut rng = rand::thread_rng();
        Self {
            trace_id: rng.gen_range(1..=u128::MAX),
            span_id: rng.gen_range(1..=u64::MAX),
            sampled: true,
        }
    }

    /// A new span in the same trace, to put on an outgoing request made while handling this one.
    pub fn child(&self) -> Self {
        Self {
            span_id: rand::thread_rng().gen_range(1..=u64::MAX),
            ..*self
        }
    }

    /// Parses a `traceparent` header value (version 00).
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let span = parts.next()?;
        let flags = parts.next()?;
        if version.len() != 2
            || version == "ff"
            || trace.len() != 32
            || span.len() != 16
            || flags.len() != 2
        {
            return None;
        }
        // Version 00 has exactly four fields; later versions may append more.
        if version == "00" && parts.next().is_some() {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(span, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        if trace_id == 0 || span_id == 0 {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// Reads the trace context of an incoming message, if it has a valid one.
    pub fn from_headers(headers: Option<&HeaderMap>) -> Option<Self> {
        headers?
            .get(TRACEPARENT)
            .and_then(|v| Self::parse(v.as_str()))
    }

    /// The context of the span handling an incoming message: a child of the caller's, or a new
    /// trace when the caller sent none.
    pub fn continue_from(headers: Option<&HeaderMap>) -> Self {
        Self::from_headers(headers)
            .map(|cx| cx.child())
            .unwrap_or_else(Self::new_root)
    }

    /// Writes this context into outgoing headers.
    pub fn inject(&self, headers: &mut HeaderMap) {
        headers.insert(TRACEPARENT, self.to_string().as_str());
    }

    /// Fresh headers carrying only this context.
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        self.inject(&mut headers);
        headers
    }

    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

/// Length of a `traceparent` value (`00-` trace id `-` span id `-` flags).
pub const TRACEPARENT_LEN: usize = 55;

impl TraceContext {
    /// The `traceparent` value, written without the formatting machinery (it is made for
    /// every request that crosses a process).
    pub fn encode(&self) -> [u8; TRACEPARENT_LEN] {
        fn hex(out: &mut [u8], mut value: u128) {
            const DIGITS: &[u8; 16] = b"0123456789abcdef";
            for byte in out.iter_mut().rev() {
                *byte = DIGITS[(value & 0xf) as usize];
                value >>= 4;
            }
        }
        let mut out = [b'-'; TRACEPARENT_LEN];
        out[..2].copy_from_slice(b"00");
        hex(&mut out[3..35], self.trace_id);
        hex(&mut out[36..52], u128::from(self.span_id));
        out[53..].copy_from_slice(if self.sampled { b"01" } else { b"00" });
        out
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let encoded = self.encode();
        // Only ASCII hex digits and dashes were written.
        f.write_str(std::str::from_utf8(&encoded).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_matches_the_formatted_header() {
        for (trace_id, span_id, sampled) in [
            (0x4bf92f3577b34da6a3ce929d0e0e4736u128, 0x00f067aa0ba902b7u64, true),
            (1, u64::MAX, false),
            (u128::MAX, 1, true),
        ] {
            let cx = TraceContext {
                trace_id,
                span_id,
                sampled,
            };
            let formatted = format!(
                "00-{trace_id:032x}-{span_id:016x}-{:02x}",
                u8::from(sampled)
            );
            assert_eq!(std::str::from_utf8(&cx.encode()).unwrap(), formatted);
            assert_eq!(cx.to_string(), formatted);
        }
    }

    #[test]
    fn round_trip() {
        let cx = TraceContext::new_root();
        let parsed = TraceContext::parse(&cx.to_string()).unwrap();
        assert_eq!(cx, parsed);
        let child = cx.child();
        assert_eq!(child.trace_id, cx.trace_id);
        assert_ne!(child.span_id, cx.span_id);
    }

    #[test]
    fn parses_spec_example_and_rejects_garbage() {
        let cx =
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(cx.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(cx.sampled);
        for bad in [
            "",
            "00-0000-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(TraceContext::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn headers() {
        let cx = TraceContext::new_root();
        let h = cx.headers();
        assert_eq!(TraceContext::from_headers(Some(&h)), Some(cx));
        let next = TraceContext::continue_from(Some(&h));
        assert_eq!(next.trace_id, cx.trace_id);
        assert_ne!(TraceContext::continue_from(None).trace_id, cx.trace_id);
    }
}
