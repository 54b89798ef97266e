//! `trellis keys gen`: seed files for issuers, components, hosts and NATS users.

use std::path::PathBuf;

use anyhow::Context as _;
use trellis_claims::keys::{self, KeyKind};

use crate::global::Global;
use crate::output::{print_json, Format};

#[derive(clap::Subcommand)]
pub enum KeysCommand {
    /// Make a key pair: writes its seed to --out (mode 0600) and prints its public key.
    Gen(GenArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Kind {
    /// Signs components and provider executables (`A…`).
    Issuer,
    /// The subject of a claim (`M…`).
    Component,
    /// A host's identity (`N…`).
    Host,
    /// A NATS user for nkey authentication (`U…`).
    User,
    /// The lattice key (`C…`): hosts given its seed sign the compiled artifacts they share
    /// through the lattice; hosts given its public key load them.
    Lattice,
    /// The lattice's secrets key (`X…`, curve25519): hosts given it open sealed config
    /// (same as `trellis secret keygen`).
    Xkey,
}

#[derive(clap::Args)]
pub struct GenArgs {
    kind: Kind,
    /// Where to write the seed.
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    force: bool,
}

pub async fn run(global: &Global, cmd: KeysCommand) -> anyhow::Result<()> {
    let KeysCommand::Gen(args) = cmd;
    let kind = match args.kind {
        Kind::Issuer => KeyKind::Issuer,
        Kind::Component => KeyKind::Component,
        Kind::Host => KeyKind::Host,
        Kind::User => KeyKind::User,
        Kind::Lattice => KeyKind::Lattice,
        Kind::Xkey => return crate::secrets::keygen(global, args.out, args.force),
    };
    let pair = keys::generate(kind);
    let out = args.out.clone();
    let force = args.force;
    let public_key = pair.public_key();
    tokio::task::spawn_blocking(move || keys::write_seed_file(&out, &pair, force))
        .await
        .context("writing the seed file")?
        .with_context(|| format!("writing the {} seed", kind.name()))?;
    match global.output {
        Format::Json => print_json(&serde_json::json!({
            "kind": kind.name(),
            "public_key": public_key,
            "seed_file": args.out.display().to_string(),
        })),
        Format::Table => {
            println!("{public_key}");
            Ok(())
        }
    }
}
