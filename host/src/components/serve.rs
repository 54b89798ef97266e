//! Serving a running component's exports over the lattice: one wRPC subscription per
//! exported function in the component's queue group, a task per invocation, bounded by the
//! component's replicas; its describe subject; and HTTP requests from servers on other hosts.

use std::sync::Arc;

use futures::{StreamExt as _, TryStreamExt as _};
use trellis_lattice::control::ComponentDescription;
use trellis_lattice::http::{HTTP_FUNCTION, HTTP_INSTANCE};
use trellis_lattice::rpc::{IncomingCall, RemoteErrorKind, MAX_CALL_DEPTH};
use trellis_lattice::server::{self, Incoming, Listen};
use trellis_lattice::trace::TraceContext;
use trellis_lattice::{ControlError, Subjects};
use wrpc_transport::Serve as _;
use wrpc_transport_nats::{NatsContext, Reader, SubjectWriter};

use super::running::RunningComponent;
use super::writer::ReclaimableWriter;
use crate::runtime::call_export;

/// Marks the HTTP entry among the served functions' indices.
const HTTP_ENTRY: usize = usize::MAX;

/// Where a component is served.
pub struct Endpoint<'a> {
    pub nats: &'a async_nats::Client,
    pub nats_shared: &'a Arc<async_nats::Client>,
    pub subjects: &'a Subjects,
    pub host_id: &'a str,
}

/// Subscribes the component's exports and its describe subject. Returns once subscribed;
/// serving continues in tasks until the component's cancellation token fires.
pub async fn start(at: Endpoint<'_>, comp: &Arc<RunningComponent>) -> anyhow::Result<()> {
    let group = at.subjects.queue_group(&comp.id);
    let client = wrpc_transport_nats::Client::new(
        Arc::clone(at.nats_shared),
        at.subjects.rpc_prefix(&comp.id),
        Some(group.clone().into()),
    )
    .await?;
    let mut streams = Vec::with_capacity(comp.loaded.functions.len());
    for (index, f) in comp.loaded.functions.iter().enumerate() {
        // Edges come from this host's chips only: a lattice call could fake them.
        if crate::gpio::edges::is_edge_handler(f) {
            continue;
        }
        let sig = &f.export.signature;
        let no_async_params: Arc<[Box<[Option<usize>]>]> = Arc::from([]);
        let stream = client
            .serve(&sig.instance, &sig.name, no_async_params)
            .await?
            .map_ok(move |inv| (index, inv));
        streams.push(stream.boxed());
    }
    // Message handlers are also served on this host's own subject: a messaging provider
    // delivers to the instance next to it (a board's LED, not another board's).
    let handlers: Vec<usize> = comp
        .loaded
        .functions
        .iter()
        .enumerate()
        .filter(|(_, f)| is_message_handler(f))
        .map(|(i, _)| i)
        .collect();
    if !handlers.is_empty() {
        let local = wrpc_transport_nats::Client::new(
            Arc::clone(at.nats_shared),
            at.subjects.rpc_prefix_on(&comp.id, at.host_id),
            Some(group.clone().into()),
        )
        .await?;
        for index in handlers {
            let sig = &comp.loaded.functions[index].export.signature;
            let no_async_params: Arc<[Box<[Option<usize>]>]> = Arc::from([]);
            let stream = local
                .serve(&sig.instance, &sig.name, no_async_params)
                .await?
                .map_ok(move |inv| (index, inv));
            streams.push(stream.boxed());
        }
    }
    if comp.loaded.http.is_some() {
        // Requests from HTTP servers on other hosts arrive as this call.
        let no_async_params: Arc<[Box<[Option<usize>]>]> = Arc::from([]);
        let stream = client
            .serve(HTTP_INSTANCE, HTTP_FUNCTION, no_async_params)
            .await?
            .map_ok(|inv| (HTTP_ENTRY, inv));
        streams.push(stream.boxed());
    }
    // A component may serve nothing over the lattice (an edge handler only): it still
    // answers describe.
    let serving = !streams.is_empty();
    let mut invocations = futures::stream::select_all(streams);

    let listen = Listen::queue(at.subjects.component_describe(&comp.id), group);
    let mut describe = server::requests(at.nats, [listen], |_, _| Ok(())).await?;
    at.nats.flush().await?;

    let cancel = comp.cancelled().clone();
    let tracker = comp.tracker().clone();
    let (nats, host_id) = (at.nats.clone(), Arc::<str>::from(at.host_id));
    let c = Arc::clone(comp);
    comp.tracker().spawn(async move {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                next = invocations.next(), if serving => match next {
                    Some(Ok((HTTP_ENTRY, (cx, tx, rx)))) => {
                        let call = Call { nats: nats.clone(), host_id: Arc::clone(&host_id), comp: Arc::clone(&c) };
                        tracker.spawn(crate::ingress::lattice::serve_lattice(call.nats, call.host_id, call.comp, cx, tx, rx));
                    }
                    Some(Ok((index, (cx, tx, rx)))) => {
                        let call = Call { nats: nats.clone(), host_id: Arc::clone(&host_id), comp: Arc::clone(&c) };
                        tracker.spawn(handle(call, index, cx, tx, rx));
                    }
                    Some(Err(err)) => tracing::warn!(component_id = %c.id, error = %err, "failed to accept an invocation"),
                    None => break,
                },
                request = describe.next() => match request {
                    Some(request) => answer_describe(&host_id, &c, request).await,
                    None => break,
                },
            }
        }
        // Dropping the streams unsubscribes; calls in flight finish in their own tasks.
    });
    Ok(())
}

async fn answer_describe(host_id: &str, comp: &RunningComponent, request: Incoming<()>) {
    let description = request
        .request
        .as_ref()
        .map_err(ControlError::clone)
        .map(|()| ComponentDescription {
            component_id: comp.id.to_string(),
            image: comp.loaded.image.clone(),
            digest: comp.loaded.digest.clone(),
            host_id: host_id.to_string(),
            functions: comp
                .loaded
                .functions
                .iter()
                .filter(|f| !crate::gpio::edges::is_edge_handler(f))
                .map(|f| f.export.signature.clone())
                .collect(),
            imports: comp.loaded.imports.clone(),
        });
    request.respond(server::answer(description)).await;
}

/// `trellis:messaging/incoming-handler.handle`.
fn is_message_handler(f: &crate::runtime::ServedFunction) -> bool {
    let sig = &f.export.signature;
    sig.instance.split('@').next() == Some("trellis:messaging/incoming-handler")
        && sig.name == "handle"
}

/// What an invocation task holds.
struct Call {
    nats: async_nats::Client,
    host_id: Arc<str>,
    comp: Arc<RunningComponent>,
}

async fn handle(call: Call, index: usize, cx: NatsContext, tx: SubjectWriter, rx: Reader) {
    let Call {
        nats,
        host_id,
        comp,
    } = call;
    let incoming = IncomingCall::from_headers(cx.headers.as_ref());
    let report = |kind, message: String| {
        let (nats, host_id, comp, incoming) = (&nats, &host_id, &comp, &incoming);
        async move {
            incoming
                .report(nats, &comp.id, host_id, kind, message)
                .await;
        }
    };

    if incoming.too_deep() {
        let why = format!(
            "call chain too deep: {} calls through links led to this call of `{}` (at most {MAX_CALL_DEPTH}); does a component call itself through a link?",
            incoming.depth, comp.id
        );
        report(RemoteErrorKind::BadRequest, why).await;
        return;
    }
    let function = &comp.loaded.functions[index];
    let function_name = function.export.signature.qualified_name();
    let mut inv = comp.begin(
        &function_name,
        TraceContext::from_headers(cx.headers.as_ref()),
    );
    inv.called(incoming.depth, incoming.budget);
    let trace = inv.trace;
    let _permit = match comp.admit_for(&inv).await {
        Ok(p) => p,
        Err(why) => {
            report(RemoteErrorKind::Unavailable, why).await;
            return;
        }
    };
    // A caller that has given up is not served: in a ring of calls through links, the calls
    // queued behind it would otherwise take each instance as it comes free.
    if inv.caller_time_left().is_some_and(|left| left.is_zero()) {
        let why = format!(
            "the caller's time limit ran out while this call waited for an instance of `{}`",
            comp.id
        );
        report(RemoteErrorKind::TimeLimit, why).await;
        return;
    }

    let (writer, slot) = ReclaimableWriter::new(tx);
    let (instance, meter) = comp.measured_instance(&inv);
    let (result, output) = call_export(instance, &comp.loaded.pre, function, rx, writer).await;
    comp.finish(&inv, meter.read(), result.as_ref().err());
    // Every failure is counted; only a few a second are logged (a trap storm).
    let logged = match &result {
        Ok(()) => Some(0),
        Err(_) => comp.stats.failure_log.admit(),
    };
    if logged.is_some() {
        crate::observe::component_output(&inv.span, &comp.id, &trace, &output);
    }
    if let Err(failure) = result {
        if let Some(left_out) = logged {
            inv.span.in_scope(|| {
                tracing::warn!(component_id = %comp.id, function = %function_name, trace_id = %trace.trace_id_hex(), error = %failure.message, left_out, "invocation failed");
            });
        }
        let message = if output.is_empty() {
            failure.message
        } else {
            format!(
                "{}; the component printed: {}",
                failure.message,
                tail(&output)
            )
        };
        report(failure.kind, message).await;
    }
    // Only now may the result stream close (see `writer`).
    let writer = slot.lock().ok().and_then(|mut s| s.take());
    drop(writer);
}

/// The last few lines of guest output, enough for a panic message.
fn tail(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    let start = lines.len().saturating_sub(4);
    lines[start..].join(" | ")
}
