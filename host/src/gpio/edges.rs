//! Edges delivered as calls: a running component that exports `trellis:gpio/edge-handler`
//! has every granted pin it does not drive requested as an input with edge detection, and
//! each edge becomes one call of its `on-edge`, in this host, in order (a slow handler
//! delays the next edge; more than the event buffer behind and the oldest are dropped and
//! logged). A grant change or a chip coming or going re-plans the watch: the old lines are
//! released before the new ones are requested, so no edge is reported twice.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::broadcast;
use trellis_gpio::{Direction, Edge, EdgeEvent, LineSettings};
use wasmtime::component::Val;

use crate::components::running::RunningComponent;
use crate::runtime::{classify, Failure, ServedFunction};

/// The export that receives edges; served only by its own host, never over the lattice.
pub const EDGE_INTERFACE: &str = "trellis:gpio/edge-handler";

/// Whether a served function is the edge handler.
pub fn is_edge_handler(f: &ServedFunction) -> bool {
    let instance = &f.export.signature.instance;
    instance.split('@').next() == Some(EDGE_INTERFACE) && f.export.signature.name == "on-edge"
}

/// Watches the component's pins until it stops, if it handles edges.
pub fn spawn(comp: &Arc<RunningComponent>) {
    let Some(pins) = comp.gpio.clone() else {
        return;
    };
    let Some(index) = comp.loaded.functions.iter().position(is_edge_handler) else {
        return;
    };
    let comp = Arc::clone(comp);
    tokio::spawn(async move {
        let mut grants = pins.grants();
        let mut chips = pins.chips().names();
        let cancel = comp.cancelled().clone();
        loop {
            let planned = grants.borrow_and_update().clone();
            chips.borrow_and_update();
            let mut streams = Vec::new();
            for g in planned.iter() {
                if pins.held_direction(&g.label) == Some(Direction::Output) {
                    continue;
                }
                let settings = LineSettings {
                    edges: true,
                    ..LineSettings::input()
                };
                match pins.claim(&g.label, &settings) {
                    Ok((_, line)) => {
                        let label: Arc<str> = g.label.as_str().into();
                        streams.push(events(label, line.events()).boxed());
                    }
                    Err(why) => {
                        tracing::warn!(component_id = %comp.id, pin = %g.label, chip = %g.chip, line = g.line, refusal = ?why, "cannot watch a granted pin")
                    }
                }
            }
            let watching = !streams.is_empty();
            let mut merged = futures::stream::select_all(streams);
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    _ = grants.changed() => break,
                    _ = chips.changed() => break,
                    next = merged.next(), if watching => match next {
                        Some((label, Ok(event))) => deliver(&comp, index, &label, &event).await,
                        Some((label, Err(skipped))) => tracing::warn!(component_id = %comp.id, pin = %label, skipped, "edges dropped: the handler fell behind"),
                        None => {
                            // Every watched line is gone (its chip went): wait for a change.
                            tokio::select! {
                                () = cancel.cancelled() => return,
                                _ = grants.changed() => {}
                                _ = chips.changed() => {}
                            }
                            break;
                        }
                    },
                }
            }
            // Let a burst of changes settle before planning again.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
}

type Labelled = (Arc<str>, Result<EdgeEvent, u64>);

/// A line's edges labelled with its pin; `Err(n)`: n edges were dropped.
fn events(
    label: Arc<str>,
    rx: broadcast::Receiver<EdgeEvent>,
) -> impl futures::Stream<Item = Labelled> {
    futures::stream::unfold((label, rx), |(label, mut rx)| async move {
        let item = match rx.recv().await {
            Ok(e) => Ok(e),
            Err(broadcast::error::RecvError::Lagged(n)) => Err(n),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some(((label.clone(), item), (label, rx)))
    })
}

/// One edge, one call of `on-edge` in a fresh instance on this host.
async fn deliver(comp: &Arc<RunningComponent>, index: usize, label: &str, event: &EdgeEvent) {
    let function = &comp.loaded.functions[index];
    let name = function.export.signature.qualified_name();
    let inv = comp.begin(&name, None);
    let Ok(_permit) = comp.admit_for(&inv).await else {
        tracing::warn!(component_id = %comp.id, pin = label, "an edge was dropped: the component is stopping");
        return;
    };
    let (instance, meter) = comp.measured_instance(&inv);
    let edge = match event.edge {
        Edge::Rising => "rising",
        Edge::Falling => "falling",
    };
    let params = [Val::Record(vec![
        ("pin".into(), Val::String(label.into())),
        ("edge".into(), Val::Enum(edge.into())),
        ("timestamp-ns".into(), Val::U64(event.timestamp_ns)),
    ])];
    let pre = &comp.loaded.pre;
    let (result, output) = instance
        .run(|mut store| async move {
            let guest = pre
                .instantiate_async(&mut store)
                .await
                .map_err(|e| classify(&e, "failed to instantiate"))?;
            let func = guest
                .get_func(&mut store, function.index)
                .ok_or_else(|| Failure {
                    kind: trellis_lattice::rpc::RemoteErrorKind::Internal,
                    message: "the edge handler disappeared".into(),
                })?;
            func.call_async(&mut store, &params, &mut [])
                .await
                .map_err(|e| classify(&e, "on-edge failed"))?;
            Ok(())
        })
        .await;
    comp.finish(&inv, meter.read(), result.as_ref().err());
    crate::observe::component_output(&inv.span, &comp.id, &inv.trace, &output);
    if let Err(failure) = result {
        tracing::warn!(component_id = %comp.id, pin = label, error = %failure.message, "the edge handler failed");
    }
}
