//! What passes between a host and the capability providers it supervises.
//!
//! A provider serves its WIT interfaces with wRPC under [`crate::Subjects::rpc_prefix`] of its
//! id, in the queue group of its id, exactly like a component; it reads the links that
//! target it and their config from the lattice's key-value buckets
//! ([`crate::kv::LatticeStore`]); it answers health checks on
//! [`crate::Subjects::provider_health`]. External providers get their settings from the
//! environment variables in [`env`]; built-in ones get the same settings in-process.

use serde::{Deserialize, Serialize};

/// Environment variables a host sets for an external provider process.
pub mod env {
    pub const NATS_URL: &str = "TRELLIS_NATS_URL";
    pub const NATS_CREDS: &str = "TRELLIS_NATS_CREDS";
    pub const NATS_NKEY: &str = "TRELLIS_NATS_NKEY";
    pub const NATS_USER: &str = "TRELLIS_NATS_USER";
    pub const NATS_PASSWORD: &str = "TRELLIS_NATS_PASSWORD";
    pub const NATS_TOKEN: &str = "TRELLIS_NATS_TOKEN";
    /// TLS files of the host's NATS connection (absolute paths).
    pub const NATS_TLS_CA: &str = "TRELLIS_NATS_TLS_CA";
    pub const NATS_TLS_CERT: &str = "TRELLIS_NATS_TLS_CERT";
    pub const NATS_TLS_KEY: &str = "TRELLIS_NATS_TLS_KEY";
    pub const LATTICE: &str = "TRELLIS_LATTICE";
    /// The JetStream domain of the lattice's state, when it is not the local one.
    pub const JS_DOMAIN: &str = "TRELLIS_JS_DOMAIN";
    /// The host's saved copy of the links and config it uses (read-only for the provider).
    pub const STATE_COPY: &str = "TRELLIS_STATE_COPY";
    pub const PROVIDER_ID: &str = "TRELLIS_PROVIDER_ID";
    pub const HOST_ID: &str = "TRELLIS_HOST_ID";
    /// The host's process id; set when a host started the provider (which then stops when the
    /// host's pipe on its stdin closes).
    pub const HOST_PID: &str = "TRELLIS_HOST_PID";
    /// Comma-separated names of the provider's own named configs, merged in order.
    pub const CONFIG: &str = "TRELLIS_PROVIDER_CONFIG";
    pub const LOG: &str = "TRELLIS_LOG";
    /// The lattice's secrets key file, when the host holds one (see [`crate::secret`]).
    pub const SECRETS_KEY_FILE: &str = "TRELLIS_SECRETS_KEY_FILE";
    /// The provider's name from its image (the executable's file name): the executable
    /// itself may run from a content-addressed copy.
    pub const NAME: &str = "TRELLIS_PROVIDER_NAME";
}

/// A provider's answer to a health check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    pub healthy: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl HealthReport {
    pub fn healthy() -> Self {
        Self {
            healthy: true,
            message: None,
        }
    }

    pub fn unhealthy(message: impl Into<String>) -> Self {
        Self {
            healthy: false,
            message: Some(message.into()),
        }
    }
}
