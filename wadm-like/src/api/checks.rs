//! Checks the API makes before it stores or deploys anything, and the refusals it answers with.

use trellis_lattice::manifest::Manifest;
use trellis_lattice::ControlError;

use crate::records::AppRecord;

type ApiResult<T> = Result<T, ControlError>;

/// How long checking a manifest (and reading the images it names) may take.
const CHECK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Validates manifest text, checking links against the images the manager can read: on a
/// blocking thread (it reads files), so a slow disk never holds up other requests.
pub(super) async fn check(source_name: &str, text: &str) -> ApiResult<Manifest> {
    let (source, text) = (source_name.to_string(), text.to_string());
    let work = tokio::task::spawn_blocking(move || {
        trellis_validate::parse_and_check_absolute_images(&source, &text)
    });
    match tokio::time::timeout(CHECK_DEADLINE, work).await {
        Ok(Ok(result)) => result.map_err(|e| ControlError::invalid(e.to_string())),
        Ok(Err(join)) => Err(ControlError::internal(format!(
            "checking the manifest failed: {join}"
        ))),
        Err(_) => Err(ControlError::unavailable(format!(
            "checking {source_name} and the images it names took longer than {}",
            humantime::format_duration(CHECK_DEADLINE)
        ))),
    }
}

pub(super) fn immutable(source_name: &str, name: &str, version: &str) -> ControlError {
    ControlError::conflict(format!(
        "{source_name}: metadata.annotations.version: version {version} of application {name} is already stored with different content; versions are immutable (give this one another version)"
    ))
}

pub(super) fn no_version(r: &AppRecord, version: &str) -> ControlError {
    let have: Vec<&str> = r.versions.iter().map(|v| v.version.as_str()).collect();
    ControlError::not_found(format!(
        "application {} has no version {version} (it has: {})",
        r.name,
        if have.is_empty() {
            "none".to_string()
        } else {
            have.join(", ")
        }
    ))
}
