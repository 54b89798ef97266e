//! Links, named config and capability providers.

use std::collections::BTreeMap;

use crate::control::{
    ComponentAuction, DeleteConfig, DeleteLink, Empty, ProviderStartedReply, PutConfig, PutLink,
    RetargetLink, StartProvider, StopProvider,
};
use crate::error::{Error, ErrorKind, Result};
use crate::id;
use crate::kv::LatticeStore;
use crate::link::{Config, Link, LinkKey};

use super::{LatticeClient, Placement};

fn no_host(err: Error, lattice: &str) -> Error {
    match err {
        Error::NoResponders(_) => Error::control(
            ErrorKind::Unavailable,
            format!(
                "no host in lattice `{lattice}` answers; links and config are written through a host (start one with `trellis up` or `trellis-host`)"
            ),
        ),
        other => other,
    }
}

impl LatticeClient {
    /// The lattice's link and config buckets, for reading.
    pub async fn store(&self) -> Result<&LatticeStore> {
        self.store
            .get_or_try_init(|| LatticeStore::open(&self.nats, &self.subjects))
            .await
    }

    pub async fn links(&self) -> Result<Vec<Link>> {
        let mut links = self.store().await?.links().await?;
        links.sort_by_key(|a| a.key());
        Ok(links)
    }

    /// Puts a link (checked by a host against what the source imports).
    pub async fn put_link(&self, link: Link) -> Result<Link> {
        link.validate()?;
        self.request(
            self.subjects.link_put(),
            &PutLink { link },
            self.config.request_timeout,
        )
        .await
        .map_err(|e| no_host(e, self.lattice()))
    }

    /// Points an existing link at another target in one step.
    pub async fn retarget_link(
        &self,
        key: LinkKey,
        target_id: &str,
        target_config: Option<Vec<String>>,
    ) -> Result<Link> {
        id::validate_component_id(target_id)?;
        self.request(
            self.subjects.link_retarget(),
            &RetargetLink {
                key,
                target_id: target_id.to_string(),
                target_config,
            },
            self.config.request_timeout,
        )
        .await
        .map_err(|e| no_host(e, self.lattice()))
    }

    pub async fn delete_link(&self, key: LinkKey) -> Result<()> {
        let _: Empty = self
            .request(
                self.subjects.link_del(),
                &DeleteLink { key },
                self.config.request_timeout,
            )
            .await
            .map_err(|e| no_host(e, self.lattice()))?;
        Ok(())
    }

    pub async fn named_config(&self, name: &str) -> Result<Option<Config>> {
        self.store().await?.config(name).await
    }

    pub async fn named_configs(&self) -> Result<BTreeMap<String, Config>> {
        self.store().await?.configs().await
    }

    pub async fn put_config(&self, name: &str, values: Config) -> Result<()> {
        crate::link::validate_config_name(name)?;
        let _: Empty = self
            .request(
                self.subjects.config_put(),
                &PutConfig {
                    name: name.to_string(),
                    values,
                },
                self.config.request_timeout,
            )
            .await
            .map_err(|e| no_host(e, self.lattice()))?;
        Ok(())
    }

    pub async fn delete_config(&self, name: &str) -> Result<()> {
        let _: Empty = self
            .request(
                self.subjects.config_del(),
                &DeleteConfig {
                    name: name.to_string(),
                },
                self.config.request_timeout,
            )
            .await
            .map_err(|e| no_host(e, self.lattice()))?;
        Ok(())
    }

    /// Starts a provider on the given host or on the best host an auction finds; waits until
    /// the host reports it started (or failed).
    pub async fn start_provider(
        &self,
        placement: &Placement,
        req: &StartProvider,
    ) -> Result<ProviderStartedReply> {
        id::validate_component_id(&req.provider_id)?;
        let host_id = match placement {
            Placement::Host(h) => self.resolve_host(h).await?,
            Placement::Constraints(constraints) => {
                self.auction_best(&ComponentAuction {
                    component_id: req.provider_id.clone(),
                    image: req.image.clone(),
                    constraints: constraints.clone(),
                })
                .await?
            }
        };
        self.request(
            self.subjects.provider_start(&host_id),
            req,
            self.config.scale_timeout,
        )
        .await
        .map_err(|e| super::hosts::unknown_host(e, &host_id))
    }

    pub async fn stop_provider(&self, host_id: &str, provider_id: &str) -> Result<()> {
        let _: Empty = self
            .request(
                self.subjects.provider_stop(host_id),
                &StopProvider {
                    provider_id: provider_id.to_string(),
                },
                self.config.request_timeout,
            )
            .await
            .map_err(|e| super::hosts::unknown_host(e, host_id))?;
        Ok(())
    }
}
