//! Secret config values: `trellis secret keygen` makes the lattice's secrets key,
//! `trellis config put NAME KEY=VALUE --secret` (or `trellis secret put`) seals values to its
//! public key before they leave this process.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::Context as _;
use trellis_lattice::link::Config;
use trellis_lattice::secret::{self, Secret, SecretsKey, SecretsPublicKey};

use crate::global::Global;
use crate::output::{print_json, Format};

/// The largest value read from standard input.
const MAX_STDIN_VALUE: u64 = secret::MAX_SECRET_BYTES as u64 + 1;

#[derive(clap::Subcommand)]
pub enum SecretCommand {
    /// Make the lattice's secrets key: writes its seed to --out (mode 0600; give it to the
    /// hosts that run secret-reading workloads with --secrets-key) and prints its public key
    /// (what `config put --secret` seals with).
    Keygen {
        #[arg(long)]
        out: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Print the sealed form of one value (read from standard input) for KEY of config
    /// CONFIG, to paste into a manifest's config `properties` (give that config a `name`:
    /// a value opens only under the config name and key it was sealed for).
    Seal {
        config: String,
        key: String,
        #[command(flatten)]
        public_key: PublicKeyArg,
    },
    /// `trellis config put NAME KEY=VALUE... --secret`: every value sealed.
    Put {
        name: String,
        /// KEY=VALUE, or a bare KEY to read its value from standard input.
        values: Vec<String>,
        #[command(flatten)]
        key: PublicKeyArg,
    },
}

/// Where sealing finds the secrets public key.
#[derive(Clone, clap::Args)]
pub struct PublicKeyArg {
    /// The lattice's secrets public key (`X…`), printed by `trellis secret keygen`.
    #[arg(long, env = "TRELLIS_SECRETS_PUBLIC_KEY")]
    pub secrets_public_key: Option<String>,
}

impl PublicKeyArg {
    fn key(&self) -> anyhow::Result<SecretsPublicKey> {
        let Some(key) = &self.secrets_public_key else {
            anyhow::bail!(
                "sealing a secret needs the lattice's secrets public key: give --secrets-public-key X… \
                 or TRELLIS_SECRETS_PUBLIC_KEY (`trellis secret keygen --out FILE` makes the key pair)"
            );
        };
        Ok(SecretsPublicKey::parse(key)?)
    }
}

/// The values of `config put NAME values...`; sealed (all of them) when `seal` is given. A
/// bare KEY reads its value from standard input, only when sealing (a secret typed on the
/// command line stays in the shell's history and the process list).
pub fn parse_values(
    name: &str,
    values: &[String],
    seal: Option<&PublicKeyArg>,
) -> anyhow::Result<Config> {
    let key = seal.map(PublicKeyArg::key).transpose()?;
    let mut config = Config::new();
    let mut stdin_used = false;
    for pair in values {
        let (k, v) = match (pair.split_once('='), &key) {
            (Some((k, v)), _) => (k, Secret::new(v)),
            (None, Some(_)) if !stdin_used => {
                stdin_used = true;
                (pair.as_str(), read_stdin(name, pair)?)
            }
            (None, Some(_)) => anyhow::bail!(
                "config value {pair:?}: only one bare KEY may read its value from standard input"
            ),
            // Not echoed whole: with a missing `=` it may be a value.
            (None, None) => anyhow::bail!(
                "config values must be KEY=VALUE (a bare KEY reads a secret from standard input with --secret)"
            ),
        };
        if k.is_empty() {
            anyhow::bail!("config {name}: a value has an empty key");
        }
        let stored = match &key {
            Some(key) => key.seal(name, k, &v)?,
            None => v.into_exposed(),
        };
        config.insert(k.to_string(), stored);
    }
    Ok(config)
}

fn read_stdin(name: &str, key: &str) -> anyhow::Result<Secret> {
    let mut value = String::new();
    std::io::stdin()
        .take(MAX_STDIN_VALUE)
        .read_to_string(&mut value)
        .with_context(|| {
            format!("config {name} key {key}: reading the value from standard input")
        })?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    Ok(Secret::new(value))
}

/// What `config put` says it stored: keys and, for secrets, `<secret>`.
pub fn report_put(g: &Global, name: &str, config: &Config) -> anyhow::Result<()> {
    if g.output == Format::Json {
        return print_json(&serde_json::json!({ "name": name, "values": secret::shown(config) }));
    }
    let sealed = config.values().filter(|v| secret::is_sealed(v)).count();
    if sealed == 0 {
        println!("config {name} set ({} key(s))", config.len());
    } else {
        println!(
            "config {name} set ({} key(s), {sealed} sealed secret(s))",
            config.len()
        );
    }
    Ok(())
}

/// `trellis secret keygen --out FILE`.
pub fn keygen(g: &Global, out: PathBuf, force: bool) -> anyhow::Result<()> {
    let key = SecretsKey::generate()?;
    key.write_file(&out, force)?;
    let public_key = key.public().as_string();
    if g.output == Format::Json {
        return print_json(&serde_json::json!({
            "kind": "xkey",
            "public_key": public_key,
            "seed_file": out.display().to_string(),
        }));
    }
    eprintln!(
        "secrets key written to {} (give it to hosts with --secrets-key)",
        out.display()
    );
    println!("{public_key}");
    Ok(())
}

pub async fn run(g: &Global, cmd: SecretCommand) -> anyhow::Result<()> {
    match cmd {
        SecretCommand::Keygen { out, force } => keygen(g, out, force),
        SecretCommand::Seal {
            config,
            key,
            public_key,
        } => {
            trellis_lattice::link::validate_config_name(&config)?;
            let sealed = public_key
                .key()?
                .seal(&config, &key, &read_stdin(&config, &key)?)?;
            println!("{sealed}");
            Ok(())
        }
        SecretCommand::Put { name, values, key } => {
            let config = parse_values(&name, &values, Some(&key))?;
            g.client().await?.put_config(&name, config.clone()).await?;
            report_put(g, &name, &config)
        }
    }
}
