//! Opening JetStream key-value buckets on any JetStream server.
//!
//! `async_nats` 0.49's `create_key_value` first reads the account info and fails to parse
//! the answer of servers before 2.10 (Debian bookworm ships nats-server 2.9.10), so a
//! bucket is created here as the stream it is (`KV_{bucket}` on `$KV.{bucket}.>`, the same
//! stream configuration `create_key_value` builds) and then opened with `get_key_value`.

use async_nats::jetstream::{self, kv, stream};

use crate::error::{Error, Result};

/// Opens bucket `name`, creating it with `history` values per key if it does not exist.
/// Several processes may race to create it.
pub async fn open_bucket(
    js: &jetstream::Context,
    name: &str,
    description: &str,
    history: i64,
) -> Result<kv::Store> {
    if let Ok(store) = js.get_key_value(name).await {
        return Ok(store);
    }
    let config = stream::Config {
        name: format!("KV_{name}"),
        description: Some(description.to_string()),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: history.max(1),
        discard: stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: 1,
        ..Default::default()
    };
    let created = js.create_stream(config).await;
    match js.get_key_value(name).await {
        Ok(store) => Ok(store),
        Err(open) => Err(Error::nats(
            format!(
                "opening the key-value bucket {name} (is JetStream enabled on the NATS server?)"
            ),
            match created {
                Err(create) => format!("{create}; {open}"),
                Ok(_) => open.to_string(),
            },
        )),
    }
}

/// Makes sure the lattice's link and config buckets exist, so that
/// `trellis_lattice::store::LatticeStore::open` finds them on any server version.
pub async fn ensure_lattice_buckets(nats: &async_nats::Client, lattice: &str) -> Result<()> {
    let js = jetstream::new(nats.clone());
    open_bucket(
        &js,
        &trellis_lattice::store::links_bucket(lattice),
        "Trellis links",
        5,
    )
    .await?;
    open_bucket(
        &js,
        &trellis_lattice::store::config_bucket(lattice),
        "Trellis named config",
        5,
    )
    .await?;
    Ok(())
}
