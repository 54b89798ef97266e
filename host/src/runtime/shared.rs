//! Compiled artifacts shared by the hosts of a lattice: a JetStream object store where the
//! first host to compile a component publishes the artifact, signed with the lattice key, and
//! where every other host with the same engine fingerprint finds it instead of compiling.
//!
//! Loading an artifact runs it as native code, and any NATS client of the lattice may write
//! to the store, so nothing read from it is used unless it carries a signature, by a lattice
//! key this host trusts, over the lattice's name, the engine fingerprint, the component's
//! digest and the artifact's own sha256, every one of them recomputed or known here; anything
//! else is a miss, and the host that compiles in its place replaces it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::object_store::{self, ObjectMetadata, ObjectStore};
use async_nats::jetstream::stream::Stream;
use nkeys::KeyPair;
use sha2::{Digest as _, Sha256};
use trellis_lattice::Subjects;

use super::shared_read::{self, Read, Rejected, Source};

/// The largest artifact read from the store (greeter-py, 18 MB of component, compiles to
/// about 60 MB); counted while reading.
pub const MAX_ARTIFACT_BYTES: u64 = 512 << 20;
/// How long reading one artifact may take before the host compiles instead.
const FETCH_DEADLINE: Duration = Duration::from_secs(30);
/// How long opening the store may take: a host cut off from the hub must not wait for
/// JetStream's own timeout on every start.
const OPEN_DEADLINE: Duration = Duration::from_secs(2);
/// After the store could not be reached, how long starts skip it.
const RETRY_AFTER: Duration = Duration::from_secs(30);
/// Artifacts no host asked for in this long are dropped (the next compile publishes again).
const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

const SIGNER: &str = "trellis-signer";
const SIGNATURE: &str = "trellis-signature";
const ARTIFACT_SHA256: &str = "trellis-artifact-sha256";
const PUBLISHER: &str = "trellis-host";

/// The lattice keys a host signs and accepts shared artifacts with. Without any, nothing is
/// shared.
#[derive(Clone, Default)]
pub struct ArtifactTrust {
    signer: Option<Arc<KeyPair>>,
    accepted: Vec<String>,
}

impl std::fmt::Debug for ArtifactTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactTrust")
            .field("signs", &self.signer.as_ref().map(|k| k.public_key()))
            .field("accepted", &self.accepted)
            .finish()
    }
}

impl ArtifactTrust {
    /// `signer` (a lattice key's seed) signs what this host publishes, and its public key is
    /// accepted; so is every key in `accepted` (a host that only loads needs no seed).
    pub fn new(signer: Option<KeyPair>, accepted: &[String]) -> anyhow::Result<Self> {
        let kind = trellis_claims::keys::KeyKind::Lattice;
        let mut keys: Vec<String> = signer.iter().map(|k| k.public_key()).collect();
        for key in accepted {
            anyhow::ensure!(
                kind.is_public_key(key),
                "--lattice-public-key: not a lattice public key (C…, made by `trellis keys gen lattice`)"
            );
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
        Ok(Self {
            signer: signer.map(Arc::new),
            accepted: keys,
        })
    }

    /// Whether artifacts are shared at all.
    pub fn is_on(&self) -> bool {
        !self.accepted.is_empty()
    }

    pub fn can_publish(&self) -> bool {
        self.signer.is_some()
    }
}

/// What the signature covers.
fn signed_message(lattice: &str, fingerprint: &str, digest: &str, artifact_sha256: &str) -> String {
    format!("trellis-artifact/1\n{lattice}\n{fingerprint}\n{digest}\n{artifact_sha256}")
}

/// Checks an artifact read from the store against what this host asked for.
pub fn verify(
    trust: &ArtifactTrust,
    lattice: &str,
    fingerprint: &str,
    digest: &str,
    metadata: &HashMap<String, String>,
    artifact: &[u8],
) -> Result<(), Rejected> {
    let signer = trusted_signer(trust, metadata)?;
    let Some(signature) = metadata.get(SIGNATURE) else {
        return Err(Rejected::Unsigned);
    };
    let key = KeyPair::from_public_key(signer).map_err(|_| Rejected::BadSignature)?;
    let signature = hex::decode(signature).map_err(|_| Rejected::BadSignature)?;
    let sha = hex::encode(Sha256::digest(artifact));
    key.verify(
        signed_message(lattice, fingerprint, digest, &sha).as_bytes(),
        &signature,
    )
    .map_err(|_| Rejected::BadSignature)
}

/// The signer the metadata names, if this host trusts it: checked before anything is read.
fn trusted_signer<'a>(
    trust: &ArtifactTrust,
    metadata: &'a HashMap<String, String>,
) -> Result<&'a String, Rejected> {
    let Some(signer) = metadata.get(SIGNER) else {
        return Err(Rejected::Unsigned);
    };
    if !trust.accepted.iter().any(|k| k == signer) {
        return Err(Rejected::UntrustedSigner(signer.chars().take(56).collect()));
    }
    Ok(signer)
}

/// The metadata that makes `artifact` verifiable, or `None` without a signing key.
pub(super) fn signed_metadata(
    trust: &ArtifactTrust,
    lattice: &str,
    fingerprint: &str,
    digest: &str,
    host_id: &str,
    artifact: &[u8],
) -> Option<HashMap<String, String>> {
    let signer = trust.signer.as_ref()?;
    let sha = hex::encode(Sha256::digest(artifact));
    let signature = signer
        .sign(signed_message(lattice, fingerprint, digest, &sha).as_bytes())
        .ok()?;
    Some(HashMap::from([
        (SIGNER.to_string(), signer.public_key()),
        (SIGNATURE.to_string(), hex::encode(signature)),
        (ARTIFACT_SHA256.to_string(), sha),
        (PUBLISHER.to_string(), host_id.to_string()),
    ]))
}

/// What the store holds for one artifact.
#[derive(Debug)]
pub enum Lookup {
    /// A verified artifact.
    Found(Vec<u8>),
    /// Nothing under that name.
    Missing,
    /// Something that must not be loaded (and should be replaced).
    Rejected(Rejected),
    /// The store could not be read; nothing is known.
    Unreachable,
}

/// Artifacts read at once: each is held whole in memory while it is checked.
const CONCURRENT_FETCHES: usize = 2;

/// The lattice's shared artifacts as one host reads and writes them.
pub struct SharedArtifacts {
    nats: async_nats::Client,
    js: async_nats::jetstream::Context,
    bucket: String,
    lattice: String,
    host_id: String,
    trust: ArtifactTrust,
    max_bytes: u64,
    store: tokio::sync::OnceCell<(ObjectStore, Stream)>,
    unreachable_until: Mutex<Option<Instant>>,
    fetches: tokio::sync::Semaphore,
}

impl SharedArtifacts {
    pub fn new(
        nats: &async_nats::Client,
        subjects: &Subjects,
        host_id: String,
        trust: ArtifactTrust,
    ) -> Self {
        Self {
            nats: nats.clone(),
            js: subjects.jetstream(nats),
            bucket: subjects.artifacts_bucket(),
            lattice: subjects.lattice().to_string(),
            host_id,
            trust,
            max_bytes: MAX_ARTIFACT_BYTES,
            store: tokio::sync::OnceCell::new(),
            unreachable_until: Mutex::new(None),
            fetches: tokio::sync::Semaphore::new(CONCURRENT_FETCHES),
        }
    }

    pub fn can_publish(&self) -> bool {
        self.trust.can_publish()
    }

    /// Reads no artifact larger than `max_bytes` (instead of [`MAX_ARTIFACT_BYTES`]).
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The store, opened (or created) on first use; `None` while it cannot be reached.
    async fn store(&self) -> Option<(ObjectStore, Stream)> {
        let now = Instant::now();
        if let Ok(until) = self.unreachable_until.lock() {
            if until.is_some_and(|t| now < t) {
                return None;
            }
        }
        let opened = tokio::time::timeout(
            OPEN_DEADLINE,
            self.store.get_or_try_init(|| open(&self.js, &self.bucket)),
        )
        .await;
        match opened {
            Ok(Ok(store)) => Some(store.clone()),
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e,
                    _ => format!("no answer in {OPEN_DEADLINE:?}"),
                };
                tracing::warn!(bucket = %self.bucket, error = %why, retry_in = ?RETRY_AFTER, "the lattice's artifact store is unreachable; compiling locally");
                if let Ok(mut until) = self.unreachable_until.lock() {
                    *until = Some(now + RETRY_AFTER);
                }
                None
            }
        }
    }

    /// The artifact of component `digest` compiled by an engine with `fingerprint`.
    pub async fn fetch(&self, fingerprint: &str, digest: &str) -> Lookup {
        let Some((store, stream)) = self.store().await else {
            return Lookup::Unreachable;
        };
        let Ok(_permit) = self.fetches.acquire().await else {
            return Lookup::Unreachable;
        };
        let name = object_name(fingerprint, digest);
        let source = Source {
            nats: self.nats.clone(),
            store,
            stream,
            bucket: self.bucket.clone(),
        };
        let trust = self.trust.clone();
        // Reading runs in a task of its own so the deadline can abort it.
        let read = tokio::spawn(shared_read::read(
            source,
            name.clone(),
            self.max_bytes,
            move |metadata| trusted_signer(&trust, metadata).map(drop),
        ));
        let abort = read.abort_handle();
        let (artifact, metadata) = match tokio::time::timeout(FETCH_DEADLINE, read).await {
            Ok(Ok(Read::Found(artifact, metadata))) => (artifact, metadata),
            Ok(Ok(Read::Missing)) => return Lookup::Missing,
            Ok(Ok(Read::Rejected(why))) => return rejected(&name, why),
            Err(_) => {
                abort.abort();
                return rejected(&name, Rejected::Stalled);
            }
            Ok(Ok(Read::Failed)) | Ok(Err(_)) => {
                tracing::warn!(object = %name, "cannot read a shared artifact; compiling locally");
                return Lookup::Unreachable;
            }
        };
        // Hashing tens of megabytes is not for an async worker thread.
        let (trust, lattice) = (self.trust.clone(), self.lattice.clone());
        let (fingerprint, digest) = (fingerprint.to_string(), digest.to_string());
        let checked = tokio::task::spawn_blocking(move || {
            verify(
                &trust,
                &lattice,
                &fingerprint,
                &digest,
                &metadata,
                &artifact,
            )
            .map(|()| artifact)
        })
        .await;
        match checked {
            Ok(Ok(artifact)) => Lookup::Found(artifact),
            Ok(Err(why)) => rejected(&name, why),
            Err(_) => Lookup::Unreachable,
        }
    }

    /// Publishes `artifact` signed with the lattice key; false when it was not (no key, or
    /// the store refused it).
    pub async fn publish(&self, fingerprint: &str, digest: &str, artifact: Vec<u8>) -> bool {
        // Hashing tens of megabytes is not for an async worker thread.
        let (trust, lattice, host_id) = (
            self.trust.clone(),
            self.lattice.clone(),
            self.host_id.clone(),
        );
        let (signing_fingerprint, signing_digest) = (fingerprint.to_string(), digest.to_string());
        let signed = tokio::task::spawn_blocking(move || {
            let metadata = signed_metadata(
                &trust,
                &lattice,
                &signing_fingerprint,
                &signing_digest,
                &host_id,
                &artifact,
            );
            (metadata, artifact)
        })
        .await;
        let Ok((Some(metadata), artifact)) = signed else {
            return false;
        };
        let Some((store, _)) = self.store().await else {
            return false;
        };
        let name = object_name(fingerprint, digest);
        // Replacing an entry purges the chunks it names: not one whose chunk id is a wildcard.
        if let Ok(existing) = store.info(&name).await {
            if !shared_read::is_chunk_id(&existing.nuid) {
                tracing::warn!(object = %name, "not replacing a malformed shared artifact entry");
                return false;
            }
        }
        let meta = ObjectMetadata {
            name,
            metadata,
            ..Default::default()
        };
        let mut reader = artifact.as_slice();
        match tokio::time::timeout(FETCH_DEADLINE, store.put(meta, &mut reader)).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot publish a compiled artifact to the lattice");
                false
            }
            Err(_) => {
                tracing::warn!("publishing a compiled artifact to the lattice timed out");
                false
            }
        }
    }
}

fn rejected(name: &str, why: Rejected) -> Lookup {
    tracing::warn!(object = %name, reason = %why, "not loading a shared artifact");
    Lookup::Rejected(why)
}

fn object_name(fingerprint: &str, digest: &str) -> String {
    format!("{fingerprint}/{digest}")
}

/// The store and the stream that holds it (chunks are read from the stream directly).
async fn open(
    js: &async_nats::jetstream::Context,
    bucket: &str,
) -> Result<(ObjectStore, Stream), String> {
    let store = open_store(js, bucket).await?;
    let stream = js
        .get_stream(format!("OBJ_{bucket}"))
        .await
        .map_err(|e| e.to_string())?;
    Ok((store, stream))
}

async fn open_store(
    js: &async_nats::jetstream::Context,
    bucket: &str,
) -> Result<ObjectStore, String> {
    if let Ok(store) = js.get_object_store(bucket).await {
        return Ok(store);
    }
    let created = js
        .create_object_store(object_store::Config {
            bucket: bucket.to_string(),
            description: Some("Trellis compiled artifacts".into()),
            max_age: MAX_AGE,
            ..Default::default()
        })
        .await;
    match created {
        Ok(store) => Ok(store),
        // Another host created it first.
        Err(create) => js
            .get_object_store(bucket)
            .await
            .map_err(|open| format!("{create}; {open}")),
    }
}
