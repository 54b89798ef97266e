//! The manager's API: `Subjects::app(verb)`, served by every instance in one queue group.
//! Handlers are stateless: they read and write the apps bucket, so any instance answers the
//! same; the leader's loop sees their changes through its watch on the records.

use std::sync::Arc;

use chrono::Utc;
use futures::StreamExt as _;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use trellis_lattice::app::{
    AppChanged, AppHistory, AppManifest, AppName, AppPut, AppState, AppStatus, AppSummary,
    AppValidated, AppVersion, DeployApp, GetApp, PutApp,
};
use trellis_lattice::manifest::{Manifest, VERSION_ANNOTATION};
use trellis_lattice::server::{self, Answer, AppRequest, ControlRequest, Listen};
use trellis_lattice::{ControlError, LatticeClient, Subjects};

use checks::{check, immutable, no_version};

use crate::records::{
    self, AppRecord, AppStore, Deployment, Removal, StoreError, StoredVersion, VersionInfo,
};

mod checks;

/// Requests handled at once.
const MAX_CONCURRENT: usize = 64;

type ApiResult<T> = Result<T, ControlError>;

impl From<StoreError> for ControlError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Nats(_) => ControlError::unavailable(e.to_string()),
            StoreError::Corrupt { .. } => ControlError::internal(e.to_string()),
            StoreError::Contended(_) => ControlError::conflict(e.to_string()),
        }
    }
}

/// Serves the API until `shutdown`.
pub async fn serve(
    nats: async_nats::Client,
    subjects: Subjects,
    store: AppStore,
    lattice: Arc<LatticeClient>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listen = Listen::queue(subjects.app_wildcard(), subjects.app_queue_group());
    let requests = server::control_requests(&nats, &subjects, [listen]).await?;
    let mut requests = server::until_cancelled(requests, shutdown);
    nats.flush().await.ok();
    let limit = Arc::new(Semaphore::new(MAX_CONCURRENT));
    let api = Arc::new(Api { store, lattice });
    while let Some(incoming) = requests.next().await {
        if !incoming.wants_reply() {
            continue;
        }
        let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
            break;
        };
        let api = Arc::clone(&api);
        tokio::spawn(async move {
            let _permit = permit;
            let answer = match &incoming.request {
                Ok(ControlRequest::App(req)) => api.handle(req.clone()).await,
                Ok(other) => Err(ControlError::invalid(format!(
                    "{} is not an application request",
                    other.name()
                ))),
                Err(e) => Err(e.clone()),
            };
            incoming.respond(answer).await;
        });
    }
    Ok(())
}

pub struct Api {
    store: AppStore,
    /// For what exists in the lattice (a deployment must not take over a user's config).
    lattice: Arc<LatticeClient>,
}

impl Api {
    pub fn new(store: AppStore, lattice: Arc<LatticeClient>) -> Self {
        Self { store, lattice }
    }

    /// Refuses a deployment that would change config or links that are not the app's own.
    async fn check_ownership(&self, app: &str, manifest: &Manifest) -> ApiResult<()> {
        let lattice = self.lattice.store().await.map_err(ControlError::from)?;
        let wanted = crate::scaler::claims(manifest);
        let conflicts = crate::claims::conflicts(&self.store, lattice, app, &wanted).await?;
        if conflicts.is_empty() {
            return Ok(());
        }
        Err(ControlError::conflict(format!(
            "application {app} would take over what is not its own: {}; give its config and links other names in the manifest, or delete them first",
            conflicts.join("; ")
        )))
    }

    /// Handles one request.
    pub async fn handle(&self, req: AppRequest) -> Answer {
        use tracing::Instrument as _;
        let span = tracing::debug_span!("app request", request = req.name());
        self.dispatch(req).instrument(span).await
    }

    async fn dispatch(&self, req: AppRequest) -> Answer {
        match req {
            AppRequest::Put(r) => server::answer(self.put(r).await),
            AppRequest::Validate(r) => server::answer(self.validate(r).await),
            AppRequest::Deploy(r) => server::answer(self.deploy(r, false).await),
            AppRequest::Rollback(r) => server::answer(self.deploy(r, true).await),
            AppRequest::Undeploy(r) => server::answer(self.undeploy(r, false).await),
            AppRequest::Delete(r) => server::answer(self.undeploy(r, true).await),
            AppRequest::List(_) => server::answer(self.list().await),
            AppRequest::Status(r) => server::answer(self.status(r).await),
            AppRequest::History(r) => server::answer(self.history(r).await),
            AppRequest::Get(r) => server::answer(self.get(r).await),
        }
    }

    async fn record(&self, name: &str) -> ApiResult<AppRecord> {
        trellis_lattice::id::validate_token("application name", name)
            .map_err(ControlError::from)?;
        match self.store.record(name).await? {
            Some(r) if !(r.is_tombstone() && r.versions.is_empty()) => Ok(r),
            _ => Err(ControlError::not_found(format!(
                "no application named {name} (see `trellis app list`)"
            ))),
        }
    }

    async fn validate(&self, req: PutApp) -> ApiResult<AppValidated> {
        let m = check(&req.source_name, &req.manifest).await?;
        Ok(AppValidated {
            name: m.name().to_string(),
            version: m.version().map(str::to_string),
        })
    }

    async fn put(&self, req: PutApp) -> ApiResult<AppPut> {
        let mut manifest = check(&req.source_name, &req.manifest).await?;
        let name = manifest.name().to_string();
        let digest = records::digest(&manifest);
        let record = self.store.record(&name).await?;
        let existing = record
            .as_ref()
            .map(|r| r.versions.as_slice())
            .unwrap_or(&[]);
        let version = match manifest.version() {
            Some(v) => {
                if let Some(info) = existing.iter().find(|i| i.version == v) {
                    if info.digest == digest {
                        return Ok(AppPut {
                            name,
                            version: v.to_string(),
                            created: false,
                        });
                    }
                    return Err(immutable(&req.source_name, &name, v));
                }
                v.to_string()
            }
            None => {
                // The same manifest without a version is the version it was stored as.
                if let Some(info) = existing.iter().find(|i| i.digest == digest) {
                    return Ok(AppPut {
                        name,
                        version: info.version.clone(),
                        created: false,
                    });
                }
                let base = format!("v{}", Utc::now().format("%Y%m%d%H%M%S"));
                let mut v = base.clone();
                let mut n = 1;
                while existing.iter().any(|i| i.version == v) {
                    n += 1;
                    v = format!("{base}-{n}");
                }
                manifest
                    .metadata
                    .annotations
                    .insert(VERSION_ANNOTATION.to_string(), v.clone());
                v
            }
        };
        let stored = StoredVersion {
            version: version.clone(),
            stored_at: Utc::now(),
            digest: digest.clone(),
            manifest: manifest.clone(),
        };
        let kept = self.store.create_version(&name, &stored).await?;
        if kept.digest != digest {
            return Err(immutable(&req.source_name, &name, &version));
        }
        let info = VersionInfo {
            version: version.clone(),
            stored_at: kept.stored_at,
            digest,
            description: manifest.description().map(str::to_string),
        };
        let created = self
            .store
            .update_record(&name, |r| {
                let mut r = r.unwrap_or_else(|| AppRecord::new(&name));
                if let Some(removal) = r.removal.as_mut() {
                    // Put again while being deleted: keep the app once the removal is done.
                    removal.delete = false;
                }
                if r.version(&info.version).is_some() {
                    return Ok::<_, ControlError>((Some(r), false));
                }
                r.versions.push(info.clone());
                Ok((Some(r), true))
            })
            .await??;
        if created {
            tracing::info!(app = %name, version, "stored a new version");
        }
        Ok(AppPut {
            name,
            version,
            created,
        })
    }

    async fn deploy(&self, req: DeployApp, rollback: bool) -> ApiResult<AppChanged> {
        let record = self.record(&req.name).await?;
        let current = record.deployed_version().map(str::to_string);
        let version = match (&req.version, rollback) {
            (Some(v), _) => v.clone(),
            (None, false) => match record.latest() {
                Some(v) => v.version.clone(),
                None => {
                    return Err(ControlError::not_found(format!(
                        "application {} has no versions",
                        req.name
                    )))
                }
            },
            (None, true) => match record.previous_deployed() {
                Some(v) => v,
                None => {
                    return Err(ControlError::refused(format!(
                        "application {} has no earlier deployed version to roll back to; give a version (see `trellis app history {}`)",
                        req.name, req.name
                    )))
                }
            },
        };
        if record.version(&version).is_none() {
            return Err(no_version(&record, &version));
        }
        let Some(stored) = self.store.version(&req.name, &version).await? else {
            return Err(no_version(&record, &version));
        };
        self.check_ownership(&req.name, &stored.manifest).await?;
        let action = if rollback { "rollback" } else { "deploy" };
        let changed = self
            .store
            .update_record(&req.name, |r| {
                let Some(mut r) = r else {
                    return Err(ControlError::not_found(format!(
                        "no application named {}",
                        req.name
                    )));
                };
                if r.version(&version).is_none() {
                    return Err(no_version(&r, &version));
                }
                if r.deployed_version() == Some(version.as_str()) && r.removal.is_none() {
                    // Already the deployed version: nothing changes.
                    let out = AppChanged {
                        name: r.name.clone(),
                        version: Some(version.clone()),
                        generation: r.generation,
                    };
                    return Ok((Some(r), out));
                }
                let previous = match (r.deployment.take(), r.removal.take()) {
                    (Some(d), _) => Some(d.manifest),
                    (None, Some(removal)) => removal.manifests.into_iter().next(),
                    (None, None) => None,
                };
                r.deployment = Some(Deployment {
                    version: version.clone(),
                    manifest: stored.manifest.clone(),
                    previous,
                    at: Utc::now(),
                });
                r.log(action, Some(&version));
                let out = AppChanged {
                    name: r.name.clone(),
                    version: Some(version.clone()),
                    generation: r.generation,
                };
                Ok((Some(r), out))
            })
            .await??;
        tracing::info!(app = %req.name, version, from = ?current, action, "deployment recorded");
        Ok(changed)
    }

    async fn undeploy(&self, req: AppName, delete: bool) -> ApiResult<AppChanged> {
        let record = self.record(&req.name).await?;
        let action = if delete { "delete" } else { "undeploy" };
        let changed = self
            .store
            .update_record(&req.name, |r| {
                let Some(mut r) = r else {
                    return Err(ControlError::not_found(format!(
                        "no application named {}",
                        req.name
                    )));
                };
                let mut manifests: Vec<Manifest> = Vec::new();
                if let Some(d) = r.deployment.take() {
                    manifests.push(d.manifest);
                    manifests.extend(d.previous);
                }
                if let Some(removal) = r.removal.take() {
                    manifests.extend(removal.manifests);
                }
                if !delete && manifests.is_empty() {
                    // Not deployed: nothing to do.
                    let out = AppChanged {
                        name: r.name.clone(),
                        version: None,
                        generation: r.generation,
                    };
                    return Ok((Some(r), out));
                }
                r.log(action, None);
                if delete {
                    r.versions.clear();
                }
                let out = AppChanged {
                    name: r.name.clone(),
                    version: None,
                    generation: r.generation,
                };
                if manifests.is_empty() {
                    // Deleting an app that placed nothing: forget it now.
                    return Ok((None, out));
                }
                r.removal = Some(Removal { manifests, delete });
                Ok((Some(r), out))
            })
            .await??;
        if delete {
            for v in &record.versions {
                self.store.delete_version(&req.name, &v.version).await?;
            }
            if self.store.record(&req.name).await?.is_none() {
                self.store.delete_status(&req.name).await?;
            }
        }
        tracing::info!(app = %req.name, action, "recorded");
        Ok(changed)
    }

    async fn list(&self) -> ApiResult<Vec<AppSummary>> {
        let mut out = Vec::new();
        for name in self.store.names().await? {
            let Some(r) = self.store.record(&name).await? else {
                continue;
            };
            if r.is_tombstone() && r.versions.is_empty() {
                continue;
            }
            let st = self.current_status(&r).await?;
            out.push(AppSummary {
                name: r.name.clone(),
                description: r.latest().and_then(|v| v.description.clone()),
                deployed_version: r.deployed_version().map(str::to_string),
                latest_version: r.latest().map(|v| v.version.clone()),
                versions: r.versions.len(),
                status: st.status,
                reason: st.reason,
            });
        }
        Ok(out)
    }

    /// The stored status, or what can be said before the leader reconciled the latest change.
    async fn current_status(&self, r: &AppRecord) -> ApiResult<AppStatus> {
        let stored = self.store.status(&r.name).await?;
        match stored {
            Some(st) if st.generation >= r.generation => Ok(st),
            stale => {
                let mut st = AppStatus::pending(
                    &r.name,
                    r.deployed_version().map(str::to_string),
                    r.generation,
                );
                if r.removal.is_some() {
                    st.status = AppState::Reconciling;
                    st.reason = Some("removing what the app placed".into());
                } else if r.deployment.is_some() {
                    st.reason = Some("waiting for the deployment manager to reconcile".into());
                }
                // The scalers as last seen are still the best picture of the lattice.
                if let Some(old) = stale {
                    st.scalers = old.scalers;
                }
                Ok(st)
            }
        }
    }

    /// An app deleted but still removing what it placed answers with that (not "no such
    /// application"), so `app delete --wait` returns only once it is gone.
    async fn status(&self, req: AppName) -> ApiResult<AppStatus> {
        let r = match self.record(&req.name).await {
            Ok(r) => r,
            // Only after `record` checked the name: an invalid one is refused as such.
            Err(e) if e.kind == trellis_lattice::ErrorKind::NotFound => {
                match self.store.record(&req.name).await? {
                    Some(r) if r.removal.is_some() => r,
                    _ => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        self.current_status(&r).await
    }

    async fn history(&self, req: AppName) -> ApiResult<AppHistory> {
        let r = self.record(&req.name).await?;
        let deployed = r.deployed_version();
        Ok(AppHistory {
            name: r.name.clone(),
            versions: r
                .versions
                .iter()
                .map(|v| AppVersion {
                    version: v.version.clone(),
                    stored_at: v.stored_at,
                    description: v.description.clone(),
                    deployed: deployed == Some(v.version.as_str()),
                })
                .collect(),
            deployments: r.history.clone(),
        })
    }

    async fn get(&self, req: GetApp) -> ApiResult<AppManifest> {
        let r = self.record(&req.name).await?;
        let version = match req.version.clone() {
            Some(v) => v,
            None => match r
                .deployed_version()
                .or(r.latest().map(|v| v.version.as_str()))
            {
                Some(v) => v.to_string(),
                None => {
                    return Err(ControlError::not_found(format!(
                        "application {} has no versions",
                        req.name
                    )))
                }
            },
        };
        match self.store.version(&req.name, &version).await? {
            Some(s) => Ok(AppManifest {
                name: r.name.clone(),
                version: s.version,
                stored_at: s.stored_at,
                manifest: s.manifest,
            }),
            None => Err(no_version(&r, &version)),
        }
    }
}
