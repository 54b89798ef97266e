//! The flags of compiled artifacts: the lattice key that turns sharing on, portable code, and
//! `--precompile` (compile for a board, publish, exit).

use std::path::PathBuf;

use trellis_claims::keys::{self, KeyKind};

use super::shared::ArtifactTrust;
use crate::profile::{flag_help, Field, Profile};

/// Flags of `trellis-host` for compiled artifacts.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ArtifactArgs {
    /// The lattice key's seed file (`trellis keys gen lattice`): the host signs the artifacts
    /// it compiles with it and publishes them to the lattice, and loads artifacts signed with
    /// it instead of compiling. Without this flag or `--lattice-public-key`, the host shares
    /// nothing and loads nothing another host compiled.
    #[arg(long, env = "TRELLIS_LATTICE_KEY_FILE", value_name = "FILE")]
    pub lattice_key_file: Option<PathBuf>,

    /// A lattice public key (`C…`) whose signed artifacts this host loads (repeatable; env
    /// comma-separated): for a host that should never publish, such as a board, or while a
    /// lattice moves to a new key.
    #[arg(
        long = "lattice-public-key",
        env = "TRELLIS_LATTICE_PUBLIC_KEYS",
        value_delimiter = ',',
        value_name = "KEY"
    )]
    pub lattice_public_keys: Vec<String>,

    #[arg(
        long,
        env = "TRELLIS_PORTABLE_CODE",
        action = clap::ArgAction::Set,
        help = flag_help(
            "Compile for this machine's target with its baseline CPU features rather than the \
             ones detected here, so artifacts another host compiled for the same target (and \
             the same flags) load here",
            Field::PortableCode,
        )
    )]
    pub portable_code: Option<bool>,

    /// Compile IMAGE as a host with the other flags given here would, for
    /// `--precompile-target`, publish the signed artifact to the lattice (needs
    /// `--lattice-key-file`) and exit: hosts with those flags on that target then load it
    /// instead of compiling.
    #[arg(long, value_name = "IMAGE")]
    pub precompile: Option<String>,

    /// The target triple `--precompile` compiles for (e.g. `aarch64-unknown-linux-gnu`);
    /// this host's own by default.
    #[arg(long, value_name = "TRIPLE", requires = "precompile")]
    pub precompile_target: Option<String>,
}

/// What the artifact flags resolve to.
#[derive(Clone, Debug, Default)]
pub struct ArtifactSettings {
    pub trust: ArtifactTrust,
    pub portable_code: bool,
    /// `--precompile IMAGE` and the target triple.
    pub precompile: Option<(String, String)>,
}

/// The target triple this executable was built for.
pub const HOST_TARGET: &str = env!("TRELLIS_HOST_TARGET");

impl ArtifactArgs {
    /// The settings these flags describe under `profile` (reading the seed file).
    pub fn resolve(&self, profile: Profile) -> anyhow::Result<ArtifactSettings> {
        let signer = self
            .lattice_key_file
            .as_deref()
            .map(|path| keys::read_seed_file(path, KeyKind::Lattice))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--lattice-key-file: {e}"))?;
        let trust = ArtifactTrust::new(signer, &self.lattice_public_keys)?;
        let precompile = match &self.precompile {
            None => None,
            Some(_) if !trust.can_publish() => {
                anyhow::bail!("--precompile publishes a signed artifact: give --lattice-key-file")
            }
            Some(image) => Some((
                image.clone(),
                self.precompile_target
                    .clone()
                    .unwrap_or_else(|| HOST_TARGET.to_string()),
            )),
        };
        Ok(ArtifactSettings {
            trust,
            portable_code: self
                .portable_code
                .unwrap_or(profile.defaults().portable_code),
            precompile,
        })
    }
}
