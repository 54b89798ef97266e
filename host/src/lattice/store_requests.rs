//! Lattice-wide link and config requests, answered by one host of the queue group: checked
//! against what the lattice runs, then written to the lattice's key-value buckets.

use std::sync::Arc;

use trellis_lattice::control::{
    self, ComponentDescription, DeleteConfig, DeleteLink, DescribeComponent, Empty, PutConfig,
    PutLink, Reply, RetargetLink,
};
use trellis_lattice::event::{ConfigDeleted, ConfigSet, Event, LinkDeleted, LinkSet};
use trellis_lattice::link::{validate_config_name, Link};
use trellis_lattice::subject::ctl;
use trellis_lattice::trace::TraceContext;

use crate::host::HostState;
use crate::runtime::split_interface;

/// Handles one request on a link or config subject; returns the JSON reply.
pub async fn handle(
    host: &Arc<HostState>,
    noun: &str,
    verb: &str,
    payload: &[u8],
    trace: TraceContext,
) -> Vec<u8> {
    let reply = match (noun, verb) {
        (ctl::LINK, ctl::PUT) => to_json(put_link(host, payload, trace).await),
        (ctl::LINK, ctl::RETARGET) => to_json(retarget_link(host, payload, trace).await),
        (ctl::LINK, ctl::DEL) => to_json(delete_link(host, payload, trace).await),
        (ctl::CONFIG, ctl::PUT) => to_json(put_config(host, payload, trace).await),
        (ctl::CONFIG, ctl::DEL) => to_json(delete_config(host, payload, trace).await),
        _ => to_json::<Empty>(Err(format!("unknown request {noun}.{verb}"))),
    };
    reply
}

fn to_json<T: serde::Serialize>(r: Result<T, String>) -> Vec<u8> {
    let reply = match r {
        Ok(v) => Reply::ok(v),
        Err(e) => Reply::error(e),
    };
    serde_json::to_vec(&reply)
        .unwrap_or_else(|_| br#"{"ok":false,"error":"cannot encode reply"}"#.to_vec())
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, payload: &[u8]) -> Result<T, String> {
    control::parse_request(what, payload).map_err(|e| e.to_string())
}

/// What the source component imports: from this host if it runs here, else from any host
/// that runs it; `None` when no host runs it (the link is then accepted unchecked).
async fn imports_of(host: &HostState, source: &str) -> Option<Vec<String>> {
    if let Some(c) = host.components.get(source) {
        return Some(c.loaded.imports.clone());
    }
    let req = serde_json::to_vec(&DescribeComponent {
        component_id: source.to_string(),
    })
    .ok()?;
    let request = async_nats::Request::new()
        .payload(req.into())
        .timeout(Some(std::time::Duration::from_secs(2)));
    let msg = host
        .nats
        .send_request(host.subjects.component_describe(source), request)
        .await
        .ok()?;
    Reply::<ComponentDescription>::parse(&msg.payload)
        .ok()?
        .into_result()
        .ok()
        .map(|d| d.imports)
}

async fn check_link(host: &HostState, link: &Link) -> Result<(), String> {
    link.validate().map_err(|e| e.to_string())?;
    if link.source_id == link.target_id {
        return Err(format!("link from {} to itself", link.source_id));
    }
    if let Some(imports) = imports_of(host, &link.source_id).await {
        let unversioned: Vec<String> = imports
            .iter()
            .filter_map(|i| split_interface(i).map(|(p, f)| format!("{p}/{f}")))
            .collect();
        for iface in &link.interfaces {
            let wanted = format!("{}/{iface}", link.package());
            if !unversioned.contains(&wanted) {
                let linkable: Vec<&String> = unversioned
                    .iter()
                    .filter(|i| !crate::runtime::is_native(i))
                    .collect();
                return Err(format!(
                    "component {} does not import {wanted} (it imports: {})",
                    link.source_id,
                    if linkable.is_empty() {
                        "no linkable interfaces".to_string()
                    } else {
                        linkable
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ));
            }
        }
    }
    let store = host.store().await?;
    for name in link.source_config.iter().chain(&link.target_config) {
        if store
            .config(name)
            .await
            .map_err(|e| e.to_string())?
            .is_none()
        {
            return Err(format!(
                "config `{name}` does not exist (create it first with `trellis config put {name} key=value...`)"
            ));
        }
    }
    Ok(())
}

async fn put_link(
    host: &Arc<HostState>,
    payload: &[u8],
    trace: TraceContext,
) -> Result<Link, String> {
    let PutLink { link } = parse("link put request", payload)?;
    check_link(host, &link).await?;
    let store = host.store().await?;
    let previous = store.link(&link.key()).await.map_err(|e| e.to_string())?;
    store.put_link(&link).await.map_err(|e| e.to_string())?;
    announce_link(host, &link, previous, trace).await;
    Ok(link)
}

async fn retarget_link(
    host: &Arc<HostState>,
    payload: &[u8],
    trace: TraceContext,
) -> Result<Link, String> {
    let req: RetargetLink = parse("link retarget request", payload)?;
    let store = host.store().await?;
    let Some(previous) = store.link(&req.key).await.map_err(|e| e.to_string())? else {
        return Err(format!(
            "no link {} {}:{} named {} to retarget",
            req.key.source_id, req.key.wit_namespace, req.key.wit_package, req.key.name
        ));
    };
    let mut link = previous.clone();
    link.target_id = req.target_id;
    if let Some(tc) = req.target_config {
        link.target_config = tc;
    }
    check_link(host, &link).await?;
    // One write replaces the target: calls under way finish on the old one, new calls go to
    // the new one, and there is no moment without a link.
    store.put_link(&link).await.map_err(|e| e.to_string())?;
    announce_link(host, &link, Some(previous), trace).await;
    Ok(link)
}

async fn announce_link(host: &HostState, link: &Link, previous: Option<Link>, trace: TraceContext) {
    host.links
        .apply(trellis_lattice::store::Change::Put(link.clone()));
    host.events
        .publish(
            Event::LinkSet(LinkSet {
                link: link.clone(),
                previous_target: previous
                    .map(|p| p.target_id)
                    .filter(|t| *t != link.target_id),
            }),
            Some(trace),
        )
        .await;
}

async fn delete_link(
    host: &Arc<HostState>,
    payload: &[u8],
    trace: TraceContext,
) -> Result<Empty, String> {
    let DeleteLink { key } = parse("link delete request", payload)?;
    let store = host.store().await?;
    if !store.delete_link(&key).await.map_err(|e| e.to_string())? {
        return Err(format!(
            "no link {} {}:{} named {}",
            key.source_id, key.wit_namespace, key.wit_package, key.name
        ));
    }
    host.links
        .apply(trellis_lattice::store::Change::Deleted(key.clone()));
    host.events
        .publish(Event::LinkDeleted(LinkDeleted { key }), Some(trace))
        .await;
    Ok(Empty {})
}

async fn put_config(
    host: &Arc<HostState>,
    payload: &[u8],
    trace: TraceContext,
) -> Result<Empty, String> {
    let PutConfig { name, values } = parse("config put request", payload)?;
    validate_config_name(&name).map_err(|e| e.to_string())?;
    if let Some(bad) = values
        .keys()
        .find(|k| k.is_empty() || k.chars().any(char::is_control))
    {
        return Err(format!("config {name}: invalid key {bad:?}"));
    }
    let store = host.store().await?;
    store
        .put_config(&name, &values)
        .await
        .map_err(|e| e.to_string())?;
    host.events
        .publish(
            Event::ConfigSet(ConfigSet {
                name,
                keys: values.keys().cloned().collect(),
            }),
            Some(trace),
        )
        .await;
    Ok(Empty {})
}

async fn delete_config(
    host: &Arc<HostState>,
    payload: &[u8],
    trace: TraceContext,
) -> Result<Empty, String> {
    let DeleteConfig { name } = parse("config delete request", payload)?;
    let store = host.store().await?;
    let users: Vec<String> = store
        .links()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|l| l.source_config.contains(&name) || l.target_config.contains(&name))
        .map(|l| format!("{} -> {} ({})", l.source_id, l.target_id, l.package()))
        .collect();
    if !users.is_empty() {
        return Err(format!(
            "config {name} is used by link(s) {}; delete or change them first",
            users.join(", ")
        ));
    }
    if !store
        .delete_config(&name)
        .await
        .map_err(|e| e.to_string())?
    {
        return Err(format!("no config named {name}"));
    }
    host.events
        .publish(Event::ConfigDeleted(ConfigDeleted { name }), Some(trace))
        .await;
    Ok(Empty {})
}
