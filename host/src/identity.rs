//! Who a host is: its nkey (server key) and a friendly name.

use nkeys::KeyPair;
use rand::seq::SliceRandom as _;
use rand::Rng as _;

/// The host's identity.
pub struct Identity {
    pub key: KeyPair,
    pub friendly_name: String,
}

impl Identity {
    /// Loads the server key from `seed` (`SN...`), or generates one.
    pub fn new(seed: Option<&str>, friendly_name: Option<String>) -> anyhow::Result<Self> {
        let key = match seed {
            Some(seed) => {
                let key = KeyPair::from_seed(seed)
                    .map_err(|e| anyhow::anyhow!("invalid host seed: {e}"))?;
                if !key.public_key().starts_with('N') {
                    anyhow::bail!(
                        "host seed must be a server nkey (seed 'SN...', public key 'N...'), got a key whose public key starts with {:?}",
                        key.public_key().chars().next().unwrap_or('?')
                    );
                }
                key
            }
            None => KeyPair::new_server(),
        };
        let friendly_name = friendly_name.unwrap_or_else(generate_name);
        Ok(Self { key, friendly_name })
    }

    pub fn host_id(&self) -> String {
        self.key.public_key()
    }
}

const ADJECTIVES: &[&str] = &[
    "amber", "bold", "brisk", "calm", "clever", "crimson", "dusty", "eager", "fancy", "gentle",
    "golden", "hidden", "icy", "jolly", "keen", "lively", "misty", "noble", "odd", "patient",
    "quiet", "rapid", "silent", "sunny", "tidy", "vivid", "wild", "young", "zesty", "humble",
];
const NOUNS: &[&str] = &[
    "badger", "brook", "cedar", "comet", "dune", "ember", "falcon", "fern", "glacier", "harbor",
    "heron", "island", "lantern", "maple", "meadow", "otter", "pebble", "pine", "quartz", "raven",
    "river", "sparrow", "summit", "thistle", "tundra", "valley", "willow", "wren", "yarrow",
    "zephyr",
];

/// The seed in `path`, generated (a new server key, in a file only this user can read) when
/// the file does not exist yet.
pub fn seed_from_file(path: &std::path::Path) -> anyhow::Result<String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let shown = path.display();
    match std::fs::read_to_string(path) {
        Ok(text) => return Ok(text.trim().to_string()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(anyhow::anyhow!("reading seed file {shown}: {e}"))
        }
        Err(_) => {}
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("creating {} for the seed file: {e}", dir.display()))?;
    }
    let seed = KeyPair::new_server()
        .seed()
        .map_err(|e| anyhow::anyhow!("generating a host key: {e}"))?;
    // create_new: two hosts started at once with one file do not overwrite each other's key.
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(mut file) => {
            file.write_all(format!("{seed}\n").as_bytes())
                .map_err(|e| anyhow::anyhow!("writing seed file {shown}: {e}"))?;
            tracing::info!(path = %shown, "generated a host key");
            Ok(seed)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => seed_from_file(path),
        Err(e) => Err(anyhow::anyhow!("creating seed file {shown}: {e}")),
    }
}

/// `adjective-noun-NNNN`, e.g. `misty-river-4821`.
pub fn generate_name() -> String {
    let mut rng = rand::thread_rng();
    format!(
        "{}-{}-{:04}",
        ADJECTIVES.choose(&mut rng).copied().unwrap_or("quiet"),
        NOUNS.choose(&mut rng).copied().unwrap_or("host"),
        rng.gen_range(0..10_000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_seed_file_is_generated_private_and_kept() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/host.seed");
        let first = seed_from_file(&path).unwrap();
        assert!(first.starts_with("SN"), "{first}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            seed_from_file(&path).unwrap(),
            first,
            "kept across restarts"
        );
    }

    #[test]
    fn generated_and_loaded_keys() {
        let id = Identity::new(None, None).unwrap();
        assert!(id.host_id().starts_with('N'));
        trellis_lattice::id::validate_host_id(&id.host_id()).unwrap();
        let seed = id.key.seed().unwrap();
        let again = Identity::new(Some(&seed), Some("x".into())).unwrap();
        assert_eq!(again.host_id(), id.host_id());
        assert_eq!(again.friendly_name, "x");
        let user = KeyPair::new_user().seed().unwrap();
        let err = Identity::new(Some(&user), None).err().unwrap().to_string();
        assert!(err.contains("server nkey"), "{err}");
        assert!(Identity::new(Some("garbage"), None).is_err());
    }
}
