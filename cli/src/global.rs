//! Connection settings every command shares.

use trellis_lattice::{LatticeClient, NatsAuth};

use crate::output::Format;

pub struct Global {
    pub nats_url: String,
    pub lattice: String,
    /// The JetStream domain of the lattice's state (from a leaf node: the hub's).
    pub js_domain: Option<String>,
    /// How to authenticate to NATS, from `--nats-creds`, `--nats-nkey`,
    /// `--nats-user`/`--nats-password` or `--nats-token` (at most one).
    pub auth: NatsAuth,
    pub output: Format,
}

impl Global {
    pub async fn client(&self) -> anyhow::Result<LatticeClient> {
        trellis_lattice::id::validate_lattice(&self.lattice)?;
        let nats =
            trellis_lattice::client::connect(&self.nats_url, &self.auth, "trellis-cli").await?;
        Ok(LatticeClient::new(nats, &self.lattice)?.with_js_domain(self.js_domain.clone())?)
    }
}
