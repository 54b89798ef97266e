//! Who created which config and link: an app changes and deletes only what it created, so a
//! deployment never overwrites a config a user put by hand, and an undeploy never deletes it.
//!
//! Claims live in the apps bucket beside the records: `own.config.{name}` and
//! `own.link.{source.namespace.package.name}`, each holding the owning app's name. A claim is
//! taken (created only if absent) before the manager first writes what it names, and given
//! up after the manager deleted it.

use std::collections::BTreeMap;

use futures::TryStreamExt as _;
use trellis_lattice::link::LinkKey;

use crate::model::Claim;
use crate::records::{AppStore, Result, StoreError};

const CONFIG_PREFIX: &str = "own.config.";
const LINK_PREFIX: &str = "own.link.";

pub fn key(claim: &Claim) -> String {
    match claim {
        Claim::Config(name) => format!("{CONFIG_PREFIX}{name}"),
        Claim::Link(k) => format!("{LINK_PREFIX}{}", k.storage_key()),
    }
}

fn claim_of(key: &str) -> Option<Claim> {
    if let Some(name) = key.strip_prefix(CONFIG_PREFIX) {
        return Some(Claim::Config(name.to_string()));
    }
    key.strip_prefix(LINK_PREFIX)
        .and_then(LinkKey::from_storage_key)
        .map(Claim::Link)
}

/// Every claim and its owner.
pub async fn all(store: &AppStore) -> Result<BTreeMap<Claim, String>> {
    let kv = store.kv();
    let keys: Vec<String> = match kv.keys().await {
        Ok(keys) => keys.try_collect().await.map_err(nats)?,
        Err(e) => return Err(nats(e)),
    };
    let mut out = BTreeMap::new();
    for key in keys.iter().filter(|k| k.starts_with("own.")) {
        let (Some(claim), Some(owner)) = (claim_of(key), owner(store, key).await?) else {
            continue;
        };
        out.insert(claim, owner);
    }
    Ok(out)
}

async fn owner(store: &AppStore, key: &str) -> Result<Option<String>> {
    Ok(store.read::<String>(key).await?.value)
}

/// What taking a claim found.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// The app held it already.
    Held,
    /// The app holds it from now on.
    New,
    /// Another app holds it.
    Owner(String),
}

/// Takes `claim` for `app`.
pub async fn take(store: &AppStore, claim: &Claim, app: &str) -> Result<Taken> {
    let key = key(claim);
    loop {
        let current = store.read::<String>(&key).await?;
        match current.value {
            Some(owner) if owner == app => return Ok(Taken::Held),
            Some(owner) => return Ok(Taken::Owner(owner)),
            None => {
                let value = serde_json::to_vec(app).unwrap_or_default().into();
                if store
                    .write_if(&key, value, current.revision)
                    .await?
                    .is_some()
                {
                    return Ok(Taken::New);
                }
                // Someone else took it meanwhile: read again.
            }
        }
    }
}

/// Why `app` may not take these claims: each one another app holds, or that exists in the
/// lattice without an owner (a user put it by hand).
pub async fn conflicts(
    store: &AppStore,
    lattice: &trellis_lattice::kv::LatticeStore,
    app: &str,
    wanted: &[Claim],
) -> std::result::Result<Vec<String>, trellis_lattice::ControlError> {
    let mut out = Vec::new();
    for claim in wanted {
        match owner(store, &key(claim)).await? {
            Some(owner) if owner == app => {}
            Some(owner) => out.push(format!("{claim} belongs to application {owner}")),
            None => {
                let exists = match claim {
                    Claim::Config(name) => lattice.config(name).await?.is_some(),
                    Claim::Link(k) => lattice.link(k).await?.is_some(),
                };
                if exists {
                    out.push(format!(
                        "{claim} exists and was not created by application {app}"
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// Gives up `claim` if `app` holds it.
pub async fn give_up(store: &AppStore, claim: &Claim, app: &str) -> Result<()> {
    let key = key(claim);
    let current = store.read::<String>(&key).await?;
    if current.value.as_deref() == Some(app) {
        store.delete_if(&key, current.revision).await?;
    }
    Ok(())
}

fn nats(e: impl std::fmt::Display) -> StoreError {
    StoreError::Nats(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let link = Claim::Link(LinkKey {
            source_id: "counter".into(),
            wit_namespace: "wasi".into(),
            wit_package: "keyvalue".into(),
            name: "default".into(),
        });
        for claim in [Claim::Config("counter-bucket".into()), link] {
            assert_eq!(claim_of(&key(&claim)), Some(claim));
        }
        assert_eq!(claim_of("app.counter"), None);
    }
}
