//! Hosts, labels, inventory, components: the control interface.

use crate::control::{
    AuctionOffer, ComponentAuction, ComponentScaled, DeleteLabel, Empty, GetHost, PutLabel,
    ScaleComponent, StopHost,
};
use crate::error::{Error, ErrorKind, Result};
use crate::id;
use crate::inventory::{HostInventory, HostSummary};
use crate::labels::{self, Labels};

use super::LatticeClient;

/// Where to start a component: one host, or any host matching these labels.
#[derive(Clone, Debug)]
pub enum Placement {
    Host(String),
    Constraints(Labels),
}

impl LatticeClient {
    /// Every host that answers a ping, sorted by friendly name.
    pub async fn hosts(&self) -> Result<Vec<HostSummary>> {
        let mut hosts: Vec<HostSummary> =
            self.collect(self.subjects.host_ping(), &Empty {}).await?;
        hosts.sort_by(|a, b| a.friendly_name.cmp(&b.friendly_name).then(a.id.cmp(&b.id)));
        hosts.dedup_by(|a, b| a.id == b.id);
        Ok(hosts)
    }

    /// Resolves a host given by id or by friendly name.
    pub async fn resolve_host(&self, host: &str) -> Result<String> {
        if id::validate_host_id(host).is_ok() {
            return Ok(host.to_string());
        }
        let hosts = self.hosts().await?;
        let matching: Vec<_> = hosts
            .iter()
            .filter(|h| h.friendly_name == host || h.id.starts_with(host))
            .collect();
        match matching.as_slice() {
            [one] => Ok(one.id.clone()),
            [] => Err(Error::invalid(
                "host",
                host,
                format!(
                    "no such host in lattice `{}` (see `trellis get hosts`)",
                    self.lattice()
                ),
            )),
            _ => Err(Error::invalid(
                "host",
                host,
                "matches several hosts; give the full host id",
            )),
        }
    }

    /// The full inventory of one host (read page by page when it does not fit in one message).
    pub async fn inventory(&self, host_id: &str) -> Result<HostInventory> {
        let first = self.inventory_page(host_id, 0).await?;
        let Some(page) = first.page.filter(|p| p.count > 1) else {
            return Ok(first);
        };
        let mut pages = vec![first];
        for index in 1..page.count {
            pages.push(self.inventory_page(host_id, index).await?);
        }
        HostInventory::merge(pages).ok_or_else(|| Error::malformed("inventory", "no pages"))
    }

    /// One page of a host's inventory.
    pub async fn inventory_page(&self, host_id: &str, page: u32) -> Result<HostInventory> {
        self.request(
            self.subjects.host_get(host_id),
            &GetHost { page },
            self.config.request_timeout,
        )
        .await
        .map_err(|e| unknown_host(e, host_id))
    }

    /// A host's live per-component figures (`trellis top`).
    pub async fn host_stats(&self, host_id: &str) -> Result<crate::stats::HostStats> {
        // A host id becomes a subject token: nothing else may reach the subject.
        id::validate_host_id(host_id)?;
        self.request(
            self.subjects.host_stats(host_id),
            &Empty {},
            self.config.request_timeout,
        )
        .await
        .map_err(|e| unknown_host(e, host_id))
    }

    /// The hosts the lattice's presence stream holds as live; `None` when it cannot tell
    /// (no JetStream, out of reach).
    pub async fn live_host_ids(&self) -> Option<std::collections::BTreeSet<String>> {
        crate::presence::live_host_ids(&self.nats, &self.subjects).await
    }

    /// The inventories of every host.
    pub async fn inventories(&self) -> Result<Vec<HostInventory>> {
        let hosts = self.hosts().await?;
        let all = futures::future::join_all(hosts.iter().map(|h| self.inventory(&h.id))).await;
        // A host that stops between the ping and the inventory request is simply gone.
        Ok(all.into_iter().filter_map(Result::ok).collect())
    }

    pub async fn put_label(&self, host_id: &str, key: &str, value: &str) -> Result<Labels> {
        labels::validate_user_label(key, value)?;
        self.request(
            self.subjects.label_put(host_id),
            &PutLabel {
                key: key.to_string(),
                value: value.to_string(),
            },
            self.config.request_timeout,
        )
        .await
        .map_err(|e| unknown_host(e, host_id))
    }

    pub async fn delete_label(&self, host_id: &str, key: &str) -> Result<Labels> {
        labels::validate_user_label(key, "")?;
        self.request(
            self.subjects.label_del(host_id),
            &DeleteLabel {
                key: key.to_string(),
            },
            self.config.request_timeout,
        )
        .await
        .map_err(|e| unknown_host(e, host_id))
    }

    /// Asks a host to stop; it finishes in-flight work first.
    pub async fn stop_host(&self, host_id: &str, timeout_ms: Option<u64>) -> Result<()> {
        let _: Empty = self
            .request(
                self.subjects.host_stop(host_id),
                &StopHost { timeout_ms },
                self.config.request_timeout,
            )
            .await
            .map_err(|e| unknown_host(e, host_id))?;
        Ok(())
    }

    /// Starts, rescales or stops (`replicas: 0`) a component on one host, and waits until it
    /// is done (fetched, compiled, serving) or failed.
    pub async fn scale_component(
        &self,
        host_id: &str,
        req: &ScaleComponent,
    ) -> Result<ComponentScaled> {
        id::validate_component_id(&req.component_id)?;
        self.descriptions
            .lock()
            .map(|mut d| d.remove(&req.component_id))
            .ok();
        self.request(
            self.subjects.component_scale(host_id),
            req,
            self.config.scale_timeout,
        )
        .await
        .map_err(|e| unknown_host(e, host_id))
    }

    /// Offers from every host whose labels match.
    pub async fn auction(&self, req: &ComponentAuction) -> Result<Vec<AuctionOffer>> {
        self.collect(self.subjects.component_auction(), req).await
    }

    /// Starts a component on the given host, or on the best host an auction finds: one that
    /// does not run it yet, then the one running the fewest components.
    pub async fn start_component(
        &self,
        placement: &Placement,
        req: &ScaleComponent,
    ) -> Result<ComponentScaled> {
        let host_id = match placement {
            Placement::Host(h) => self.resolve_host(h).await?,
            Placement::Constraints(constraints) => {
                self.auction_best(&ComponentAuction {
                    component_id: req.component_id.clone(),
                    image: req.image.clone(),
                    constraints: constraints.clone(),
                })
                .await?
            }
        };
        self.scale_component(&host_id, req).await
    }

    /// The best offer of an auction: a host that does not run the id yet, then the one
    /// running the fewest components.
    pub async fn auction_best(&self, req: &ComponentAuction) -> Result<String> {
        let offers = self.auction(req).await?;
        offers
            .iter()
            .min_by_key(|o| (o.already_running, o.component_count, o.host_id.clone()))
            .map(|o| o.host_id.clone())
            .ok_or_else(|| no_match(self.lattice(), &req.constraints))
    }
}

fn no_match(lattice: &str, constraints: &Labels) -> Error {
    let wanted = if constraints.is_empty() {
        "any labels".to_string()
    } else {
        constraints
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Error::control(
        ErrorKind::NotFound,
        format!("no host in lattice `{lattice}` matches {wanted}"),
    )
}

pub(super) fn unknown_host(err: Error, host_id: &str) -> Error {
    match err {
        Error::NoResponders(_) => Error::control(
            ErrorKind::NotFound,
            format!(
                "invalid host {host_id:?}: no such host answers in this lattice (see `trellis get hosts`)"
            ),
        ),
        other => other,
    }
}
