//! Serving a running component's exports over the lattice: one wRPC subscription per
//! exported function in the component's queue group, a task per invocation, bounded by the
//! component's replicas.

use std::sync::Arc;

use futures::{StreamExt as _, TryStreamExt as _};
use trellis_lattice::control::{ComponentDescription, Reply};
use trellis_lattice::http::{HTTP_FUNCTION, HTTP_INSTANCE};
use trellis_lattice::rpc::{IncomingCall, RemoteErrorKind};
use trellis_lattice::trace::TraceContext;
use wrpc_transport::Serve as _;
use wrpc_transport_nats::{NatsContext, Reader, SubjectWriter};

use super::writer::ReclaimableWriter;
use super::RunningComponent;
use crate::host::HostState;
use crate::runtime::{ImportClient, Invocation};

/// Marks the HTTP entry among the served functions' indices.
const HTTP_ENTRY: usize = usize::MAX;

/// Subscribes the component's exports and its describe subject. Returns once subscribed;
/// serving continues in tasks until the component's cancellation token fires.
pub async fn start(host: &Arc<HostState>, comp: &Arc<RunningComponent>) -> anyhow::Result<()> {
    let group = host.subjects.queue_group(&comp.id);
    let client = wrpc_transport_nats::Client::new(
        Arc::clone(&host.nats_shared),
        host.subjects.rpc_prefix(&comp.id),
        Some(group.clone().into()),
    )
    .await?;
    let mut streams = Vec::with_capacity(comp.loaded.functions.len());
    for (index, f) in comp.loaded.functions.iter().enumerate() {
        let sig = &f.export.signature;
        let no_async_params: Arc<[Box<[Option<usize>]>]> = Arc::from([]);
        let stream = client
            .serve(&sig.instance, &sig.name, no_async_params)
            .await?
            .map_ok(move |inv| (index, inv));
        streams.push(stream.boxed());
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
    let mut invocations = futures::stream::select_all(streams);

    let mut describe = host
        .nats
        .queue_subscribe(host.subjects.component_describe(&comp.id), group)
        .await?;
    host.nats.flush().await?;

    let cancel = comp.cancel.clone();
    let tracker = comp.tracker.clone();
    let (h, c) = (Arc::clone(host), Arc::clone(comp));
    comp.tracker.spawn(async move {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                next = invocations.next() => match next {
                    Some(Ok((HTTP_ENTRY, (cx, tx, rx)))) => {
                        let (h, c) = (Arc::clone(&h), Arc::clone(&c));
                        tracker.spawn(crate::ingress::serve_lattice(h, c, cx, tx, rx));
                    }
                    Some(Ok((index, (cx, tx, rx)))) => {
                        let (h, c) = (Arc::clone(&h), Arc::clone(&c));
                        tracker.spawn(handle(h, c, index, cx, tx, rx));
                    }
                    Some(Err(err)) => tracing::warn!(component_id = %c.id, error = %err, "failed to accept an invocation"),
                    None => break,
                },
                msg = describe.next() => match msg {
                    Some(msg) => reply_describe(&h, &c, msg).await,
                    None => break,
                },
            }
        }
        // Dropping the streams unsubscribes; calls in flight finish in their own tasks.
    });
    Ok(())
}

async fn reply_describe(host: &HostState, comp: &RunningComponent, msg: async_nats::Message) {
    let Some(reply) = msg.reply else { return };
    let body = Reply::ok(ComponentDescription {
        component_id: comp.id.to_string(),
        image: comp.loaded.image.clone(),
        digest: comp.loaded.digest.clone(),
        host_id: host.id.clone(),
        functions: comp
            .loaded
            .functions
            .iter()
            .map(|f| f.export.signature.clone())
            .collect(),
        imports: comp.loaded.imports.clone(),
    });
    match serde_json::to_vec(&body) {
        Ok(payload) => {
            if let Err(err) = host.nats.publish(reply, payload.into()).await {
                tracing::debug!(%err, "failed to answer describe");
            }
        }
        Err(err) => tracing::warn!(%err, "failed to encode a component description"),
    }
}

async fn handle(
    host: Arc<HostState>,
    comp: Arc<RunningComponent>,
    index: usize,
    cx: NatsContext,
    tx: SubjectWriter,
    rx: Reader,
) {
    let incoming = IncomingCall::from_headers(cx.headers.as_ref());
    let report = |kind, message: String| {
        let (host, comp, incoming) = (&host, &comp, &incoming);
        async move {
            incoming
                .report(&host.nats, &comp.id, &host.id, kind, message)
                .await;
        }
    };

    let _permit = match comp.admit().await {
        Ok(p) => p,
        Err(why) => {
            report(RemoteErrorKind::Unavailable, why).await;
            return;
        }
    };

    let trace = TraceContext::continue_from(cx.headers.as_ref());
    let function = &comp.loaded.functions[index];
    let client = ImportClient::new(
        Arc::clone(&host.invoker),
        Arc::clone(&host.resolver),
        Arc::clone(&comp.id),
        trace,
    );
    let invocation = Invocation {
        runtime: &host.runtime,
        pre: &comp.loaded.pre,
        function,
        limits: comp.limits(),
        client,
        config: comp.config(),
    };
    let (writer, slot) = ReclaimableWriter::new(tx);
    let (result, output) = invocation.run(rx, writer).await;
    let function_name = function.export.signature.qualified_name();
    if !output.is_empty() {
        tracing::info!(component_id = %comp.id, function = %function_name, trace_id = %trace.trace_id_hex(), output = %output, "component output");
    }
    if let Err(failure) = result {
        tracing::warn!(component_id = %comp.id, function = %function_name, trace_id = %trace.trace_id_hex(), error = %failure.message, "invocation failed");
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
