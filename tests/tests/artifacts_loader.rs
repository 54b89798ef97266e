//! A host built without a compiler (a board's build: `--no-default-features`) runs what a
//! server precompiled for it through the lattice, and refuses, saying how to fix it, what
//! nobody precompiled.

use trellis_lattice::control::CompiledFrom;
use trellis_lattice::ErrorKind;
use trellis_tests::artifacts::*;
use trellis_tests::component;

#[tokio::test]
async fn a_host_without_a_compiler_runs_only_what_was_precompiled_for_it() {
    let (nats, dir, seed, public, client) = lattice().await;

    // The board's flags, given to the server that compiles for it.
    let published = precompile(&nats, &["--profile", "edge", "--lattice-key-file", &seed])
        .await
        .expect("precompile");
    assert_ne!(published["load_fingerprint"], published["fingerprint"]);

    let board_flags = ["--profile", "edge", "--lattice-public-key", &public];
    let board = loader_host(&nats, dir.path(), "board", &board_flags).await;
    assert_eq!(
        start(&client, &board, "on-board").await,
        CompiledFrom::Lattice
    );

    // Nobody precompiled `upper`: the start is refused with what to run, and nothing runs.
    let upper = one_of("upper", "upper");
    let err = client
        .scale_component(board.id(), &upper)
        .await
        .expect_err("a component nobody precompiled");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let message = err.to_string();
    assert!(
        message.contains("not precompiled for this host"),
        "{message}"
    );
    assert!(message.contains("trellis-host --precompile"), "{message}");
    let inventory = client.inventory(board.id()).await.expect("inventory");
    let running: Vec<_> = inventory.components.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(running, ["on-board"]);

    // A board whose engine makes other code (on-demand allocation, as under `ulimit -v`)
    // has another fingerprint: what was precompiled for pooled memories is not offered to it.
    let other_flags = ["--pool-instances", "0", "--lattice-public-key", &public];
    let other = loader_host(&nats, dir.path(), "other", &other_flags).await;
    let greeter = one_of("greeter", "greeter");
    let err = client
        .scale_component(other.id(), &greeter)
        .await
        .expect_err("precompiled for other flags");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("the lattice has none"), "{err}");

    // A board that trusts another lattice key finds the artifact and refuses it, and says so.
    let (_, stranger) = lattice_key(dir.path(), "stranger").await;
    let trusting_another = ["--profile", "edge", "--lattice-public-key", &stranger];
    let wary = loader_host(&nats, dir.path(), "wary", &trusting_another).await;
    let err = client
        .scale_component(wary.id(), &greeter)
        .await
        .expect_err("signed by a key this board does not trust");
    let message = err.to_string();
    assert!(message.contains("artifact is refused"), "{message}");
    assert!(
        message.contains("not a lattice key this host trusts"),
        "{message}"
    );

    // `--precompile` needs a compiler.
    let out = tokio::process::Command::new(loader_bin())
        .args([
            "--nats-url",
            &nats.url(),
            "--lattice",
            LATTICE,
            "--ephemeral",
        ])
        .args(["--lattice-key-file", &seed, "--precompile"])
        .arg(component("greeter"))
        .output()
        .await
        .expect("run the loader");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("built without a compiler"), "{stderr}");
}
