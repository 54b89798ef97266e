//! Keys and seed files.
//!
//! A seed file holds one nkeys seed (`S…`) and a newline. It is written with mode 0600,
//! atomically (a temporary file in the same directory, then linked into place), and read
//! only when it is a small regular file that nobody but its owner can read.

use std::io::Read as _;
use std::path::Path;

use nkeys::{KeyPair, KeyPairType};

use crate::error::Error;

/// Seeds are 58 characters; anything much larger is not a seed file.
const MAX_SEED_FILE: u64 = 4096;

/// What a key is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// Signs claims (`A…`, an account-style key).
    Issuer,
    /// Names one component or executable, the claim's subject (`M…`, a module key).
    Component,
    /// A host's identity (`N…`, a server key).
    Host,
    /// A NATS user for nkey authentication (`U…`).
    User,
    /// Signs what the hosts of one lattice share with each other, such as compiled artifacts
    /// (`C…`, a cluster key).
    Lattice,
}

impl KeyKind {
    fn pair_type(self) -> KeyPairType {
        match self {
            KeyKind::Issuer => KeyPairType::Account,
            KeyKind::Component => KeyPairType::Module,
            KeyKind::Host => KeyPairType::Server,
            KeyKind::User => KeyPairType::User,
            KeyKind::Lattice => KeyPairType::Cluster,
        }
    }

    /// The first letter of this kind's public keys.
    pub fn prefix(self) -> char {
        match self {
            KeyKind::Issuer => 'A',
            KeyKind::Component => 'M',
            KeyKind::Host => 'N',
            KeyKind::User => 'U',
            KeyKind::Lattice => 'C',
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Issuer => "issuer",
            KeyKind::Component => "component",
            KeyKind::Host => "host",
            KeyKind::User => "user",
            KeyKind::Lattice => "lattice",
        }
    }

    /// Whether `public_key` is a valid public key of this kind (checksum included).
    pub fn is_public_key(self, public_key: &str) -> bool {
        public_key.starts_with(self.prefix())
            && KeyPair::from_public_key(public_key)
                .is_ok_and(|kp| kp.key_pair_type() == self.pair_type())
    }
}

/// A fresh key pair of `kind`.
pub fn generate(kind: KeyKind) -> KeyPair {
    KeyPair::new(kind.pair_type())
}

/// Checks that `key` is an issuer's public key (`A…`), naming what is wrong otherwise.
pub fn validate_issuer(key: &str) -> Result<(), Error> {
    if KeyKind::Issuer.is_public_key(key) {
        Ok(())
    } else {
        Err(Error::InvalidKey { expected: "issuer" })
    }
}

/// Writes `pair`'s seed to `path` with mode 0600. An existing file is replaced only when
/// `overwrite`; either way the file appears whole or not at all.
pub fn write_seed_file(path: &Path, pair: &KeyPair, overwrite: bool) -> Result<(), Error> {
    let seed = pair
        .seed()
        .map_err(|_| Error::Seed("the key pair has no seed"))?;
    crate::files::write_atomic(path, format!("{seed}\n").as_bytes(), 0o600, overwrite)
}

/// Reads the key pair of kind `kind` from the seed file at `path`.
pub fn read_seed_file(path: &Path, kind: KeyKind) -> Result<KeyPair, Error> {
    use std::os::unix::fs::PermissionsExt as _;
    let name = path.display().to_string();
    let io = |source| Error::Io {
        path: name.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() || meta.len() > MAX_SEED_FILE {
        return Err(Error::SeedFile {
            path: name,
            problem: "not a seed file (not a small regular file)",
        });
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(Error::SeedFile {
            path: name,
            problem: "group or others may read it (chmod 600 it)",
        });
    }
    let mut text = String::new();
    file.take(MAX_SEED_FILE)
        .read_to_string(&mut text)
        .map_err(io)?;
    let pair = KeyPair::from_seed(text.trim()).map_err(|_| Error::SeedFile {
        path: name.clone(),
        problem: "does not hold an nkeys seed",
    })?;
    if pair.key_pair_type() != kind.pair_type() {
        return Err(Error::SeedFile {
            path: name,
            problem: match kind {
                KeyKind::Issuer => "not an issuer seed (SA…)",
                KeyKind::Component => "not a component seed (SM…)",
                KeyKind::Host => "not a host seed (SN…)",
                KeyKind::User => "not a user seed (SU…)",
                KeyKind::Lattice => "not a lattice seed (SC…)",
            },
        });
    }
    Ok(pair)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn each_kind_has_its_prefix() {
        for kind in [
            KeyKind::Issuer,
            KeyKind::Component,
            KeyKind::Host,
            KeyKind::User,
        ] {
            let key = generate(kind).public_key();
            assert!(key.starts_with(kind.prefix()), "{key}");
            assert!(kind.is_public_key(&key));
        }
        assert!(!KeyKind::Issuer.is_public_key(&generate(KeyKind::User).public_key()));
        assert!(validate_issuer("Anot-a-key").is_err());
    }

    #[test]
    fn seed_files_are_private_and_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("issuer.nk");
        let pair = generate(KeyKind::Issuer);
        write_seed_file(&path, &pair, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let read = read_seed_file(&path, KeyKind::Issuer).unwrap();
        assert_eq!(read.public_key(), pair.public_key());

        let other = generate(KeyKind::Issuer);
        assert!(matches!(
            write_seed_file(&path, &other, false),
            Err(Error::Exists { .. })
        ));
        assert_eq!(
            read_seed_file(&path, KeyKind::Issuer).unwrap().public_key(),
            pair.public_key()
        );
        write_seed_file(&path, &other, true).unwrap();
        assert_eq!(
            read_seed_file(&path, KeyKind::Issuer).unwrap().public_key(),
            other.public_key()
        );
        // Only the seed file itself is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn readable_or_wrong_kind_seed_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.nk");
        write_seed_file(&path, &generate(KeyKind::User), false).unwrap();
        let err = read_seed_file(&path, KeyKind::Issuer).unwrap_err();
        assert!(err.to_string().contains("not an issuer seed"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_seed_file(&path, KeyKind::User).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
        // The seed itself never appears in an error.
        let seed = std::fs::read_to_string(&path).unwrap();
        assert!(!err.to_string().contains(seed.trim()));
    }
}
