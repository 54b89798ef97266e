//! What a host will execute as a provider: only what its operator allowed (a directory, an
//! interpreter), never a file elsewhere on its disk, never through a link out of an allowed
//! directory, and as the user the operator named.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use trellis_lattice::control::StartProvider;
use trellis_lattice::{ControlError, LatticeClient, Placement};
use trellis_tests::{
    counter_across_two_hosts_with, init_logging, pids_with_env, HostProcess, NatsServer,
};

async fn start(client: &LatticeClient, host: &str, image: &Path) -> Result<(), ControlError> {
    client
        .start_provider(
            &Placement::Host(host.to_string()),
            &StartProvider {
                provider_id: "p".into(),
                image: image.display().to_string(),
                config: vec![],
                annotations: Default::default(),
            },
        )
        .await
        .map(|_| ())
        .map_err(|e| match e {
            trellis_lattice::Error::Control(c) => c,
            other => panic!("not a control error: {other}"),
        })
}

/// A script that leaves a mark when it runs.
fn marking_script(dir: &Path, name: &str, marker: &Path) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("#!/bin/sh\ntouch {}\nexit 3\n", marker.display()),
    )
    .expect("script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[tokio::test]
async fn a_host_runs_only_providers_its_operator_allowed() {
    init_logging();
    let nats = NatsServer::start().await;
    let allowed = tempfile::tempdir().expect("tempdir");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let marker = elsewhere.path().join("ran");
    let outside = marking_script(elsewhere.path(), "outside.sh", &marker);
    let inside = marking_script(allowed.path(), "inside.sh", &marker);
    let link = allowed.path().join("link.sh");
    std::os::unix::fs::symlink(&outside, &link).expect("symlink");
    let dir = allowed.path().display().to_string();
    let strict = HostProcess::start(&nats.url(), "exec", &[], &["--provider-dir", &dir]).await;
    let client = nats.client("exec").await;

    // A file outside the allowed directory, even an executable of the workspace, is refused
    // before it is read; a link inside pointing out of it counts as outside.
    for image in [
        outside.clone(),
        link.clone(),
        trellis_tests::bin("trellis-provider-keyvalue-nats"),
    ] {
        let err = start(&client, strict.id(), &image).await.unwrap_err();
        assert_eq!(err.kind, trellis_lattice::ErrorKind::Refused, "{err}");
        assert!(err.message.contains("--provider-dir"), "{err}");
    }
    // Inside, a script whose interpreter the operator did not allow is refused too.
    let err = start(&client, strict.id(), &inside).await.unwrap_err();
    assert!(err.message.contains("/bin/sh"), "{err}");
    assert!(err.message.contains("--provider-interpreter"), "{err}");
    assert!(!marker.exists(), "nothing ran");

    // With the interpreter allowed the script runs (and fails the start by exiting, which is
    // how this test knows it ran).
    let lenient = HostProcess::start(
        &nats.url(),
        "exec",
        &[],
        &["--provider-dir", &dir, "--provider-interpreter", "/bin/sh"],
    )
    .await;
    let err = start(&client, lenient.id(), &inside).await.unwrap_err();
    assert!(err.message.contains("exited"), "{err}");
    assert!(marker.exists(), "the allowed script ran");
    std::fs::remove_file(&marker).expect("rm marker");
    let err = start(&client, lenient.id(), &link).await.unwrap_err();
    assert!(err.message.contains("--provider-dir"), "{err}");
    assert!(!marker.exists(), "a link out of the directory never runs");
}

#[tokio::test]
async fn a_host_without_an_allowed_directory_starts_only_builtin_providers() {
    init_logging();
    let nats = NatsServer::start().await;
    // An empty list: the operator allowed no directory.
    let host = HostProcess::start_with_env(
        &nats.url(),
        "exec-none",
        &[],
        &[],
        &[("TRELLIS_PROVIDER_DIRS", "")],
    )
    .await;

    let client = nats.client("exec-none").await;
    let exe = trellis_tests::bin("trellis-provider-keyvalue-nats");
    let err = start(&client, host.id(), &exe).await.unwrap_err();
    assert!(err.message.contains("only builtin://"), "{err}");
    trellis_tests::start_provider_on(&client, host.id(), "kv", "builtin://keyvalue-nats").await;
}

#[tokio::test]
async fn external_providers_run_as_the_provider_user_from_a_copy_they_cannot_change() {
    init_logging();
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test switches users: run the suite as root"
    );
    let nats = NatsServer::start().await;
    let cache = tempfile::tempdir().expect("tempdir");
    // The providers' user must be able to reach the cached copy.
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
    let cache_dir = cache.path().display().to_string();
    let a = HostProcess::start(&nats.url(), "exec-user", &[], &[]).await;
    let b = HostProcess::start(
        &nats.url(),
        "exec-user",
        &[],
        &["--provider-user", "nobody", "--cache-dir", &cache_dir],
    )
    .await;
    let client = nats.client("exec-user").await;
    let exe = trellis_tests::bin("trellis-provider-keyvalue-nats");
    counter_across_two_hosts_with(
        &client,
        a.id(),
        b.id(),
        "exec-user",
        &format!("file://{}", exe.display()),
    )
    .await;
    let value = client
        .call("counter", "increment", &[serde_json::json!("n")])
        .await
        .expect("a call through the provider");
    assert_eq!(value.as_u64(), Some(1), "{value}");

    let pids = pids_with_env("TRELLIS_HOST_ID", b.id());
    assert_eq!(pids.len(), 1, "one provider process: {pids:?}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", pids[0])).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(field("Uid:"), vec!["65534"; 4], "{status}");
    assert!(
        field("Groups:").is_empty(),
        "no supplementary groups: {status}"
    );

    let copies: Vec<_> = std::fs::read_dir(cache.path().join("providers"))
        .expect("cached providers")
        .flatten()
        .collect();
    assert_eq!(copies.len(), 1);
    let meta = copies[0].metadata().expect("metadata");
    assert_eq!(meta.uid(), 0, "owned by the host's user");
    assert_eq!(
        meta.mode() & 0o7777,
        0o750,
        "the providers' group may only run it"
    );
    assert_eq!(meta.gid(), field("Gid:")[0].parse::<u32>().expect("gid"));
}
