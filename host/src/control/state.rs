//! Lattice-wide link and config requests, answered by one host of the queue group: checked
//! against what the lattice runs, then written to the lattice's key-value buckets.

use std::sync::Arc;

use trellis_lattice::control::{DeleteConfig, DeleteLink, Empty, PutConfig, PutLink, RetargetLink};
use trellis_lattice::event::{ConfigDeleted, ConfigSet, Event, LinkDeleted, LinkSet};
use trellis_lattice::kv::Change;
use trellis_lattice::link::{validate_config_name, Link};
use trellis_lattice::server::EventSink;
use trellis_lattice::trace::TraceContext;
use trellis_lattice::ControlError;

use super::parts::ImportsLookup;
use crate::lattice_kv::StateStore;
use crate::links::LinkTable;
use crate::runtime::{is_native, split_interface};

/// The handlers of link and config requests, and what they need.
pub struct StateHandlers {
    pub store: Arc<dyn StateStore>,
    pub imports: Arc<dyn ImportsLookup>,
    /// This host's link table, updated at once (the KV watch follows a moment later).
    pub links: Arc<LinkTable>,
    pub events: Arc<dyn EventSink>,
}

impl StateHandlers {
    async fn check_link(&self, link: &Link) -> Result<(), ControlError> {
        link.validate().map_err(ControlError::from)?;
        if link.source_id == link.target_id {
            return Err(ControlError::invalid(format!(
                "link from {} to itself",
                link.source_id
            )));
        }
        if let Some(imports) = self.imports.imports_of(&link.source_id).await {
            let unversioned: Vec<String> = imports
                .iter()
                .filter_map(|i| split_interface(i).map(|(p, f)| format!("{p}/{f}")))
                .collect();
            for iface in &link.interfaces {
                let wanted = format!("{}/{iface}", link.package());
                if !unversioned.contains(&wanted) {
                    let linkable: Vec<&str> = unversioned
                        .iter()
                        .filter(|i| !is_native(i))
                        .map(String::as_str)
                        .collect();
                    return Err(ControlError::refused(format!(
                        "component {} does not import {wanted} (it imports: {})",
                        link.source_id,
                        if linkable.is_empty() {
                            "no linkable interfaces".to_string()
                        } else {
                            linkable.join(", ")
                        }
                    )));
                }
            }
        }
        for name in link.source_config.iter().chain(&link.target_config) {
            if self.store.config(name).await?.is_none() {
                return Err(ControlError::not_found(format!(
                    "config `{name}` does not exist (create it first with `trellis config put {name} key=value...`)"
                )));
            }
        }
        Ok(())
    }

    pub async fn put_link(&self, req: PutLink, trace: &TraceContext) -> Result<Link, ControlError> {
        let link = req.link;
        self.check_link(&link).await?;
        let previous = self.store.link(&link.key()).await?;
        self.store.put_link(&link).await?;
        self.announce_link(&link, previous, trace).await;
        Ok(link)
    }

    pub async fn retarget_link(
        &self,
        req: RetargetLink,
        trace: &TraceContext,
    ) -> Result<Link, ControlError> {
        let Some(previous) = self.store.link(&req.key).await? else {
            return Err(ControlError::not_found(format!(
                "no link {} {}:{} named {} to retarget",
                req.key.source_id, req.key.wit_namespace, req.key.wit_package, req.key.name
            )));
        };
        let mut link = previous.clone();
        link.target_id = req.target_id;
        if let Some(tc) = req.target_config {
            link.target_config = tc;
        }
        self.check_link(&link).await?;
        // One write replaces the target: calls under way finish on the old one, new calls go
        // to the new one, and there is no moment without a link.
        self.store.put_link(&link).await?;
        self.announce_link(&link, Some(previous), trace).await;
        Ok(link)
    }

    async fn announce_link(&self, link: &Link, previous: Option<Link>, trace: &TraceContext) {
        self.links.apply(Change::Put(link.clone()));
        let event = Event::LinkSet(LinkSet {
            link: link.clone(),
            previous_target: previous
                .map(|p| p.target_id)
                .filter(|t| *t != link.target_id),
        });
        self.events.publish(event, Some(trace)).await;
    }

    pub async fn delete_link(
        &self,
        req: DeleteLink,
        trace: &TraceContext,
    ) -> Result<Empty, ControlError> {
        let key = req.key;
        if !self.store.delete_link(&key).await? {
            return Err(ControlError::not_found(format!(
                "no link {} {}:{} named {}",
                key.source_id, key.wit_namespace, key.wit_package, key.name
            )));
        }
        self.links.apply(Change::Deleted(key.clone()));
        self.events
            .publish(Event::LinkDeleted(LinkDeleted { key }), Some(trace))
            .await;
        Ok(Empty {})
    }

    pub async fn put_config(
        &self,
        req: PutConfig,
        trace: &TraceContext,
    ) -> Result<Empty, ControlError> {
        let PutConfig { name, values } = req;
        validate_config_name(&name).map_err(ControlError::from)?;
        if let Some(bad) = values
            .keys()
            .find(|k| k.is_empty() || k.chars().any(char::is_control))
        {
            return Err(ControlError::invalid(format!(
                "config {name}: invalid key {bad:?}"
            )));
        }
        // A sealed value is checked for its form only: this host may not hold the key.
        for (k, v) in values
            .iter()
            .filter(|(_, v)| trellis_lattice::secret::is_sealed(v))
        {
            trellis_lattice::secret::check_sealed(&name, k, v)
                .map_err(|e| ControlError::invalid(e.to_string()))?;
        }
        self.store.put_config(&name, &values).await?;
        let event = Event::ConfigSet(ConfigSet {
            name,
            keys: values.keys().cloned().collect(),
        });
        self.events.publish(event, Some(trace)).await;
        Ok(Empty {})
    }

    pub async fn delete_config(
        &self,
        req: DeleteConfig,
        trace: &TraceContext,
    ) -> Result<Empty, ControlError> {
        let name = req.name;
        let users: Vec<String> = self
            .store
            .links()
            .await?
            .into_iter()
            .filter(|l| l.source_config.contains(&name) || l.target_config.contains(&name))
            .map(|l| format!("{} -> {} ({})", l.source_id, l.target_id, l.package()))
            .collect();
        if !users.is_empty() {
            return Err(ControlError::conflict(format!(
                "config {name} is used by link(s) {}; delete or change them first",
                users.join(", ")
            )));
        }
        if !self.store.delete_config(&name).await? {
            return Err(ControlError::not_found(format!("no config named {name}")));
        }
        self.events
            .publish(Event::ConfigDeleted(ConfigDeleted { name }), Some(trace))
            .await;
        Ok(Empty {})
    }
}
