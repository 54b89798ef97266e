//! Control-interface requests and replies (JSON over NATS request/reply).
//!
//! Every reply is a [`Reply`]: `{ "ok": true, "data": ... }` or
//! `{ "ok": false, "error": "...", "kind": "not_found" }`. Servers answer through
//! [`crate::server`], never by building one by hand.

use std::collections::BTreeMap;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{ControlError, Error, ErrorKind, Result};
use crate::labels::Labels;
use crate::value::FunctionSignature;

/// The envelope of every control reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply<T> {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What kind of failure `error` is (absent from servers that predate kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ErrorKind>,
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
}

impl<T> Reply<T> {
    pub(crate) fn from_result(result: std::result::Result<T, ControlError>) -> Self {
        match result {
            Ok(data) => Self {
                ok: true,
                error: None,
                kind: None,
                data: Some(data),
            },
            Err(e) => Self {
                ok: false,
                error: Some(e.message),
                kind: Some(e.kind),
                data: None,
            },
        }
    }

    /// The data of a successful reply, or the server's error.
    pub fn into_result(self) -> Result<T> {
        if self.ok {
            self.data
                .ok_or_else(|| Error::malformed("control reply", "ok reply without data"))
        } else {
            Err(Error::Control(ControlError::new(
                self.kind.unwrap_or(ErrorKind::Refused),
                self.error
                    .unwrap_or_else(|| "request refused without a reason".to_string()),
            )))
        }
    }
}

impl<T: DeserializeOwned> Reply<T> {
    /// Parses a reply payload.
    pub fn parse(payload: &[u8]) -> Result<Self> {
        serde_json::from_slice(payload).map_err(|e| Error::malformed("control reply", e))
    }
}

/// An empty `data` for replies that carry nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// Parses a control request payload, naming the request type in the error.
pub fn parse_request<T: DeserializeOwned>(what: &str, payload: &[u8]) -> Result<T> {
    serde_json::from_slice(payload).map_err(|e| Error::malformed(what, e))
}

/// Start, rescale or stop (`replicas: 0`) a component on one host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleComponent {
    pub component_id: String,
    /// Where the component comes from: a path, `file://`, `http://` or `https://` URL,
    /// optionally followed by `@sha256:<hex>` (see the host's image reference rules).
    /// May be empty when only changing the replicas of a running component.
    #[serde(default)]
    pub image: String,
    pub replicas: u32,
    /// Named configs the component reads through `wasi:config/store`, merged in order (later
    /// names win). Each must exist when the component starts; changes reach it at once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<String>,
    /// Per-start override of the host's default memory cap, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory_bytes: Option<u64>,
    /// Per-start override of the host's default invocation time limit, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// What the component may reach beyond its links (none by default); a full start
    /// request (with the image) sets them, a bare rescale keeps them.
    #[serde(default, skip_serializing_if = "crate::grants::Grants::is_empty")]
    pub grants: crate::grants::Grants,
    /// The issuer public key (`A…`) the component must be signed by; the host refuses it
    /// otherwise, with or without an issuer policy of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

/// The result of a scale request, and the `component_scaled` event that announces it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentScaled {
    pub host_id: String,
    pub component_id: String,
    pub image: String,
    pub digest: String,
    /// 0 when the component was stopped.
    pub replicas: u32,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Where the compiled code of a component this request loaded came from (absent when
    /// nothing was loaded: a rescale, a stop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compiled: Option<CompiledFrom>,
}

/// Where a host got a component's compiled code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompiledFrom {
    /// Another running copy on the same host.
    Memory,
    /// The host's own compiled-artifact cache on disk.
    Disk,
    /// An artifact another host of the lattice compiled and signed.
    Lattice,
    /// Compiled by this host now.
    Compiled,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutLabel {
    pub key: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteLabel {
    pub key: String,
}

/// A host's inventory, or one page of it (see `HostInventory::paged`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetHost {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub page: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Stop a host. In-flight invocations get up to `timeout_ms` to finish.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopHost {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// Which hosts could take this component?
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentAuction {
    pub component_id: String,
    #[serde(default)]
    pub image: String,
    /// Labels a host must carry (exact match).
    #[serde(default)]
    pub constraints: Labels,
}

/// A host's offer in an auction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionOffer {
    pub host_id: String,
    pub friendly_name: String,
    pub labels: Labels,
    pub component_count: usize,
    /// The host already runs a component with this id.
    pub already_running: bool,
}

/// Ask a host running `component_id` for the signatures of its exports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescribeComponent {
    pub component_id: String,
}

/// The exported functions of a component, with their types.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComponentDescription {
    pub component_id: String,
    pub image: String,
    pub digest: String,
    pub host_id: String,
    pub functions: Vec<FunctionSignature>,
    /// Everything the component imports (`wasi:keyvalue/atomics@0.2.0-draft`, ...).
    #[serde(default)]
    pub imports: Vec<String>,
}

impl ComponentDescription {
    /// Finds an exported function by `name` (`greet`) or
    /// `instance#name` (`example:greeter/greet#greet`).
    pub fn function(&self, name: &str) -> Result<&FunctionSignature> {
        let exact = self.functions.iter().find(|f| f.qualified_name() == name);
        if let Some(f) = exact {
            return Ok(f);
        }
        let by_name: Vec<_> = self.functions.iter().filter(|f| f.name == name).collect();
        match by_name.as_slice() {
            [one] => Ok(one),
            [] => Err(Error::invalid(
                "function",
                name,
                format!(
                    "component {} exports no such function; it exports: {}",
                    self.component_id,
                    self.functions
                        .iter()
                        .map(FunctionSignature::qualified_name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
            many => Err(Error::invalid(
                "function",
                name,
                format!(
                    "ambiguous; qualify it with its interface: {}",
                    many.iter()
                        .map(|f| f.qualified_name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
}

/// Start a capability provider on one host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartProvider {
    pub provider_id: String,
    /// `builtin://NAME`, or an executable: a path, `file://`, `http(s)://` URL, optionally
    /// pinned with `@sha256:<hex>`.
    pub image: String,
    /// The provider's own named configs, merged in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStartedReply {
    pub host_id: String,
    pub provider_id: String,
    pub image: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopProvider {
    pub provider_id: String,
}

/// Put a link; an existing link with the same identity is replaced (retargeted) at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutLink {
    pub link: crate::link::Link,
}

/// Point an existing link at another target, optionally with other target config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetargetLink {
    pub key: crate::link::LinkKey,
    pub target_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_config: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteLink {
    pub key: crate::link::LinkKey,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutConfig {
    pub name: String,
    pub values: crate::link::Config,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteConfig {
    pub name: String,
}
