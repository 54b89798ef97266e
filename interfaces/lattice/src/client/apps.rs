//! Applications: the deployment manager's API.

use std::time::Duration;

use serde::{de::DeserializeOwned, Serialize};

use crate::app::{
    verb, AppChanged, AppHistory, AppManifest, AppName, AppPut, AppStatus, AppSummary,
    AppValidated, DeployApp, GetApp, ListApps, PutApp,
};
use crate::error::{Error, ErrorKind, Result};
use crate::id;

use super::LatticeClient;

impl LatticeClient {
    async fn app_request<Req: Serialize + crate::server::checks::Check, Resp: DeserializeOwned>(
        &self,
        verb: &str,
        body: &Req,
    ) -> Result<Resp> {
        // A put reads the component images to check links; give it more than a lookup.
        let timeout = match verb {
            verb::PUT | verb::VALIDATE => self.config.request_timeout.max(Duration::from_secs(30)),
            _ => self.config.request_timeout,
        };
        self.request(self.subjects.app(verb), body, timeout)
            .await
            .map_err(|e| match e {
                Error::NoResponders(_) => Error::control(
                    ErrorKind::Unavailable,
                    format!(
                        "no deployment manager answers in lattice `{}` (start one with `trellis-deploy` or `trellis up`)",
                        self.lattice()
                    ),
                ),
                other => other,
            })
    }

    /// Validates a manifest (YAML or JSON text) and stores it as a new version. A manifest
    /// with mistakes is refused with every mistake, one per line, and nothing is stored.
    pub async fn put_app(&self, source_name: &str, manifest: &str) -> Result<AppPut> {
        self.app_request(
            verb::PUT,
            &PutApp {
                source_name: source_name.to_string(),
                manifest: manifest.to_string(),
            },
        )
        .await
    }

    /// Validates a manifest on the manager (with the images it can read) without storing it.
    pub async fn validate_app(&self, source_name: &str, manifest: &str) -> Result<AppValidated> {
        self.app_request(
            verb::VALIDATE,
            &PutApp {
                source_name: source_name.to_string(),
                manifest: manifest.to_string(),
            },
        )
        .await
    }

    /// Deploys a stored version (the latest when `version` is `None`).
    pub async fn deploy_app(&self, name: &str, version: Option<&str>) -> Result<AppChanged> {
        id::validate_token("application name", name)?;
        self.app_request(
            verb::DEPLOY,
            &DeployApp {
                name: name.to_string(),
                version: version.map(str::to_string),
            },
        )
        .await
    }

    /// Deploys an earlier version (the one deployed before the current when `None`).
    pub async fn rollback_app(&self, name: &str, version: Option<&str>) -> Result<AppChanged> {
        id::validate_token("application name", name)?;
        self.app_request(
            verb::ROLLBACK,
            &DeployApp {
                name: name.to_string(),
                version: version.map(str::to_string),
            },
        )
        .await
    }

    /// Removes everything the app placed; its versions stay stored.
    pub async fn undeploy_app(&self, name: &str) -> Result<AppChanged> {
        id::validate_token("application name", name)?;
        self.app_request(
            verb::UNDEPLOY,
            &AppName {
                name: name.to_string(),
            },
        )
        .await
    }

    /// Undeploys the app and forgets every version of it.
    pub async fn delete_app(&self, name: &str) -> Result<AppChanged> {
        id::validate_token("application name", name)?;
        self.app_request(
            verb::DELETE,
            &AppName {
                name: name.to_string(),
            },
        )
        .await
    }

    /// Every application, sorted by name.
    pub async fn apps(&self) -> Result<Vec<AppSummary>> {
        self.app_request(verb::LIST, &ListApps {}).await
    }

    pub async fn app_status(&self, name: &str) -> Result<AppStatus> {
        id::validate_token("application name", name)?;
        self.app_request(
            verb::STATUS,
            &AppName {
                name: name.to_string(),
            },
        )
        .await
    }

    pub async fn app_history(&self, name: &str) -> Result<AppHistory> {
        id::validate_token("application name", name)?;
        self.app_request(
            verb::HISTORY,
            &AppName {
                name: name.to_string(),
            },
        )
        .await
    }

    /// A stored manifest: `version`, or the deployed (else latest) one.
    pub async fn app_manifest(&self, name: &str, version: Option<&str>) -> Result<AppManifest> {
        id::validate_token("application name", name)?;
        self.app_request(
            verb::GET,
            &GetApp {
                name: name.to_string(),
                version: version.map(str::to_string),
            },
        )
        .await
    }
}
