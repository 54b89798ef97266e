//! `wasi:logging/logging@0.1.0-draft`, served by the host: each record is written to the
//! host log at its level and, with export on, leaves as an OTLP log record carrying the
//! invocation's trace and span, the component id and the host (the resource). An invocation
//! may write [`MAX_RECORDS`] records; the rest are dropped and counted
//! (`trellis.component.logs.dropped`), never buffered.

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../interfaces/wit/logging",
        world: "wasi:logging/imports",
    });
}

use bindings::wasi::logging::logging::{self, Level};

/// Records one invocation may write.
pub const MAX_RECORDS: u32 = 1000;
/// Longest message kept (longer ones are cut at a character boundary).
pub const MAX_MESSAGE: usize = 8 * 1024;
/// Longest context kept.
pub const MAX_CONTEXT: usize = 256;

/// One instance's logger.
pub struct LoggingCtx {
    component_id: Arc<str>,
    span: tracing::Span,
    written: u32,
    dropped: u32,
}

impl LoggingCtx {
    pub fn new(component_id: Arc<str>, span: tracing::Span) -> Self {
        Self {
            component_id,
            span,
            written: 0,
            dropped: 0,
        }
    }
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl logging::Host for LoggingCtx {
    fn log(&mut self, level: Level, context: String, message: String) {
        if self.written >= MAX_RECORDS {
            self.dropped += 1;
            return;
        }
        self.written += 1;
        let component_id = &*self.component_id;
        let context = cut(&context, MAX_CONTEXT);
        let message = cut(&message, MAX_MESSAGE);
        self.span.in_scope(|| match level {
            Level::Trace => tracing::trace!(target: "trellis::component", component_id, context, "{message}"),
            Level::Debug => tracing::debug!(target: "trellis::component", component_id, context, "{message}"),
            Level::Info => tracing::info!(target: "trellis::component", component_id, context, "{message}"),
            Level::Warn => tracing::warn!(target: "trellis::component", component_id, context, "{message}"),
            Level::Error | Level::Critical => {
                tracing::error!(target: "trellis::component", component_id, context, critical = matches!(level, Level::Critical), "{message}")
            }
        });
    }
}

impl Drop for LoggingCtx {
    fn drop(&mut self) {
        if self.dropped > 0 {
            let attrs = crate::observe::component_attributes(&self.component_id, None);
            crate::observe::logs_dropped(&attrs, u64::from(self.dropped));
            self.span.in_scope(|| {
                tracing::warn!(component_id = %self.component_id, dropped = self.dropped, limit = MAX_RECORDS, "log records over the per-invocation limit were dropped");
            });
        }
    }
}

/// Adds `wasi:logging/logging` to `linker`, served by the [`LoggingCtx`] `get` returns.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut LoggingCtx,
) -> wasmtime::Result<()> {
    logging::add_to_linker::<T, HasSelf<LoggingCtx>>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use logging::Host as _;

    #[test]
    fn records_over_the_limit_are_dropped_and_counted() {
        let mut ctx = LoggingCtx::new("c".into(), tracing::Span::none());
        for i in 0..MAX_RECORDS + 5 {
            ctx.log(Level::Info, String::new(), format!("line {i}"));
        }
        assert_eq!((ctx.written, ctx.dropped), (MAX_RECORDS, 5));
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let s = "é".repeat(MAX_MESSAGE);
        let c = cut(&s, MAX_MESSAGE);
        assert!(c.len() <= MAX_MESSAGE && c.len() >= MAX_MESSAGE - 1);
        assert_eq!(cut("short", 10), "short");
    }
}
