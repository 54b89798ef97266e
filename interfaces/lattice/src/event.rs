//! Lattice events: CloudEvents 1.0 JSON on `trellis.evt.{lattice}.{type}`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::inventory::{HostInventory, ProviderHealth};
use crate::labels::Labels;

/// The short type of the event the deployment manager publishes when an app's status changes.
pub const APP_STATUS_EVENT: &str = "app_status";

/// Prefix of the CloudEvents `type` attribute; the subject carries the short name.
pub const TYPE_PREFIX: &str = "dev.trellis.lattice.";

/// The CloudEvents 1.0 envelope (structured JSON mode).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    pub id: String,
    /// The host (or manager) that published the event.
    pub source: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub time: DateTime<Utc>,
    pub datacontenttype: String,
    /// Extension attribute: the lattice the event belongs to.
    pub lattice: String,
    /// Extension attribute (CloudEvents distributed tracing): the request that caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Extension attributes: where the event stands among everything its publisher sent
    /// (see [`Sequence`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trellisepoch: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trellisseq: Option<u64>,
    pub data: serde_json::Value,
}

/// Where an event, or an inventory, stands among everything one publisher sent: the
/// publisher's incarnation (when it started, in Unix nanoseconds) and how many events it had
/// published. A reader that took in an event can so tell an inventory read before it (older
/// than what it knows) from one read after.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Sequence {
    pub epoch: u64,
    pub n: u64,
}

impl CloudEvent {
    pub fn sequence(&self) -> Option<Sequence> {
        Some(Sequence {
            epoch: self.trellisepoch?,
            n: self.trellisseq?,
        })
    }

    /// The short event type (`host_started`), as used in subjects.
    pub fn short_type(&self) -> &str {
        self.ty.strip_prefix(TYPE_PREFIX).unwrap_or(&self.ty)
    }

    pub fn parse(payload: &[u8]) -> Result<Self> {
        serde_json::from_slice(payload).map_err(|e| Error::malformed("cloud event", e))
    }

    /// The typed event inside, or an error for unknown types and bad payloads.
    pub fn event(&self) -> Result<Event> {
        Event::from_parts(self.short_type(), self.data.clone())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStarted {
    pub host_id: String,
    pub friendly_name: String,
    pub labels: Labels,
    pub version: String,
    /// True when the host announces itself again after a reconnect to NATS.
    #[serde(default)]
    pub reconnected: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStopped {
    pub host_id: String,
    pub reason: String,
}

pub use crate::control::ComponentScaled;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentScaleFailed {
    pub host_id: String,
    pub component_id: String,
    pub image: String,
    pub replicas: u32,
    pub reason: String,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelsChanged {
    pub host_id: String,
    pub labels: Labels,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStarted {
    pub host_id: String,
    pub provider_id: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStopped {
    pub host_id: String,
    pub provider_id: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStartFailed {
    pub host_id: String,
    pub provider_id: String,
    pub image: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderHealthChanged {
    pub host_id: String,
    pub provider_id: String,
    pub health: ProviderHealth,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkSet {
    pub link: crate::link::Link,
    /// The target before, when this put retargeted an existing link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_target: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkDeleted {
    pub key: crate::link::LinkKey,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigSet {
    pub name: String,
    /// Keys only: config values may be secrets.
    pub keys: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigDeleted {
    pub name: String,
}

/// Every event of the protocol, by type.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    HostStarted(HostStarted),
    HostStopped(HostStopped),
    HostHeartbeat(Box<HostInventory>),
    ComponentScaled(ComponentScaled),
    ComponentScaleFailed(ComponentScaleFailed),
    LabelsChanged(LabelsChanged),
    ProviderStarted(ProviderStarted),
    ProviderStopped(ProviderStopped),
    ProviderStartFailed(ProviderStartFailed),
    ProviderHealthChanged(ProviderHealthChanged),
    LinkSet(LinkSet),
    LinkDeleted(LinkDeleted),
    ConfigSet(ConfigSet),
    ConfigDeleted(ConfigDeleted),
    /// An application's status changed (published by the deployment manager).
    AppStatus(Box<crate::app::AppStatus>),
    /// An event type this version does not know (from a newer peer); kept as raw JSON.
    Other {
        ty: String,
        data: serde_json::Value,
    },
}

macro_rules! event_types {
    ($($variant:ident => $name:literal),* $(,)?) => {
        impl Event {
            /// The short type name, as used in the subject.
            pub fn event_type(&self) -> &str {
                match self {
                    $(Event::$variant(_) => $name,)*
                    Event::Other { ty, .. } => ty,
                }
            }

            fn data(&self) -> Result<serde_json::Value> {
                match self {
                    $(Event::$variant(v) => serde_json::to_value(v),)*
                    Event::Other { data, .. } => Ok(data.clone()),
                }
                .map_err(|e| Error::malformed("event", e))
            }

            /// Builds a typed event from its short type and data.
            pub fn from_parts(ty: &str, data: serde_json::Value) -> Result<Self> {
                match ty {
                    $($name => serde_json::from_value(data)
                        .map(Event::$variant)
                        .map_err(|e| Error::malformed(concat!($name, " event"), e)),)*
                    other => Ok(Event::Other { ty: other.to_string(), data }),
                }
            }
        }

        /// Short names of every event type this crate models.
        pub const EVENT_TYPES: &[&str] = &[$($name),*];
    };
}

event_types! {
    HostStarted => "host_started",
    HostStopped => "host_stopped",
    HostHeartbeat => "host_heartbeat",
    ComponentScaled => "component_scaled",
    ComponentScaleFailed => "component_scale_failed",
    LabelsChanged => "labels_changed",
    ProviderStarted => "provider_started",
    ProviderStopped => "provider_stopped",
    ProviderStartFailed => "provider_start_failed",
    ProviderHealthChanged => "provider_health_changed",
    LinkSet => "link_set",
    LinkDeleted => "link_deleted",
    ConfigSet => "config_set",
    ConfigDeleted => "config_deleted",
    AppStatus => "app_status",
}

impl Event {
    /// Wraps the event in a CloudEvents envelope.
    pub fn to_cloud_event(
        &self,
        source: &str,
        lattice: &str,
        traceparent: Option<String>,
        seq: Option<Sequence>,
    ) -> Result<CloudEvent> {
        Ok(CloudEvent {
            specversion: "1.0".to_string(),
            id: uuid::Uuid::now_v7().to_string(),
            source: source.to_string(),
            ty: format!("{TYPE_PREFIX}{}", self.event_type()),
            time: Utc::now(),
            datacontenttype: "application/json".to_string(),
            lattice: lattice.to_string(),
            traceparent,
            trellisepoch: seq.map(|s| s.epoch),
            trellisseq: seq.map(|s| s.n),
            data: self.data()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trip() {
        let ev = Event::LabelsChanged(LabelsChanged {
            host_id: "NHOST".into(),
            labels: [("tier".to_string(), "edge".to_string())].into(),
        });
        let ce = ev.to_cloud_event("NHOST", "default", None, None).unwrap();
        let json = serde_json::to_string(&ce).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["type"], "dev.trellis.lattice.labels_changed");
        assert_eq!(v["data"]["labels"]["tier"], "edge");
        let back = CloudEvent::parse(json.as_bytes()).unwrap();
        assert_eq!(back.short_type(), "labels_changed");
        assert_eq!(back.event().unwrap(), ev);
    }

    #[test]
    fn app_status_is_typed() {
        let st = crate::app::AppStatus::pending("a", None, 1);
        let ev = Event::AppStatus(Box::new(st));
        assert_eq!(ev.event_type(), APP_STATUS_EVENT);
        let ce = ev.to_cloud_event("mgr", "default", None, None).unwrap();
        assert_eq!(ce.event().unwrap(), ev);
    }

    #[test]
    fn unknown_types_are_kept_and_bad_data_is_an_error() {
        let ev = Event::from_parts("app_deployed", serde_json::json!({"a": 1})).unwrap();
        assert_eq!(ev.event_type(), "app_deployed");
        let err = Event::from_parts("host_stopped", serde_json::json!({"x": 1})).unwrap_err();
        assert!(err.to_string().contains("host_stopped"), "{err}");
    }
}
