//! Connection settings every command shares.

use trellis_lattice::{LatticeClient, NatsAuth};

use crate::output::Format;

pub struct Global {
    pub nats_url: String,
    pub lattice: String,
    pub creds: Option<std::path::PathBuf>,
    pub output: Format,
}

impl Global {
    pub async fn client(&self) -> anyhow::Result<LatticeClient> {
        trellis_lattice::id::validate_lattice(&self.lattice)?;
        let auth = match &self.creds {
            Some(path) => NatsAuth::CredsFile(path.clone()),
            None => NatsAuth::None,
        };
        let nats = trellis_lattice::client::connect(&self.nats_url, &auth, "trellis-cli").await?;
        Ok(LatticeClient::new(nats, &self.lattice)?)
    }
}
