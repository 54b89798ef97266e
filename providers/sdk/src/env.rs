//! Where a provider runs: its NATS connection, lattice, own id, host and config names.

use std::time::Duration;

use trellis_lattice::provider::env;
use trellis_lattice::client::{NatsOptions, NatsTls, Violations};
use trellis_lattice::{id, NatsAuth, Subjects};

use crate::error::{Error, Result};

/// How long an external provider waits for NATS at start before giving up (its host
/// restarts it with back-off).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The settings every provider runs with, built in or external.
#[derive(Clone, Debug)]
pub struct ProviderEnv {
    /// The lattice's NATS connection (the host's own for built-ins).
    pub nats: async_nats::Client,
    pub lattice: String,
    /// The JetStream domain of the lattice's state (a host on a leaf node passes the hub's).
    pub js_domain: Option<String>,
    /// The host's saved copy of the links and config it uses, read while the lattice store
    /// is unreachable.
    pub state_copy: Option<std::path::PathBuf>,
    /// The id the provider serves under (`trellis.rpc.{lattice}.{provider_id}`).
    pub provider_id: String,
    /// The host that started this instance.
    pub host_id: String,
    /// The provider's own named configs, merged in order (later names win).
    pub config_names: Vec<String>,
    /// The lattice's secrets key, when the host holds one: opens sealed values of the
    /// provider's own and link target configs.
    pub secrets_key: Option<std::sync::Arc<trellis_lattice::secret::SecretsKey>>,
}

fn var(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn required(name: &'static str) -> Result<String> {
    var(name).ok_or(Error::Env {
        name,
        reason: "not set (a Trellis host sets it when it starts the provider)".into(),
    })
}

fn invalid(name: &'static str, err: impl std::fmt::Display) -> Error {
    Error::Env {
        name,
        reason: err.to_string(),
    }
}

/// Splits the comma-separated config names of [`env::CONFIG`].
pub fn parse_config_names(value: &str) -> Result<Vec<String>> {
    value
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| {
            trellis_lattice::link::validate_config_name(n)
                .map(|()| n.to_string())
                .map_err(|e| invalid(env::CONFIG, e))
        })
        .collect()
}

impl ProviderEnv {
    /// A built-in provider, on the host's own NATS connection.
    pub fn builtin(
        nats: async_nats::Client,
        lattice: impl Into<String>,
        provider_id: impl Into<String>,
        host_id: impl Into<String>,
        config_names: Vec<String>,
    ) -> Self {
        Self {
            nats,
            lattice: lattice.into(),
            js_domain: None,
            state_copy: None,
            provider_id: provider_id.into(),
            host_id: host_id.into(),
            config_names,
            secrets_key: None,
        }
    }

    /// An external provider process: reads the `TRELLIS_*` variables its host sets
    /// ([`trellis_lattice::provider::env`]) and connects to NATS with the credentials given
    /// there. Once connected the client reconnects forever.
    pub async fn from_env() -> Result<Self> {
        let url = required(env::NATS_URL)?;
        let lattice = var(env::LATTICE).unwrap_or_else(|| trellis_lattice::DEFAULT_LATTICE.into());
        id::validate_lattice(&lattice).map_err(|e| invalid(env::LATTICE, e))?;
        let js_domain = var(env::JS_DOMAIN);
        if let Some(domain) = &js_domain {
            id::validate_js_domain(domain).map_err(|e| invalid(env::JS_DOMAIN, e))?;
        }
        let provider_id = required(env::PROVIDER_ID)?;
        id::validate_component_id(&provider_id).map_err(|e| invalid(env::PROVIDER_ID, e))?;
        let host_id = required(env::HOST_ID)?;
        id::validate_token("host id", &host_id).map_err(|e| invalid(env::HOST_ID, e))?;
        let config_names = parse_config_names(&var(env::CONFIG).unwrap_or_default())?;
        let secrets_key = var(env::SECRETS_KEY_FILE)
            .map(|file| trellis_lattice::secret::SecretsKey::read_file(file.as_ref()))
            .transpose()
            .map_err(|e| invalid(env::SECRETS_KEY_FILE, e))?
            .map(std::sync::Arc::new);
        let options = NatsOptions {
            auth: NatsAuth::from_parts(
                var(env::NATS_CREDS).map(Into::into),
                var(env::NATS_NKEY),
                var(env::NATS_USER),
                var(env::NATS_PASSWORD),
                var(env::NATS_TOKEN),
            )?,
            tls: NatsTls {
                ca: var(env::NATS_TLS_CA).map(Into::into),
                cert: var(env::NATS_TLS_CERT).map(Into::into),
                key: var(env::NATS_TLS_KEY).map(Into::into),
            },
        };
        let name = format!("trellis-provider-{provider_id}");
        // Refused publishes and subscriptions are logged once per subject.
        let violations = Violations::new(options.auth.who(), true);
        let nats = trellis_lattice::client::connect_options(&options, &name)
            .await?
            .connection_timeout(CONNECT_TIMEOUT)
            .max_reconnects(None)
            .event_callback(move |event| {
                violations.record(&event);
                async {}
            })
            .connect(&url)
            .await
            .map_err(|e| match trellis_lattice::client::refusal(&url, &options, &e) {
                Some(refused) => refused.into(),
                None => Error::nats(format!("cannot connect to NATS at {url}"), e),
            })?;
        Ok(Self {
            nats,
            lattice,
            js_domain,
            state_copy: var(env::STATE_COPY).map(Into::into),
            provider_id,
            host_id,
            config_names,
            secrets_key,
        })
    }

    pub fn subjects(&self) -> Subjects {
        Subjects::new(&self.lattice).with_js_domain(self.js_domain.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names() {
        assert_eq!(
            parse_config_names(" a, b ,,c").unwrap(),
            vec!["a".to_string(), "b".into(), "c".into()]
        );
        assert!(parse_config_names("").unwrap().is_empty());
        assert!(parse_config_names("a b").is_err());
    }
}
