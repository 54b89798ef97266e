//! What makes a shared artifact loadable: a trusted lattice key's signature over exactly
//! this lattice, engine fingerprint, component digest and artifact.

use std::collections::HashMap;

use nkeys::KeyPair;

use super::shared::{signed_metadata, verify, ArtifactTrust};
use super::shared_read::Rejected;

const LATTICE: &str = "default";
const FINGERPRINT: &str = "00112233445566778899aabbccddeeff";
const DIGEST: &str = "abababababababababababababababababababababababababababababababab";
const ARTIFACT: &[u8] = b"\x7fELF pretend this is machine code";

fn publisher() -> (KeyPair, ArtifactTrust) {
    let key = KeyPair::new_cluster();
    let seed = key.seed().expect("seed");
    let trust =
        ArtifactTrust::new(Some(KeyPair::from_seed(&seed).expect("key")), &[]).expect("trust");
    (key, trust)
}

fn signed(trust: &ArtifactTrust) -> HashMap<String, String> {
    signed_metadata(trust, LATTICE, FINGERPRINT, DIGEST, "NHOST", ARTIFACT).expect("signed")
}

#[test]
fn a_signed_artifact_verifies_where_its_key_is_trusted() {
    let (key, signer) = publisher();
    let metadata = signed(&signer);
    verify(&signer, LATTICE, FINGERPRINT, DIGEST, &metadata, ARTIFACT).expect("own key");
    // A host given only the public key loads it and cannot publish.
    let reader = ArtifactTrust::new(None, &[key.public_key()]).expect("trust");
    assert!(reader.is_on() && !reader.can_publish());
    verify(&reader, LATTICE, FINGERPRINT, DIGEST, &metadata, ARTIFACT).expect("public key");
}

#[test]
fn anything_else_is_rejected() {
    let (_, signer) = publisher();
    let metadata = signed(&signer);
    let bad = |lattice, fingerprint, digest, metadata: &HashMap<_, _>, artifact| {
        verify(&signer, lattice, fingerprint, digest, metadata, artifact).unwrap_err()
    };
    let other_digest = "cd".repeat(32);
    let mut tampered = ARTIFACT.to_vec();
    tampered[0] ^= 1;
    // Other bytes, another component, another engine, another lattice.
    for rejected in [
        bad(LATTICE, FINGERPRINT, DIGEST, &metadata, &tampered),
        bad(LATTICE, FINGERPRINT, &other_digest, &metadata, ARTIFACT),
        bad(
            LATTICE,
            "ffeeddccbbaa99887766554433221100",
            DIGEST,
            &metadata,
            ARTIFACT,
        ),
        bad("other", FINGERPRINT, DIGEST, &metadata, ARTIFACT),
    ] {
        assert_eq!(rejected, Rejected::BadSignature);
    }
    // No signature at all.
    assert_eq!(
        bad(LATTICE, FINGERPRINT, DIGEST, &HashMap::new(), ARTIFACT),
        Rejected::Unsigned
    );
    // Signed by a key this host does not trust (a client that made its own key): not even
    // checked further.
    let (stranger, stranger_trust) = publisher();
    let forged = signed(&stranger_trust);
    assert_eq!(
        bad(LATTICE, FINGERPRINT, DIGEST, &forged, ARTIFACT),
        Rejected::UntrustedSigner(stranger.public_key())
    );
    // A trusted signer's name over a signature that is not hex, or not its own.
    let mut garbled = metadata.clone();
    garbled.insert("trellis-signature".into(), "not hex".into());
    assert_eq!(
        bad(LATTICE, FINGERPRINT, DIGEST, &garbled, ARTIFACT),
        Rejected::BadSignature
    );
    let mut swapped = forged.clone();
    swapped.insert("trellis-signer".into(), metadata["trellis-signer"].clone());
    assert_eq!(
        bad(LATTICE, FINGERPRINT, DIGEST, &swapped, ARTIFACT),
        Rejected::BadSignature
    );
}

#[test]
fn only_lattice_keys_are_accepted() {
    let host = KeyPair::new_server().public_key();
    assert!(ArtifactTrust::new(None, &[host]).is_err());
    assert!(!ArtifactTrust::default().is_on());
}
