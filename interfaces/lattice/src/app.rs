//! The deployment manager's API: application requests and replies, app and scaler status,
//! and their subjects.
//!
//! Every manager instance of a lattice serves `Subjects::app(verb)` in one queue group, so any
//! instance answers; the handlers read and write the apps bucket (`Subjects::apps_bucket`),
//! never one process's memory. Status changes are published as `app_status` events
//! (`Event::AppStatus`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::manifest::Manifest;

/// Verbs of the manager's API.
pub mod verb {
    /// Validate and store a manifest version ([`super::PutApp`]).
    pub const PUT: &str = "put";
    /// Validate a manifest without storing it ([`super::PutApp`]).
    pub const VALIDATE: &str = "validate";
    /// Deploy a stored version ([`super::DeployApp`]).
    pub const DEPLOY: &str = "deploy";
    /// Deploy an earlier version ([`super::DeployApp`]).
    pub const ROLLBACK: &str = "rollback";
    /// Remove what the app placed, keep its versions ([`super::AppName`]).
    pub const UNDEPLOY: &str = "undeploy";
    /// Undeploy and forget every version ([`super::AppName`]).
    pub const DELETE: &str = "delete";
    /// Every app ([`super::ListApps`]).
    pub const LIST: &str = "list";
    /// One app's status ([`super::AppName`]).
    pub const STATUS: &str = "status";
    /// One app's versions and deployments ([`super::AppName`]).
    pub const HISTORY: &str = "history";
    /// A stored manifest ([`super::GetApp`]).
    pub const GET: &str = "get";

    pub const ALL: &[&str] = &[
        PUT, VALIDATE, DEPLOY, ROLLBACK, UNDEPLOY, DELETE, LIST, STATUS, HISTORY, GET,
    ];
}

/// Store a manifest as a new version (or check it, for `validate`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutApp {
    /// The name errors are reported under (the file name).
    pub source_name: String,
    /// YAML or JSON text.
    pub manifest: String,
}

/// The answer to a put.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppPut {
    pub name: String,
    pub version: String,
    /// False when this exact manifest was stored before (the put changed nothing).
    pub created: bool,
}

/// The answer to a validate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppValidated {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Deploy a version (the latest stored when absent); for a rollback, the version deployed
/// before the current one when absent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployApp {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// An app named in a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppName {
    pub name: String,
}

/// A stored manifest: the deployed version (or the latest) when no version is given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetApp {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListApps {}

/// The answer to deploy, rollback, undeploy and delete: the change was recorded; the
/// manager carries it out. Status with this `generation` or later reflects it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppChanged {
    pub name: String,
    /// The version now deployed (none after undeploy and delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub generation: u64,
}

/// One app in a listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSummary {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_version: Option<String>,
    pub versions: usize,
    pub status: AppState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A stored manifest version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppManifest {
    pub name: String,
    pub version: String,
    pub stored_at: DateTime<Utc>,
    pub manifest: Manifest,
}

/// One stored version in a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppVersion {
    pub version: String,
    pub stored_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Deployed now.
    pub deployed: bool,
}

/// What happened to an app, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppEvent {
    pub at: DateTime<Utc>,
    /// `deploy`, `rollback`, `undeploy` or `delete`.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// An app's versions (oldest first) and deployments (oldest first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppHistory {
    pub name: String,
    pub versions: Vec<AppVersion>,
    pub deployments: Vec<AppEvent>,
}

/// Where an app stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppState {
    Deployed,
    Reconciling,
    Failed,
    /// Not deployed (never, or undeployed and cleaned up).
    Undeployed,
}

impl AppState {
    pub fn as_str(self) -> &'static str {
        match self {
            AppState::Deployed => "deployed",
            AppState::Reconciling => "reconciling",
            AppState::Failed => "failed",
            AppState::Undeployed => "undeployed",
        }
    }

    /// Any failed scaler fails the app; pending work or scalers not yet there reconcile it.
    pub fn roll_up(scalers: &[ScalerStatus], commands_pending: bool) -> Self {
        if scalers.iter().any(|s| s.state == ScalerState::Failed) {
            AppState::Failed
        } else if commands_pending || scalers.iter().any(|s| s.state != ScalerState::Deployed) {
            AppState::Reconciling
        } else {
            AppState::Deployed
        }
    }
}

impl std::fmt::Display for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScalerState {
    Deployed,
    Reconciling,
    Failed,
}

impl ScalerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ScalerState::Deployed => "deployed",
            ScalerState::Reconciling => "reconciling",
            ScalerState::Failed => "failed",
        }
    }
}

/// The state of one scaler: one component's placement, one link or one config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScalerStatus {
    /// `spreadscaler`, `daemonscaler`, `link` or `config`.
    pub kind: String,
    /// The component or provider id, the link, or the config name.
    pub name: String,
    /// The manifest component it belongs to.
    pub component: String,
    pub state: ScalerState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub desired: u32,
    pub actual: u32,
    /// Desired replicas per host id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub placements: BTreeMap<String, u32>,
}

/// An app's status, as `trellis app status NAME -o json` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppStatus {
    pub name: String,
    /// The version deployed (or being removed).
    #[serde(default)]
    pub version: Option<String>,
    pub status: AppState,
    /// Why the app is failed or still reconciling, in one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub scalers: Vec<ScalerStatus>,
    /// The deployment change (see [`AppChanged::generation`]) this status reflects.
    pub generation: u64,
    pub updated_at: DateTime<Utc>,
}

impl AppStatus {
    /// The status of an app nobody has reconciled yet.
    pub fn pending(name: &str, version: Option<String>, generation: u64) -> Self {
        Self {
            name: name.to_string(),
            status: if version.is_some() {
                AppState::Reconciling
            } else {
                AppState::Undeployed
            },
            version,
            reason: None,
            scalers: Vec::new(),
            generation,
            updated_at: Utc::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_json_shape() {
        let st = AppStatus::pending("hello", Some("v1".into()), 3);
        let v = serde_json::to_value(&st).unwrap();
        assert_eq!(v["name"], "hello");
        assert_eq!(v["version"], "v1");
        assert_eq!(v["status"], "reconciling");
        assert!(v["scalers"].is_array());
    }
}
