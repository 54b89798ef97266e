//! The host's half of secret config: the lattice's secrets key (`--secrets-key`), and the
//! one place sealed values are opened: when the host builds the config of a component or
//! provider it runs. Everything else (the KV mirror, the state copy, events, logs) keeps
//! them sealed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use trellis_lattice::link::Config;
use trellis_lattice::secret::{self, SecretError, SecretsKey};
use trellis_lattice::ControlError;

use crate::lattice_kv::StateStore;

/// `--secrets-key`, flattened into the host's flags.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct SecretsArgs {
    /// The lattice's secrets key: a seed file from `trellis secret keygen` (mode 0600). This
    /// host then opens sealed config values for the components and providers it runs;
    /// without it, one that reads a secret does not start here.
    #[arg(long, env = "TRELLIS_SECRETS_KEY_FILE")]
    pub secrets_key: Option<PathBuf>,
}

/// The host's secrets key, if it holds one.
#[derive(Clone, Debug, Default)]
pub struct HostSecrets {
    key: Option<Arc<SecretsKey>>,
    file: Option<PathBuf>,
}

impl HostSecrets {
    /// Reads the key file; a key that cannot be used stops the host at start rather than
    /// failing each start later.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let Some(file) = file else {
            return Ok(Self::default());
        };
        let key = SecretsKey::read_file(file).map_err(|e| anyhow::anyhow!("--secrets-key: {e}"))?;
        tracing::info!(secrets_key = %key.public().as_string(), "holding the lattice's secrets key");
        Ok(Self {
            key: Some(Arc::new(key)),
            // Absolute: providers started here read it from their own working directory.
            file: Some(std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf())),
        })
    }

    /// The key file, for the external providers this host starts (they open their own
    /// secrets, on this host).
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    pub fn key(&self) -> Option<Arc<SecretsKey>> {
        self.key.clone()
    }

    /// Config `name` with its sealed values opened.
    pub fn open(&self, name: &str, config: &Config) -> Result<Config, SecretError> {
        secret::open_config(name, config, self.key.as_deref())
    }

    /// The named configs merged in order (later names win), secrets opened; a missing name
    /// or a secret this host cannot open is an error naming the config and key.
    pub async fn merged(
        &self,
        state: &dyn StateStore,
        names: &[String],
    ) -> Result<Config, ControlError> {
        let mut merged = Config::new();
        for name in names {
            match state.config(name).await? {
                Some(config) => merged.extend(self.open(name, &config).map_err(refused)?),
                None => {
                    // The store's own merge says which names are missing, the way it always
                    // has (unless the config appeared meanwhile).
                    state.merged_config(names).await?;
                    return Err(ControlError::not_found(format!(
                        "config {name:?}: no such named config"
                    )));
                }
            }
        }
        Ok(merged)
    }

    /// [`Self::merged`] from configs already read (a follower's).
    pub fn remerged(
        &self,
        names: &[String],
        configs: &BTreeMap<String, Config>,
    ) -> Result<Config, SecretError> {
        let mut merged = Config::new();
        for name in names {
            if let Some(config) = configs.get(name) {
                merged.extend(self.open(name, config)?);
            }
        }
        Ok(merged)
    }
}

/// A secret this host cannot open refuses the start (the message names config and key).
pub fn refused(err: SecretError) -> ControlError {
    ControlError::invalid(err.to_string())
}

#[cfg(test)]
mod tests {
    use trellis_lattice::secret::Secret;

    use super::*;

    #[test]
    fn opens_only_with_the_key_and_names_what_it_cannot_open() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.xk");
        let key = SecretsKey::generate().unwrap();
        key.write_file(&file, false).unwrap();
        let sealed = key
            .public()
            .seal("db", "password", &Secret::new("pw-123"))
            .unwrap();
        let configs: BTreeMap<String, Config> = [
            ("db".to_string(), [("password".to_string(), sealed)].into()),
            (
                "site".to_string(),
                [("host".to_string(), "x".into())].into(),
            ),
        ]
        .into();
        let names = vec!["site".to_string(), "db".to_string()];
        let holder = HostSecrets::load(Some(&file)).unwrap();
        let opened = holder.remerged(&names, &configs).unwrap();
        assert_eq!(opened["password"], "pw-123");
        assert_eq!(opened["host"], "x");
        let err = HostSecrets::default()
            .remerged(&names, &configs)
            .unwrap_err()
            .to_string();
        assert!(err.contains("config `db` key `password`"), "{err}");
        assert!(!err.contains("pw-123"));
        let err = HostSecrets::load(Some(&dir.path().join("absent"))).unwrap_err();
        assert!(err.to_string().starts_with("--secrets-key"), "{err}");
    }
}
