//! `trellis-host --precompile IMAGE`: compiles a component as a host with the same flags
//! would on `--precompile-target` (a board's `aarch64`, say), signs the artifact with the
//! lattice key, publishes it to the lattice and exits. Hosts with those flags on that target
//! then load it instead of compiling: a board need never compile at all.

use trellis_lattice::Subjects;

use crate::config::HostConfig;
use crate::runtime::SharedArtifacts;

/// What was published, as printed.
#[derive(serde::Serialize)]
pub struct Published {
    pub image: String,
    pub target: String,
    pub digest: String,
    pub fingerprint: String,
    pub bytes: usize,
}

pub async fn run(
    config: &HostConfig,
    host_id: &str,
    image: &str,
    target: &str,
) -> anyhow::Result<Published> {
    let compiled = crate::runtime::precompile(&config.runtime_config(), target, image).await?;
    let name = format!("trellis-host --precompile {host_id}");
    let (nats, _events) =
        crate::session::connect(&config.nats_url, &config.nats_options(), &name).await?;
    let subjects = Subjects::new(config.lattice.clone()).with_js_domain(config.js_domain.clone());
    let shared = SharedArtifacts::new(
        &nats,
        &subjects,
        host_id.to_string(),
        config.artifacts.trust.clone(),
    );
    let bytes = compiled.artifact.len();
    anyhow::ensure!(
        shared
            .publish(&compiled.fingerprint, &compiled.digest, compiled.artifact)
            .await,
        "the artifact of {image} for {target} was not published (the log says why)"
    );
    Ok(Published {
        image: image.to_string(),
        target: target.to_string(),
        digest: format!("sha256:{}", compiled.digest),
        fingerprint: compiled.fingerprint,
        bytes,
    })
}
