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
    /// What a host with a compiler and these flags on `target` looks up.
    pub fingerprint: String,
    /// What a host built without a compiler, with these flags on `target`, looks up.
    pub load_fingerprint: String,
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
    for fingerprint in [&compiled.fingerprint, &compiled.load_fingerprint] {
        anyhow::ensure!(
            shared
                .publish(fingerprint, &compiled.digest, compiled.artifact.clone())
                .await,
            "the artifact of {image} for {target} was not published (the log says why)"
        );
    }
    Ok(Published {
        image: image.to_string(),
        target: target.to_string(),
        digest: format!("sha256:{}", compiled.digest),
        fingerprint: compiled.fingerprint,
        load_fingerprint: compiled.load_fingerprint,
        bytes,
    })
}
