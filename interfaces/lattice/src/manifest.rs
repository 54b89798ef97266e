//! Application manifests: the OAM `core.oam.dev/v1beta1` `Application` the deployment manager
//! places on the lattice, and the annotations it marks its resources with.
//!
//! These types mirror the YAML users write (`apiVersion`, `spec.components[].type`,
//! `traits[].type` + `properties`), so a validated manifest round-trips through JSON for
//! storage. They do not validate anything themselves: `trellis-deploy`'s validator walks the
//! raw document so every mistake is reported with its location, then builds these.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::labels::Labels;
use crate::link::{Config, DEFAULT_LINK_NAME};

/// The only `apiVersion` accepted.
pub const API_VERSION: &str = "core.oam.dev/v1beta1";
/// The only `kind` accepted.
pub const KIND: &str = "Application";

/// `metadata.annotations` key holding the application version.
pub const VERSION_ANNOTATION: &str = "version";
/// `metadata.annotations` key holding a human description.
pub const DESCRIPTION_ANNOTATION: &str = "description";
/// `metadata.annotations` key: how long an app's replicas on an unreachable host still count
/// before the manager places them elsewhere (`10m`, `1h`; default 0, at once). Only what
/// has somewhere else to go moves: a daemonscaler, or a spread whose labels only that host
/// carries, has nowhere.
pub const UNREACHABLE_GRACE_ANNOTATION: &str = "unreachable-grace";

/// Annotations the deployment manager puts on every component and provider it starts. A
/// resource without them (or with another app's) is never changed by the manager. They live
/// here so the CLI can show who manages what without depending on the manager.
pub mod annotations {
    /// Who manages the resource; the manager only touches resources with [`MANAGED_BY_VALUE`].
    pub const MANAGED_BY: &str = "trellis.dev/managed-by";
    pub const MANAGED_BY_VALUE: &str = "trellis-deploy";
    /// The application (manifest `metadata.name`) that placed the resource.
    pub const APP: &str = "trellis.dev/app";
    /// The application version that last placed or changed the resource.
    pub const APP_VERSION: &str = "trellis.dev/app-version";
    /// The manifest component (its `name`, not its id) the resource runs.
    pub const COMPONENT: &str = "trellis.dev/component";
}

/// Longest component id (one NATS subject token, see [`crate::id`]).
const MAX_ID_LEN: usize = 128;

/// An OAM application.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: Spec,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The application name: one id token.
    pub name: String,
    /// `version`, `description` and anything else the user keeps there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    pub components: Vec<ComponentSpec>,
}

/// One entry of `spec.components`: a component or a capability provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ComponentKind,
    pub properties: Properties,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traits: Vec<Trait>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentKind {
    /// A WebAssembly component, scaled with replicas on hosts.
    Component,
    /// A capability provider, at most one per host.
    Capability,
}

impl ComponentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Component => "component",
            ComponentKind::Capability => "capability",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Properties {
    /// Where the code comes from: a path, `file:///abs`, `http(s)://...` or `builtin://NAME`,
    /// optionally followed by `@sha256:<64 hex>`.
    pub image: String,
    /// The lattice id; by default `{app}-{component name}` (see [`Manifest::component_id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<ConfigRef>,
    /// Environment variables the component sees (it sees no others).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Host directories it sees, `HOST[:GUEST][:ro|:rw]`; each host must share them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preopens: Vec<String>,
    /// Where its outgoing HTTP requests may go, `[SCHEME://]HOST[:PORT]`.
    #[serde(
        default,
        rename = "allowed-outbound-hosts",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub allowed_outbound_hosts: Vec<String>,
    /// Whether it reads the real wall clock (the Unix epoch otherwise).
    #[serde(
        default,
        rename = "wall-clock",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub wall_clock: bool,
    /// The issuer public key (`A…`) the component must be signed by; hosts refuse others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

impl Properties {
    /// What the component is granted beyond its links, checked.
    pub fn grants(&self) -> crate::error::Result<crate::grants::Grants> {
        let grants = crate::grants::Grants {
            env: self.env.clone(),
            preopens: self
                .preopens
                .iter()
                .map(|p| crate::grants::Preopen::parse(p))
                .collect::<crate::error::Result<_>>()?,
            allowed_outbound_hosts: self.allowed_outbound_hosts.clone(),
            wall_clock: self.wall_clock,
        };
        grants.check()?;
        Ok(grants)
    }
}

/// A reference to named config (`name` only), inline config (`properties`, stored under a
/// generated name), or both (inline config stored under `name`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Config>,
}

/// A trait: how a component is scaled, or what it links to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "properties")]
pub enum Trait {
    #[serde(rename = "spreadscaler")]
    SpreadScaler(SpreadScaler),
    #[serde(rename = "daemonscaler")]
    DaemonScaler(DaemonScaler),
    #[serde(rename = "link")]
    Link(LinkTrait),
}

impl Trait {
    /// The `type` as written in the manifest.
    pub fn type_name(&self) -> &'static str {
        match self {
            Trait::SpreadScaler(_) => "spreadscaler",
            Trait::DaemonScaler(_) => "daemonscaler",
            Trait::Link(_) => "link",
        }
    }
}

/// `instances` replicas in total across hosts, divided over `spread` by weight.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpreadScaler {
    pub instances: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spread: Vec<Spread>,
}

/// `instances` replicas on every host matching any spread's requirements (every host when
/// there is no spread).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonScaler {
    #[serde(default = "one")]
    pub instances: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spread: Vec<Spread>,
}

fn one() -> u32 {
    1
}

impl Default for DaemonScaler {
    fn default() -> Self {
        Self {
            instances: 1,
            spread: Vec::new(),
        }
    }
}

/// A share of a scaler's hosts: those whose labels match `requirements`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spread {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requirements: Labels,
    /// Relative share of the instances; [`DEFAULT_WEIGHT`] when absent. Ignored by daemonscaler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// The weight of a spread that gives none (as in wadm), so unweighted spreads share equally.
pub const DEFAULT_WEIGHT: u32 = 100;

impl Spread {
    pub fn weight(&self) -> u32 {
        self.weight.unwrap_or(DEFAULT_WEIGHT)
    }
}

/// Calls from this component to `namespace:package/{interfaces}` go to `target`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkTrait {
    pub target: LinkTarget,
    pub namespace: String,
    pub package: String,
    pub interfaces: Vec<String>,
    /// The link name; [`DEFAULT_LINK_NAME`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<LinkSource>,
}

impl LinkTrait {
    pub fn link_name(&self) -> &str {
        self.name.as_deref().unwrap_or(DEFAULT_LINK_NAME)
    }

    /// `namespace:package`
    pub fn wit_package(&self) -> String {
        format!("{}:{}", self.namespace, self.package)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkTarget {
    /// The name of a component in this application.
    pub name: String,
    /// Config handed to the target for this link (e.g. a bucket).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<ConfigRef>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkSource {
    /// Config handed to the source for this link (e.g. an HTTP route).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<ConfigRef>,
}

/// Where in a component a config reference sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigSite {
    /// `properties.config`
    Properties,
    /// `traits[trait_index].properties.source.config`
    LinkSource { trait_index: usize },
    /// `traits[trait_index].properties.target.config`
    LinkTarget { trait_index: usize },
}

/// A config reference with the name it resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigUse<'a> {
    pub site: ConfigSite,
    /// Position in the `config` list at `site`.
    pub index: usize,
    /// The given name, or `{app}-{component}-{n}` for the n-th unnamed inline config (from 1).
    pub name: String,
    /// Inline values the application owns; `None` for a reference to existing named config.
    pub properties: Option<&'a Config>,
}

impl Manifest {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// `metadata.annotations.version`
    pub fn version(&self) -> Option<&str> {
        self.metadata
            .annotations
            .get(VERSION_ANNOTATION)
            .map(String::as_str)
    }

    /// `metadata.annotations.description`
    pub fn description(&self) -> Option<&str> {
        self.metadata
            .annotations
            .get(DESCRIPTION_ANNOTATION)
            .map(String::as_str)
    }

    pub fn component(&self, name: &str) -> Option<&ComponentSpec> {
        self.spec.components.iter().find(|c| c.name == name)
    }

    /// The lattice id of a component: `properties.id`, or `{app}-{name}` made into a valid id
    /// token, so two apps with a component of the same name do not collide.
    pub fn component_id(&self, component: &ComponentSpec) -> String {
        match &component.properties.id {
            Some(id) => id.clone(),
            None => sanitize_id(&format!("{}-{}", self.metadata.name, component.name)),
        }
    }

    /// Every config reference of `component` in document order (`properties.config`, then
    /// each link's source and target config), with the config name each resolves to.
    /// References with neither name nor properties (rejected by validation) are skipped.
    pub fn config_uses<'a>(&self, component: &'a ComponentSpec) -> Vec<ConfigUse<'a>> {
        let mut sites: Vec<(ConfigSite, &'a [ConfigRef])> =
            vec![(ConfigSite::Properties, &component.properties.config)];
        for (trait_index, t) in component.traits.iter().enumerate() {
            if let Trait::Link(link) = t {
                if let Some(source) = &link.source {
                    sites.push((ConfigSite::LinkSource { trait_index }, &source.config));
                }
                sites.push((ConfigSite::LinkTarget { trait_index }, &link.target.config));
            }
        }
        let mut unnamed = 0;
        let mut uses = Vec::new();
        for (site, refs) in sites {
            for (index, r) in refs.iter().enumerate() {
                let name = match (&r.name, &r.properties) {
                    (Some(name), _) => name.clone(),
                    (None, Some(_)) => {
                        unnamed += 1;
                        sanitize_id(&format!(
                            "{}-{}-{unnamed}",
                            self.metadata.name, component.name
                        ))
                    }
                    (None, None) => continue,
                };
                uses.push(ConfigUse {
                    site,
                    index,
                    name,
                    properties: r.properties.as_ref(),
                });
            }
        }
        uses
    }

    /// The config names used at one site of a component, in order.
    pub fn config_names(&self, component: &ComponentSpec, site: ConfigSite) -> Vec<String> {
        self.config_uses(component)
            .into_iter()
            .filter(|u| u.site == site)
            .map(|u| u.name)
            .collect()
    }
}

impl ComponentSpec {
    /// The component's spreadscaler or daemonscaler (validation allows at most one).
    pub fn scaler(&self) -> Option<&Trait> {
        self.traits
            .iter()
            .find(|t| matches!(t, Trait::SpreadScaler(_) | Trait::DaemonScaler(_)))
    }

    /// The component's link traits with their index in `traits`.
    pub fn links(&self) -> impl Iterator<Item = (usize, &LinkTrait)> {
        self.traits.iter().enumerate().filter_map(|(i, t)| match t {
            Trait::Link(l) => Some((i, l)),
            _ => None,
        })
    }
}

/// Turns any text into a valid id token: characters other than letters, digits, `-` and `_`
/// become `-`, runs of `-` collapse, and the result is cut to the maximum id length.
pub fn sanitize_id(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            c
        } else {
            '-'
        };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    let trimmed = out.trim_matches('-');
    let mut id: String = trimmed.chars().take(MAX_ID_LEN).collect();
    if id.is_empty() {
        id.push('_');
    }
    id
}

#[cfg(test)]
mod tests;
