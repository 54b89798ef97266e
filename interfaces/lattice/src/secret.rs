//! Secret config values: sealed with curve25519 keys (nkeys xkeys, NaCl box) to the lattice's
//! secrets key, so the config bucket, the events, the CLI and every host without the key see
//! only ciphertext.
//!
//! The operator makes one secrets key pair (`trellis secret keygen`). The public key seals
//! (the CLI needs nothing else); the seed is given only to the hosts that may run workloads
//! reading secrets (`--secrets-key FILE`), which open a value when they build the config of a
//! component or provider they run. Each value is sealed with a fresh one-time sender key
//! (like NaCl's sealed box) and carries the config name and key it was sealed for, so a
//! value copied into another config or key does not open.
//!
//! A sealed value is stored as
//! `trellis-sealed:v1:<sender public key>:<recipient public key>:<hex of the box>`.

use std::fmt;
use std::io::{Read as _, Write as _};
use std::path::Path;

use nkeys::XKey;

use crate::link::Config;

/// What every sealed value starts with.
pub const SEALED_PREFIX: &str = "trellis-sealed:v1:";

/// How a secret is shown wherever values are shown.
pub const SHOWN: &str = "<secret>";

/// The largest secret value (bytes): sealed and hex-encoded it stays within the 64 KiB a
/// config value may hold.
pub const MAX_SECRET_BYTES: usize = 16 << 10;

/// Seeds are 58 characters; anything much larger is not a seed file.
const MAX_SEED_FILE: u64 = 4096;

/// Why a secret or a secrets key cannot be used. Never carries a secret value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Not echoed: a seed given by mistake would be.
    #[error("the secrets public key given is not one{0} (an xkey, `X…`; `trellis secret keygen` prints it)")]
    PublicKey(&'static str),
    #[error("secrets key file {path}: {problem}")]
    KeyFile { path: String, problem: String },
    #[error("config `{config}` key `{key}`: the secret is longer than {MAX_SECRET_BYTES} bytes")]
    TooLong { config: String, key: String },
    #[error(
        "config `{config}` key `{key}` is a secret and this host has no secrets key \
         (start the host with --secrets-key FILE or TRELLIS_SECRETS_KEY_FILE)"
    )]
    NoKey { config: String, key: String },
    #[error(
        "config `{config}` key `{key}` is sealed to secrets key {sealed_to}, \
         but this host holds {held}"
    )]
    WrongKey {
        config: String,
        key: String,
        sealed_to: String,
        held: String,
    },
    #[error("config `{config}` key `{key}`: the sealed value {problem}")]
    Damaged {
        config: String,
        key: String,
        problem: &'static str,
    },
}

/// A secret value in memory: shown as `<secret>` by `Debug` and `Display`, so a log line or
/// an error that mentions it carries no plaintext.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The plaintext, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_exposed(self) -> String {
        self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SHOWN)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SHOWN)
    }
}

/// Whether a stored config value is a sealed secret.
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(SEALED_PREFIX)
}

/// `config` as it may be shown: each sealed value replaced by `<secret>`.
pub fn shown(config: &Config) -> Config {
    config
        .iter()
        .map(|(k, v)| {
            let v = if is_sealed(v) {
                SHOWN.to_string()
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect()
}

/// The parts of a sealed value.
struct Sealed<'a> {
    sender: XKey,
    recipient: &'a str,
    sealed_box: Vec<u8>,
}

fn damaged(config: &str, key: &str, problem: &'static str) -> SecretError {
    SecretError::Damaged {
        config: config.to_string(),
        key: key.to_string(),
        problem,
    }
}

fn parse<'a>(config: &str, key: &str, value: &'a str) -> Result<Sealed<'a>, SecretError> {
    let rest = value
        .strip_prefix(SEALED_PREFIX)
        .ok_or_else(|| damaged(config, key, "is not sealed"))?;
    let mut parts = rest.splitn(3, ':');
    let (Some(sender), Some(recipient), Some(hex_box)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(damaged(config, key, "is not in the sealed form"));
    };
    let sender = XKey::from_public_key(sender)
        .map_err(|_| damaged(config, key, "names no valid sender key"))?;
    if XKey::from_public_key(recipient).is_err() {
        return Err(damaged(config, key, "names no valid secrets key"));
    }
    if hex_box.len() > 2 * (MAX_SECRET_BYTES + 1024) {
        return Err(damaged(config, key, "is too long"));
    }
    let sealed_box = hex::decode(hex_box).map_err(|_| damaged(config, key, "is not hex"))?;
    Ok(Sealed {
        sender,
        recipient,
        sealed_box,
    })
}

/// Checks that a stored value that claims to be sealed has the sealed form (it cannot be
/// opened without the key; a host checks this before storing it).
pub fn check_sealed(config: &str, key: &str, value: &str) -> Result<(), SecretError> {
    parse(config, key, value).map(|_| ())
}

/// What is sealed: the config name and key bind the value to where it was put.
fn framed(config: &str, key: &str, value: &str) -> Vec<u8> {
    [
        config.as_bytes(),
        b"\0",
        key.as_bytes(),
        b"\0",
        value.as_bytes(),
    ]
    .concat()
}

/// The public half of the lattice's secrets key: all that sealing needs.
#[derive(Clone)]
pub struct SecretsPublicKey(XKey);

impl SecretsPublicKey {
    pub fn parse(key: &str) -> Result<Self, SecretError> {
        let key = key.trim();
        XKey::from_public_key(key).map(Self).map_err(|_| {
            SecretError::PublicKey(if key.starts_with('S') {
                ": it looks like a seed, which must stay with the hosts"
            } else {
                ""
            })
        })
    }

    pub fn as_string(&self) -> String {
        self.0.public_key()
    }

    /// Seals `value` for `key` of config `config`.
    pub fn seal(&self, config: &str, key: &str, value: &Secret) -> Result<String, SecretError> {
        if value.expose().len() > MAX_SECRET_BYTES {
            return Err(SecretError::TooLong {
                config: config.to_string(),
                key: key.to_string(),
            });
        }
        let sender = XKey::new();
        let sealed_box = sender
            .seal(&framed(config, key, value.expose()), &self.0)
            .map_err(|_| damaged(config, key, "could not be sealed"))?;
        Ok(format!(
            "{SEALED_PREFIX}{}:{}:{}",
            sender.public_key(),
            self.0.public_key(),
            hex::encode(sealed_box)
        ))
    }
}

impl fmt::Debug for SecretsPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretsPublicKey({})", self.0.public_key())
    }
}

/// The lattice's secrets key pair, held by the hosts that open secrets. `Debug` shows the
/// public key only.
pub struct SecretsKey {
    pair: XKey,
    public: SecretsPublicKey,
}

impl fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretsKey({})", self.public.as_string())
    }
}

impl SecretsKey {
    fn from_pair(pair: XKey) -> Result<Self, SecretError> {
        let public = SecretsPublicKey::parse(&pair.public_key())?;
        Ok(Self { pair, public })
    }

    pub fn generate() -> Result<Self, SecretError> {
        Self::from_pair(XKey::new())
    }

    pub fn public(&self) -> &SecretsPublicKey {
        &self.public
    }

    /// Opens the value stored under `key` of config `config`.
    pub fn open(&self, config: &str, key: &str, value: &str) -> Result<Secret, SecretError> {
        let sealed = parse(config, key, value)?;
        let held = self.public.as_string();
        if sealed.recipient != held {
            return Err(SecretError::WrongKey {
                config: config.to_string(),
                key: key.to_string(),
                sealed_to: sealed.recipient.to_string(),
                held,
            });
        }
        let plain = self
            .pair
            .open(&sealed.sealed_box, &sealed.sender)
            .map_err(|_| {
                damaged(
                    config,
                    key,
                    "does not open (altered, or not sealed by Trellis)",
                )
            })?;
        let expected = framed(config, key, "");
        match plain.strip_prefix(expected.as_slice()) {
            Some(value) => String::from_utf8(value.to_vec())
                .map(Secret)
                .map_err(|_| damaged(config, key, "is not text")),
            None => Err(damaged(
                config,
                key,
                "was sealed for another config or key (copied?)",
            )),
        }
    }

    /// Writes the seed to `path` (mode 0600, whole or not at all); an existing file is kept
    /// unless `overwrite`.
    pub fn write_file(&self, path: &Path, overwrite: bool) -> Result<(), SecretError> {
        let fail = |e: &dyn fmt::Display| SecretError::KeyFile {
            path: path.display().to_string(),
            problem: e.to_string(),
        };
        let seed = self.pair.seed().map_err(|e| fail(&e))?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| fail(&e))?;
        tmp.write_all(seed.as_bytes())
            .and_then(|_| tmp.write_all(b"\n"))
            .and_then(|_| tmp.as_file().sync_all())
            .map_err(|e| fail(&e))?;
        if overwrite {
            tmp.persist(path).map_err(|e| fail(&e.error))?;
        } else {
            tmp.persist_noclobber(path).map_err(|e| fail(&e.error))?;
        }
        Ok(())
    }

    /// Reads the key from a seed file only its owner may read.
    pub fn read_file(path: &Path) -> Result<Self, SecretError> {
        use std::os::unix::fs::PermissionsExt as _;
        let fail = |problem: String| SecretError::KeyFile {
            path: path.display().to_string(),
            problem,
        };
        let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
        let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
        if !meta.is_file() || meta.len() > MAX_SEED_FILE {
            return Err(fail("not a seed file (not a small regular file)".into()));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(fail("group or others may read it (chmod 600 it)".into()));
        }
        let mut text = String::new();
        file.take(MAX_SEED_FILE)
            .read_to_string(&mut text)
            .map_err(|e| fail(e.to_string()))?;
        // Not echoed: the file holds a key.
        let pair = XKey::from_seed(text.trim())
            .map_err(|_| fail("does not hold an xkey seed (SX…)".into()))?;
        Self::from_pair(pair)
    }
}

/// Opens the sealed values of config `name` with `key`: what a host hands a component or
/// provider it runs. A sealed value without a key, or one that does not open, is an error
/// naming the config and key.
pub fn open_config(
    name: &str,
    config: &Config,
    key: Option<&SecretsKey>,
) -> Result<Config, SecretError> {
    config
        .iter()
        .map(|(k, v)| {
            if !is_sealed(v) {
                return Ok((k.clone(), v.clone()));
            }
            let key = key.ok_or_else(|| SecretError::NoKey {
                config: name.to_string(),
                key: k.clone(),
            })?;
            Ok((k.clone(), key.open(name, k, v)?.into_exposed()))
        })
        .collect()
}

#[cfg(test)]
#[path = "secret_tests.rs"]
mod tests;
