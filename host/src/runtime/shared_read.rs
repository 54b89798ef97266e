//! Reading one artifact from the lattice's object store as a hostile writer may have left it.
//!
//! The client's own `get` is not used: it follows links without end (a crafted entry that
//! links to itself nests one future per hop until the stack overflows) and its reader unwraps
//! internally. Here the entry is read once, checked (not a link, a size within the limit, a
//! signer this host trusts, a chunk id that is only letters and digits), and exactly its
//! chunks are read through an ordered consumer, each within an idle deadline.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::consumer::push::OrderedConfig;
use async_nats::jetstream::object_store::{InfoErrorKind, ObjectInfo, ObjectStore};
use async_nats::jetstream::stream::Stream;
use futures::StreamExt as _;

/// Why an artifact from the store was not used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Rejected {
    #[error("it carries no signature")]
    Unsigned,
    #[error("its signer {0:?} is not a lattice key this host trusts")]
    UntrustedSigner(String),
    #[error("its signature does not hold for this lattice, engine, component and contents")]
    BadSignature,
    #[error("it is larger than the limit of what this host reads")]
    TooLarge,
    #[error("it is a link to another object")]
    Link,
    #[error("its entry in the store is malformed")]
    Damaged,
    #[error("its chunks stopped arriving")]
    Stalled,
}

/// How long one chunk may take to arrive before the object counts as stalled.
const CHUNK_IDLE: Duration = Duration::from_secs(2);
/// Bytes reserved before reading; the rest grows with what arrives.
const INITIAL_CAPACITY: usize = 1 << 20;

/// What reading one object gave.
pub(super) enum Read {
    Found(Vec<u8>, HashMap<String, String>),
    Missing,
    Rejected(Rejected),
    /// The store did not answer: nothing is known about the object.
    Failed,
}

/// Where an object's entry and chunks are read from.
pub(super) struct Source {
    pub nats: async_nats::Client,
    pub store: ObjectStore,
    pub stream: Stream,
    pub bucket: String,
}

/// The object `name`, read only if `signer_ok` accepts its metadata and never more than
/// `max_bytes` of it.
pub(super) async fn read(
    source: Source,
    name: String,
    max_bytes: u64,
    signer_ok: impl Fn(&HashMap<String, String>) -> Result<(), Rejected>,
) -> Read {
    let failed = |e: &dyn std::fmt::Display| {
        tracing::debug!(object = %name, error = %e, "reading a shared artifact failed");
        Read::Failed
    };
    let info = match source.store.info(&name).await {
        Ok(info) if info.deleted => return Read::Missing,
        Ok(info) => info,
        Err(e) if e.kind() == InfoErrorKind::NotFound => return Read::Missing,
        Err(e) => return failed(&e),
    };
    if let Err(why) = check_entry(&info, max_bytes).and_then(|()| signer_ok(&info.metadata)) {
        return Read::Rejected(why);
    }
    let chunks = OrderedConfig {
        deliver_subject: source.nats.new_inbox(),
        filter_subject: format!("$O.{}.C.{}", source.bucket, info.nuid),
        ..Default::default()
    };
    let mut messages = match source.stream.create_consumer(chunks).await {
        Ok(consumer) => match consumer.messages().await {
            Ok(messages) => messages,
            Err(e) => return failed(&e),
        },
        Err(e) => return failed(&e),
    };
    let mut artifact = Vec::with_capacity(info.size.min(INITIAL_CAPACITY));
    for _ in 0..info.chunks {
        let chunk = match tokio::time::timeout(CHUNK_IDLE, messages.next()).await {
            Ok(Some(Ok(chunk))) => chunk,
            Ok(Some(Err(e))) => return failed(&e),
            Ok(None) | Err(_) => return Read::Rejected(Rejected::Stalled),
        };
        if (artifact.len() + chunk.payload.len()) as u64 > max_bytes {
            return Read::Rejected(Rejected::TooLarge);
        }
        artifact.extend_from_slice(&chunk.payload);
    }
    Read::Found(artifact, info.metadata)
}

/// What the entry alone says against reading it.
fn check_entry(info: &ObjectInfo, max_bytes: u64) -> Result<(), Rejected> {
    if info.options.as_ref().is_some_and(|o| o.link.is_some()) {
        return Err(Rejected::Link);
    }
    if info.size as u64 > max_bytes {
        return Err(Rejected::TooLarge);
    }
    if !is_chunk_id(&info.nuid) {
        return Err(Rejected::Damaged);
    }
    Ok(())
}

/// Whether `nuid` names one object's chunks: the client purges `$O.{bucket}.C.{nuid}` of the
/// entry it replaces, so a wildcard there would purge every artifact.
pub(super) fn is_chunk_id(nuid: &str) -> bool {
    !nuid.is_empty() && nuid.len() <= 64 && nuid.bytes().all(|b| b.is_ascii_alphanumeric())
}
