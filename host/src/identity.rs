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
