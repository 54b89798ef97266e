//! The grants a component is started with (`trellis_lattice::grants`), as flags.

use anyhow::Context as _;
use trellis_lattice::grants::{Grants, Preopen};

/// What `trellis component start` may grant beyond the component's links: without these it
/// sees no environment, no files, no network and a wall clock stopped at the Unix epoch.
#[derive(clap::Args, Debug, Default)]
pub struct GrantFlags {
    /// An environment variable the component sees, `KEY=VALUE` (repeatable); it sees no
    /// other.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// A host directory it sees, `HOST[:GUEST][:ro|:rw]` (repeatable, read-only unless
    /// `:rw`); the host must share it (`trellis-host --allow-preopen`).
    #[arg(long = "preopen", value_name = "DIR")]
    preopen: Vec<String>,
    /// Where its outgoing HTTP requests may go, `[SCHEME://]HOST[:PORT]`, e.g.
    /// `https://api.example.com` or `*.example.com` (repeatable).
    #[arg(long = "allow-outbound", value_name = "HOST")]
    allow_outbound: Vec<String>,
    /// Let it read the real wall clock.
    #[arg(long)]
    wall_clock: bool,
}

impl GrantFlags {
    pub fn grants(self) -> anyhow::Result<Grants> {
        let mut grants = Grants {
            allowed_outbound_hosts: self.allow_outbound,
            wall_clock: self.wall_clock,
            ..Grants::default()
        };
        for pair in &self.env {
            let (k, v) = pair
                .split_once('=')
                .with_context(|| format!("--env {pair}: expected KEY=VALUE"))?;
            grants.env.insert(k.to_string(), v.to_string());
        }
        for spec in &self.preopen {
            grants
                .preopens
                .push(Preopen::parse(spec).with_context(|| format!("--preopen {spec}"))?);
        }
        grants.check()?;
        Ok(grants)
    }
}
