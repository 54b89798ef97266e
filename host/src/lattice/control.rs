//! The control interface: JSON requests on `trellis.ctl.v1.{lattice}.…`, one task each, so a
//! slow request (compiling a component) never holds up a ping.

use std::sync::Arc;

use futures::StreamExt as _;
use serde::Serialize;
use tracing::Instrument as _;
use trellis_lattice::control::{
    self, AuctionOffer, ComponentAuction, DeleteLabel, Empty, PutLabel, Reply, ScaleComponent,
    StartProvider, StopHost, StopProvider,
};
use trellis_lattice::event::{ComponentScaleFailed, ComponentScaled, Event, LabelsChanged};
use trellis_lattice::labels;
use trellis_lattice::subject::ctl;
use trellis_lattice::trace::TraceContext;

use crate::components;
use crate::host::HostState;

/// Subscribes the host's control subjects and serves them until shutdown.
pub async fn start(host: &Arc<HostState>) -> anyhow::Result<()> {
    let subjects = &host.subjects;
    let subs = vec![
        host.nats
            .subscribe(subjects.host_control_wildcard(&host.id))
            .await?,
        host.nats.subscribe(subjects.host_ping()).await?,
        host.nats.subscribe(subjects.component_auction()).await?,
    ];
    let mut subs = subs;
    for subject in subjects.store_requests() {
        subs.push(
            host.nats
                .queue_subscribe(subject, subjects.any_host_group())
                .await?,
        );
    }
    let mut all = futures::stream::select_all(subs);
    let host = Arc::clone(host);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = host.shutdown.cancelled() => break,
                msg = all.next() => match msg {
                    Some(msg) => {
                        let host = Arc::clone(&host);
                        tokio::spawn(async move { dispatch(host, msg).await });
                    }
                    None => break,
                },
            }
        }
    });
    Ok(())
}

async fn respond<T: Serialize>(host: &HostState, msg: &async_nats::Message, reply: Reply<T>) {
    let Some(to) = msg.reply.clone() else { return };
    match serde_json::to_vec(&reply) {
        Ok(body) => {
            if let Err(err) = host.nats.publish(to, body.into()).await {
                tracing::debug!(%err, "failed to send a control reply");
            }
        }
        Err(err) => tracing::warn!(%err, "failed to encode a control reply"),
    }
}

fn result<T>(r: Result<T, String>) -> Reply<T> {
    match r {
        Ok(v) => Reply::ok(v),
        Err(e) => Reply::error(e),
    }
}

async fn dispatch(host: Arc<HostState>, msg: async_nats::Message) {
    let Some(parsed) = host.subjects.parse_control(&msg.subject) else {
        return;
    };
    let (noun, verb) = (parsed.noun.to_string(), parsed.verb.to_string());
    let trace = TraceContext::continue_from(msg.headers.as_ref());
    let span = tracing::info_span!("control", noun = %noun, verb = %verb, trace_id = %trace.trace_id_hex());
    handle(host, msg, noun, verb, trace).instrument(span).await;
}

async fn handle(
    host: Arc<HostState>,
    msg: async_nats::Message,
    noun: String,
    verb: String,
    trace: TraceContext,
) {
    match (noun.as_str(), verb.as_str()) {
        (ctl::HOST, ctl::PING) => respond(&host, &msg, Reply::ok(host.inventory().summary())).await,
        (ctl::HOST, ctl::GET) => respond(&host, &msg, Reply::ok(host.inventory())).await,
        (ctl::HOST, ctl::STOP) => {
            let req: Result<StopHost, _> = parse_or_default(&msg.payload);
            match req {
                Ok(req) => {
                    respond(&host, &msg, Reply::ok(Empty {})).await;
                    tracing::info!("stop requested over the control interface");
                    host.request_stop(req.timeout_ms);
                }
                Err(e) => respond(&host, &msg, Reply::<Empty>::error(e)).await,
            }
        }
        (ctl::LABEL, ctl::PUT) => {
            let r = parse::<PutLabel>("label put request", &msg.payload)
                .and_then(|req| put_label(&host, req.key, Some(req.value)));
            let reply = result(r);
            if reply.ok {
                announce_labels(&host, trace).await;
            }
            respond(&host, &msg, reply).await;
        }
        (ctl::LABEL, ctl::DEL) => {
            let r = parse::<DeleteLabel>("label delete request", &msg.payload)
                .and_then(|req| put_label(&host, req.key, None));
            let reply = result(r);
            if reply.ok {
                announce_labels(&host, trace).await;
            }
            respond(&host, &msg, reply).await;
        }
        (ctl::COMPONENT, ctl::SCALE) => scale(&host, &msg, trace).await,
        (ctl::PROVIDER, ctl::START) => {
            let r = match parse::<StartProvider>("provider start request", &msg.payload) {
                Ok(req) => crate::providers::start(&host, req).await,
                Err(e) => Err(e),
            };
            respond(&host, &msg, result(r)).await;
        }
        (ctl::PROVIDER, ctl::STOP) => {
            let r = match parse::<StopProvider>("provider stop request", &msg.payload) {
                Ok(req) => crate::providers::stop(&host, &req.provider_id)
                    .await
                    .map(|()| Empty {}),
                Err(e) => Err(e),
            };
            respond(&host, &msg, result(r)).await;
        }
        (ctl::LINK | ctl::CONFIG, _) => {
            let body =
                super::store_requests::handle(&host, &noun, &verb, &msg.payload, trace).await;
            if let Some(to) = msg.reply.clone() {
                if let Err(err) = host.nats.publish(to, body.into()).await {
                    tracing::debug!(%err, "failed to send a control reply");
                }
            }
        }
        (ctl::COMPONENT, ctl::AUCTION) => {
            // Hosts that do not match stay silent, so the auction hears only offers.
            if let Ok(req) = parse::<ComponentAuction>("auction request", &msg.payload) {
                if let Some(offer) = auction(&host, &req) {
                    respond(&host, &msg, Reply::ok(offer)).await;
                }
            }
        }
        _ => {
            respond(
                &host,
                &msg,
                Reply::<Empty>::error(format!("unknown control request {noun}.{verb}")),
            )
            .await
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, payload: &[u8]) -> Result<T, String> {
    control::parse_request(what, payload).map_err(|e| e.to_string())
}

fn parse_or_default<T: serde::de::DeserializeOwned + Default>(payload: &[u8]) -> Result<T, String> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse("request", payload)
}

fn put_label(
    host: &HostState,
    key: String,
    value: Option<String>,
) -> Result<labels::Labels, String> {
    labels::validate_user_label(&key, value.as_deref().unwrap_or("")).map_err(|e| e.to_string())?;
    let mut labels = host
        .labels
        .write()
        .map_err(|_| "label store unavailable".to_string())?;
    match value {
        Some(v) => {
            labels.insert(key, v);
        }
        None => {
            if labels.remove(&key).is_none() {
                return Err(format!("host has no label {key:?}"));
            }
        }
    }
    Ok(labels.clone())
}

async fn announce_labels(host: &HostState, trace: TraceContext) {
    let labels = host.labels();
    host.events
        .publish(
            Event::LabelsChanged(LabelsChanged {
                host_id: host.id.clone(),
                labels,
            }),
            Some(trace),
        )
        .await;
}

fn auction(host: &HostState, req: &ComponentAuction) -> Option<AuctionOffer> {
    let labels = host.labels();
    if !labels::matches(&labels, &req.constraints) {
        return None;
    }
    Some(AuctionOffer {
        host_id: host.id.clone(),
        friendly_name: host.friendly_name.clone(),
        already_running: host.components.get(&req.component_id).is_some()
            || host.providers.get(&req.component_id).is_some(),
        component_count: host.components.count() + host.providers.count(),
        labels,
    })
}

async fn scale(host: &Arc<HostState>, msg: &async_nats::Message, trace: TraceContext) {
    let req = match parse::<ScaleComponent>("scale request", &msg.payload) {
        Ok(req) => req,
        Err(reason) => {
            publish_scale_failed(host, "", "", 0, reason.clone(), Default::default(), trace).await;
            respond(host, msg, Reply::<Empty>::error(reason)).await;
            return;
        }
    };
    match components::scale(host, &req).await {
        Ok(done) => {
            tracing::info!(component_id = %done.component_id, replicas = done.replicas, "component scaled");
            host.events
                .publish(
                    Event::ComponentScaled(ComponentScaled {
                        host_id: done.host_id.clone(),
                        component_id: done.component_id.clone(),
                        image: done.image.clone(),
                        digest: done.digest.clone(),
                        replicas: done.replicas,
                        annotations: req.annotations.clone(),
                    }),
                    Some(trace),
                )
                .await;
            respond(host, msg, Reply::ok(done)).await;
        }
        Err(reason) => {
            tracing::warn!(component_id = %req.component_id, image = %req.image, %reason, "scale failed");
            publish_scale_failed(
                host,
                &req.component_id,
                &req.image,
                req.replicas,
                reason.clone(),
                req.annotations.clone(),
                trace,
            )
            .await;
            respond(host, msg, Reply::<Empty>::error(reason)).await;
        }
    }
}

async fn publish_scale_failed(
    host: &HostState,
    component_id: &str,
    image: &str,
    replicas: u32,
    reason: String,
    annotations: std::collections::BTreeMap<String, String>,
    trace: TraceContext,
) {
    host.events
        .publish(
            Event::ComponentScaleFailed(ComponentScaleFailed {
                host_id: host.id.clone(),
                component_id: component_id.to_string(),
                image: image.to_string(),
                replicas,
                reason,
                annotations,
            }),
            Some(trace),
        )
        .await;
}
