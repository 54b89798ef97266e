//! The spans Trellis exports, named and attributed by the OpenTelemetry semantic
//! conventions. Each constructor returns a disabled span when export is off, so call sites
//! pay nothing for fields they would never send.
//!
//! Every span here has target `trellis`; the subscriber exports only those.

use tracing::field::Empty;
use tracing::Span;
use trellis_lattice::trace::TraceContext;

use crate::leaf::Leaf;

use crate::switch::enabled;

/// A component serving one call (a wRPC invocation or an HTTP request handed to it). The
/// host is the span's resource (`service.instance.id`).
pub fn invocation(component_id: &str, function: &str) -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(
        target: "trellis",
        "invocation",
        otel.name = %format_args!("{component_id} {function}"),
        otel.kind = "server",
        rpc.system = "wrpc",
        rpc.method = function,
        trellis.component.id = component_id,
        otel.status_code = Empty,
        otel.status_description = Empty,
        error.type = Empty,
    )
}

/// Waiting for a free instance slot of a component (a child of its invocation, whose span
/// is `parent_span` and context `parent`).
pub fn queue_wait(parent_span: &Span, parent: &TraceContext) -> Leaf {
    crate::leaf::leaf(parent_span, parent, "queue wait")
}

/// Instantiating the component for one call.
pub fn instantiate(parent_span: &Span, parent: &TraceContext) -> Leaf {
    crate::leaf::leaf(parent_span, parent, "instantiate")
}

/// A linked import called from a component: the client side.
pub fn import_call(
    parent: &Span,
    interface: &str,
    function: &str,
    link: &str,
    target: &str,
) -> Span {
    if parent.is_disabled() {
        return Span::none();
    }
    tracing::info_span!(
        target: "trellis",
        parent: parent,
        "import call",
        otel.name = %format_args!("{interface}/{function}"),
        otel.kind = "client",
        rpc.system = "wrpc",
        rpc.service = interface,
        rpc.method = function,
        trellis.link.name = link,
        trellis.link.target = target,
        otel.status_code = Empty,
        otel.status_description = Empty,
        error.type = Empty,
    )
}

/// A provider serving one call from a component.
pub fn provider_call(provider: &str, interface: &str, function: &str, source: &str) -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(
        target: "trellis",
        "provider call",
        otel.name = %format_args!("{interface}/{function}"),
        otel.kind = "server",
        rpc.system = "wrpc",
        rpc.service = interface,
        rpc.method = function,
        trellis.provider.id = provider,
        trellis.component.id = source,
        otel.status_code = Empty,
        otel.status_description = Empty,
        error.type = Empty,
    )
}

/// A messaging provider handing one received message to a component (a consumer span,
/// named by the subscription's filter so names stay few; the topic itself is an attribute).
pub fn message_process(
    system: &str,
    subscription: &str,
    topic: &str,
    provider: &str,
    component: &str,
) -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(
        target: "trellis",
        "message process",
        otel.name = %format_args!("process {subscription}"),
        otel.kind = "consumer",
        messaging.system = system,
        messaging.operation.type = "process",
        messaging.destination.name = topic,
        messaging.destination.template = subscription,
        trellis.provider.id = provider,
        trellis.component.id = component,
        otel.status_code = Empty,
        otel.status_description = Empty,
        error.type = Empty,
    )
}

/// An HTTP request at ingress. `route` is the matched route template (never the raw path,
/// so span names stay few).
pub fn http_server(method: &str, route: &str, path: &str, server_address: &str) -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(
        target: "trellis",
        "http request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        url.path = path,
        server.address = server_address,
        http.response.status_code = Empty,
        otel.status_code = Empty,
        otel.status_description = Empty,
        error.type = Empty,
    )
}

/// An HTTP request handed over the lattice to a component on another host.
pub fn http_hop(parent: &Span, component_id: &str) -> Span {
    if !crate::context::of(parent).is_some_and(|cx| cx.sampled) {
        return Span::none();
    }
    tracing::info_span!(
        target: "trellis",
        parent: parent,
        "http hop",
        otel.name = "trellis:http/handler",
        otel.kind = "client",
        trellis.component.id = component_id,
        otel.status_code = Empty,
        otel.status_description = Empty,
        error.type = Empty,
    )
}

/// A control request served by a host or the manager (`component.scale`, `link.put`, …).
pub fn control(operation: &str, server_id: &str) -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(
        target: "trellis",
        "control",
        otel.name = %format_args!("control {operation}"),
        otel.kind = "server",
        trellis.operation = operation,
        trellis.server.id = server_id,
        otel.status_code = Empty,
        otel.status_description = Empty,
        error.type = Empty,
    )
}

/// The root span of one piece of work a process starts itself: a CLI command, a reconcile
/// pass of the manager.
pub fn root(name: &str) -> Span {
    if !crate::sampling::decide(None) {
        return Span::none();
    }
    tracing::info_span!(
        target: "trellis",
        parent: None,
        "root",
        otel.name = name,
        otel.kind = "internal",
        otel.status_code = Empty,
        otel.status_description = Empty,
        error.type = Empty,
    )
}

/// A command issued inside the current span (the manager's requests to hosts).
pub fn command(name: &str, target: &str) -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(
        target: "trellis",
        "command",
        otel.name = name,
        otel.kind = "client",
        trellis.target = target,
        otel.status_code = Empty,
        otel.status_description = Empty,
        error.type = Empty,
    )
}

/// Records a failure on `span`: error status, its kind as `error.type`.
pub fn fail(span: &Span, kind: &str, message: &str) {
    if span.is_disabled() {
        return;
    }
    span.record("otel.status_code", "ERROR");
    span.record("otel.status_description", message);
    span.record("error.type", kind);
}

/// Records the HTTP status on an HTTP span (5xx is an error for a server span).
pub fn http_status(span: &Span, status: u16) {
    if span.is_disabled() {
        return;
    }
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", status);
    }
}
