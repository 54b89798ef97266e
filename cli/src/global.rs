//! Connection settings every command shares.

use trellis_lattice::client::{NatsOptions, Violations};
use trellis_lattice::LatticeClient;

use crate::output::Format;

pub struct Global {
    pub nats_url: String,
    pub lattice: String,
    /// The JetStream domain of the lattice's state (from a leaf node: the hub's).
    pub js_domain: Option<String>,
    /// How to authenticate to NATS (`--nats-creds`, `--nats-nkey`,
    /// `--nats-user`/`--nats-password` or `--nats-token`, at most one) and its TLS files.
    pub nats: NatsOptions,
    /// What the server refused the connections of this command (main fails the command on
    /// the first, whatever was waiting for it: a key-value read, a subscription).
    pub violations: Violations,
    pub output: Format,
}

impl Global {
    /// A client whose requests fail at once, in one line, when the server refuses them by
    /// the user's permissions.
    pub async fn client(&self) -> anyhow::Result<LatticeClient> {
        trellis_lattice::id::validate_lattice(&self.lattice)?;
        let nats = trellis_lattice::client::connect_watched(
            &self.nats_url,
            &self.nats,
            "trellis-cli",
            &self.violations,
        )
        .await?;
        Ok(LatticeClient::new(nats, &self.lattice)?
            .with_js_domain(self.js_domain.clone())?
            .with_violations(self.violations.clone()))
    }
}
