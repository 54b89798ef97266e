//! Applications in JetStream KV (`trellis_apps_{lattice}`), shared by every manager instance:
//!
//! | key | value |
//! |---|---|
//! | `app.{name}` | [`AppRecord`]: the versions, what is deployed, what is being removed, history |
//! | `ver.{name}.{version}` | [`StoredVersion`]: one immutable manifest version (`.` in the version written as `=`) |
//! | `status.{name}` | [`AppStatus`], written by the leader |
//! | `_leader` | the leader lease (see [`crate::lease`]) |
//!
//! Records change only by compare-and-set on their revision, so API handlers on several
//! instances and the leader never lose each other's writes.

use async_nats::jetstream::kv;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt as _, TryStreamExt as _};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::Digest as _;
use trellis_lattice::app::{AppEvent, AppStatus};
use trellis_lattice::kv::open_bucket;
use trellis_lattice::manifest::Manifest;

/// Most history entries kept per app.
const MAX_HISTORY: usize = 200;
/// Compare-and-set attempts before giving up on a contended record.
const CAS_ATTEMPTS: usize = 20;

pub const LEADER_KEY: &str = "_leader";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("application store: {0}")]
    Nats(String),
    #[error("stored {what} is unreadable: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("application store: {0} kept changing under concurrent writes; try again")]
    Contended(String),
}

impl StoreError {
    fn nats(e: impl std::fmt::Display) -> Self {
        StoreError::Nats(e.to_string())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One stored version, as listed in the record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub version: String,
    pub stored_at: DateTime<Utc>,
    /// sha256 of the manifest as given (before a generated version was added).
    pub digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A manifest version, immutable once stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredVersion {
    pub version: String,
    pub stored_at: DateTime<Utc>,
    pub digest: String,
    pub manifest: Manifest,
}

/// What should run: a version, and the one before it whose leftovers (links, inline config
/// the new one no longer declares) are removed once the new one is deployed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub version: String,
    pub manifest: Manifest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Manifest>,
    pub at: DateTime<Utc>,
}

/// What is being taken off the lattice after an undeploy or delete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    /// Every manifest whose resources must go (the deployed one and the one before it).
    pub manifests: Vec<Manifest>,
    /// Forget the app once removed (a delete).
    pub delete: bool,
}

/// Everything about one app except the manifests of its versions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRecord {
    pub name: String,
    /// Oldest first.
    pub versions: Vec<VersionInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<Deployment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removal: Option<Removal>,
    /// Counts deployment changes; status carries the generation it reflects.
    pub generation: u64,
    /// Deploys, rollbacks, undeploys, oldest first.
    pub history: Vec<AppEvent>,
}

impl AppRecord {
    /// The version deployed before the current one, from the history.
    pub fn previous_deployed(&self) -> Option<String> {
        let current = self.deployed_version();
        self.history
            .iter()
            .rev()
            .filter(|e| e.action == "deploy" || e.action == "rollback")
            .filter_map(|e| e.version.clone())
            .find(|v| Some(v.as_str()) != current && self.version(v).is_some())
    }

    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            ..Self::default()
        }
    }

    pub fn latest(&self) -> Option<&VersionInfo> {
        self.versions.last()
    }

    pub fn version(&self, version: &str) -> Option<&VersionInfo> {
        self.versions.iter().find(|v| v.version == version)
    }

    pub fn deployed_version(&self) -> Option<&str> {
        self.deployment.as_ref().map(|d| d.version.as_str())
    }

    /// Records a deployment change and bumps the generation.
    pub fn log(&mut self, action: &str, version: Option<&str>) {
        self.generation += 1;
        self.history.push(AppEvent {
            at: Utc::now(),
            action: action.to_string(),
            version: version.map(str::to_string),
        });
        if self.history.len() > MAX_HISTORY {
            let excess = self.history.len() - MAX_HISTORY;
            self.history.drain(..excess);
        }
    }

    /// A record that only waits to be forgotten once its removal is done.
    pub fn is_tombstone(&self) -> bool {
        self.removal.as_ref().is_some_and(|r| r.delete)
    }
}

/// sha256 of a manifest's canonical JSON (maps are sorted, so equal manifests hash equal).
pub fn digest(manifest: &Manifest) -> String {
    let json = serde_json::to_vec(manifest).unwrap_or_default();
    hex::encode(sha2::Sha256::digest(&json))
}

pub fn record_key(name: &str) -> String {
    format!("app.{name}")
}

pub fn version_key(name: &str, version: &str) -> String {
    format!("ver.{name}.{}", version.replace('.', "="))
}

pub fn status_key(name: &str) -> String {
    format!("status.{name}")
}

/// The app name of a record key.
pub fn name_of_record_key(key: &str) -> Option<&str> {
    key.strip_prefix("app.")
}

/// The apps bucket of one lattice.
#[derive(Clone)]
pub struct AppStore {
    kv: kv::Store,
}

fn decode<T: DeserializeOwned>(what: &str, value: &[u8]) -> Result<T> {
    serde_json::from_slice(value).map_err(|e| StoreError::Corrupt {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

fn encode<T: Serialize>(value: &T) -> Bytes {
    serde_json::to_vec(value).unwrap_or_default().into()
}

/// A value with the revision it was read at (0: absent).
pub struct Versioned<T> {
    pub value: Option<T>,
    pub revision: u64,
}

impl AppStore {
    pub async fn open(
        nats: &async_nats::Client,
        subjects: &trellis_lattice::Subjects,
    ) -> Result<Self> {
        let js = subjects.jetstream(nats);
        let kv = open_bucket(
            &js,
            &subjects.apps_bucket(),
            "Trellis applications: versions, deployments, status",
            5,
        )
        .await
        .map_err(StoreError::nats)?;
        Ok(Self { kv })
    }

    pub fn kv(&self) -> &kv::Store {
        &self.kv
    }

    /// A value and its revision; a deleted key reads as absent with the delete's revision, so
    /// a compare-and-set can follow.
    pub async fn read<T: DeserializeOwned>(&self, key: &str) -> Result<Versioned<T>> {
        match self.kv.entry(key).await.map_err(StoreError::nats)? {
            Some(e) if e.operation == kv::Operation::Put => Ok(Versioned {
                value: Some(decode(key, &e.value)?),
                revision: e.revision,
            }),
            Some(e) => Ok(Versioned {
                value: None,
                revision: e.revision,
            }),
            None => Ok(Versioned {
                value: None,
                revision: 0,
            }),
        }
    }

    /// Writes `value` if the key is still at `revision` (0: absent); false on a conflict.
    pub async fn write_if(&self, key: &str, value: Bytes, revision: u64) -> Result<Option<u64>> {
        match self.kv.update(key, value, revision).await {
            Ok(rev) => Ok(Some(rev)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(StoreError::nats(e)),
        }
    }

    /// Deletes the key if it is still at `revision`; false on a conflict.
    pub async fn delete_if(&self, key: &str, revision: u64) -> Result<bool> {
        match self.kv.delete_expect_revision(key, Some(revision)).await {
            Ok(()) => Ok(true),
            Err(e) if e.to_string().contains("wrong last sequence") => Ok(false),
            Err(e) => Err(StoreError::nats(e)),
        }
    }

    pub async fn record(&self, name: &str) -> Result<Option<AppRecord>> {
        Ok(self.read(&record_key(name)).await?.value)
    }

    /// Changes a record by compare-and-set, retrying on conflicts. `change` gets the current
    /// record (or none) and returns the new one (`None` deletes it) and a result, or an error
    /// that leaves the record as it is.
    pub async fn update_record<R, E>(
        &self,
        name: &str,
        mut change: impl FnMut(Option<AppRecord>) -> Result<(Option<AppRecord>, R), E>,
    ) -> Result<Result<R, E>> {
        let key = record_key(name);
        for _ in 0..CAS_ATTEMPTS {
            let current = self.read::<AppRecord>(&key).await?;
            let existed = current.value.is_some();
            let (next, result) = match change(current.value) {
                Ok(r) => r,
                Err(e) => return Ok(Err(e)),
            };
            let done = match next {
                Some(record) => self
                    .write_if(&key, encode(&record), current.revision)
                    .await?
                    .is_some(),
                None if existed => self.delete_if(&key, current.revision).await?,
                None => true,
            };
            if done {
                return Ok(Ok(result));
            }
        }
        Err(StoreError::Contended(format!("app {name}")))
    }

    /// Stores a version unless it exists; returns the stored one (which may differ from
    /// `version` when someone stored other content under the same name first).
    pub async fn create_version(
        &self,
        name: &str,
        version: &StoredVersion,
    ) -> Result<StoredVersion> {
        let key = version_key(name, &version.version);
        let current = self.read::<StoredVersion>(&key).await?;
        if let Some(existing) = current.value {
            return Ok(existing);
        }
        match self
            .write_if(&key, encode(version), current.revision)
            .await?
        {
            Some(_) => Ok(version.clone()),
            None => self
                .read::<StoredVersion>(&key)
                .await?
                .value
                .ok_or(StoreError::Contended(key)),
        }
    }

    pub async fn version(&self, name: &str, version: &str) -> Result<Option<StoredVersion>> {
        Ok(self.read(&version_key(name, version)).await?.value)
    }

    pub async fn delete_version(&self, name: &str, version: &str) -> Result<()> {
        self.kv
            .purge(version_key(name, version))
            .await
            .map_err(StoreError::nats)
    }

    pub async fn status(&self, name: &str) -> Result<Option<AppStatus>> {
        Ok(self.read(&status_key(name)).await?.value)
    }

    pub async fn put_status(&self, status: &AppStatus) -> Result<()> {
        self.kv
            .put(status_key(&status.name), encode(status))
            .await
            .map_err(StoreError::nats)?;
        Ok(())
    }

    pub async fn delete_status(&self, name: &str) -> Result<()> {
        self.kv
            .purge(status_key(name))
            .await
            .map_err(StoreError::nats)
    }

    /// Forgets an app whose removal is done, unless its record changed meanwhile.
    pub async fn forget(&self, name: &str) -> Result<bool> {
        let key = record_key(name);
        let current = self.read::<AppRecord>(&key).await?;
        let Some(record) = current.value else {
            return Ok(true);
        };
        if !record.is_tombstone() || !record.versions.is_empty() {
            return Ok(false);
        }
        if !self.delete_if(&key, current.revision).await? {
            return Ok(false);
        }
        self.delete_status(name).await?;
        Ok(true)
    }

    /// Names of every app with a record, sorted.
    pub async fn names(&self) -> Result<Vec<String>> {
        let keys: Vec<String> = match self.kv.keys().await {
            Ok(keys) => keys.try_collect().await.map_err(StoreError::nats)?,
            Err(e) => return Err(StoreError::nats(e)),
        };
        let mut names: Vec<String> = keys
            .iter()
            .filter_map(|k| name_of_record_key(k).map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Every record now, then every change: `(name, record or None when deleted)`.
    pub async fn watch_records(
        &self,
    ) -> Result<futures::stream::BoxStream<'static, (String, Option<AppRecord>)>> {
        let watch = self
            .kv
            .watch_with_history("app.*")
            .await
            .map_err(StoreError::nats)?;
        Ok(watch
            .filter_map(|entry| async move {
                let entry = match entry {
                    Ok(e) => e,
                    Err(err) => {
                        tracing::warn!(%err, "app record watch error");
                        return None;
                    }
                };
                let name = name_of_record_key(&entry.key)?.to_string();
                match entry.operation {
                    kv::Operation::Put => match decode::<AppRecord>(&entry.key, &entry.value) {
                        Ok(r) => Some((name, Some(r))),
                        Err(err) => {
                            tracing::warn!(%err, "ignoring an unreadable app record");
                            None
                        }
                    },
                    _ => Some((name, None)),
                }
            })
            .boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_kv_keys() {
        assert_eq!(record_key("hello"), "app.hello");
        assert_eq!(version_key("hello", "v1.2.0"), "ver.hello.v1=2=0");
        assert_eq!(status_key("hello"), "status.hello");
        assert_eq!(name_of_record_key("app.hello"), Some("hello"));
        assert_eq!(name_of_record_key("ver.hello.v1"), None);
    }

    #[test]
    fn history_is_bounded_and_counts_generations() {
        let mut r = AppRecord::new("a");
        for i in 0..(MAX_HISTORY + 5) {
            r.log("deploy", Some(&format!("v{i}")));
        }
        assert_eq!(r.history.len(), MAX_HISTORY);
        assert_eq!(r.generation, (MAX_HISTORY + 5) as u64);
        assert_eq!(
            r.history.last().and_then(|e| e.version.as_deref()),
            Some(format!("v{}", MAX_HISTORY + 4).as_str())
        );
    }
}
