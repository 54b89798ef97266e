//! Compiled artifacts shared through the lattice: the first host to compile a component
//! publishes the artifact signed with the lattice key; another host with an empty cache loads
//! it instead of compiling, and a board loads what a server precompiled for it; a host
//! without the key compiles, and so does one that cannot reach the store.

use tokio::io::AsyncReadExt as _;
use trellis_lattice::control::{CompiledFrom, ScaleComponent};
use trellis_tests::artifacts::*;
use trellis_tests::{component, init_logging, NatsServer};

#[tokio::test]
async fn a_second_host_loads_what_the_first_compiled() {
    let (nats, dir, seed, public, client) = lattice().await;

    let first = host(&nats, dir.path(), "first", &["--lattice-key-file", &seed]).await;
    assert_eq!(
        start(&client, &first, "greeter-1").await,
        CompiledFrom::Compiled
    );
    let (name, artifact, metadata) = published(&bucket(&nats).await).await;
    assert!(
        name.ends_with(&format!(
            "/{}",
            sha256_hex(&std::fs::read(component("greeter")).unwrap())
        )),
        "{name}"
    );
    assert!(artifact.len() > 1000);
    assert_eq!(metadata.get("trellis-signer"), Some(&public));

    // A host that only holds the public key loads it, and keeps it: once nothing runs it,
    // the host finds it on disk.
    let second = host(
        &nats,
        dir.path(),
        "second",
        &["--lattice-public-key", &public],
    )
    .await;
    assert_eq!(
        start(&client, &second, "greeter-2").await,
        CompiledFrom::Lattice
    );
    assert_eq!(
        start(&client, &second, "greeter-3").await,
        CompiledFrom::Memory
    );
    for id in ["greeter-2", "greeter-3"] {
        let stop = ScaleComponent {
            component_id: id.to_string(),
            replicas: 0,
            ..Default::default()
        };
        client
            .scale_component(second.id(), &stop)
            .await
            .expect("stop");
    }
    assert_eq!(
        start(&client, &second, "greeter-4").await,
        CompiledFrom::Disk
    );

    // A host without the lattice key neither looks nor publishes.
    let other = host(&nats, dir.path(), "other", &[]).await;
    assert_eq!(
        start(&client, &other, "greeter-5").await,
        CompiledFrom::Compiled
    );
    // A host with another lattice's key does not trust this one's artifact.
    let (_, stranger) = lattice_key(dir.path(), "stranger").await;
    assert_eq!(
        start_on_reader(&nats, dir.path(), &stranger, &client, "wary", "greeter-6").await,
        CompiledFrom::Compiled
    );
}

#[tokio::test]
async fn a_board_loads_what_a_server_precompiled_for_it() {
    let (nats, dir, seed, public, client) = lattice().await;

    let refused = precompile(&nats, &["--profile", "edge"]).await.unwrap_err();
    assert!(refused.contains("--lattice-key-file"), "{refused}");

    // For boards of this machine's own target started with `--profile edge` (portable code):
    // the board loads it and compiles nothing.
    let edge = ["--profile", "edge", "--lattice-key-file", &seed];
    let here = precompile(&nats, &edge).await.expect("precompile");
    let board_flags = ["--profile", "edge", "--lattice-public-key", &public];
    let board = host(&nats, dir.path(), "board", &board_flags).await;
    assert_eq!(
        start(&client, &board, "on-board").await,
        CompiledFrom::Lattice
    );
    // A server (native CPU features, a larger pool) has another fingerprint: it compiles.
    let server = host(
        &nats,
        dir.path(),
        "server",
        &["--lattice-public-key", &public],
    )
    .await;
    assert_eq!(
        start(&client, &server, "on-server").await,
        CompiledFrom::Compiled
    );

    // For an aarch64 board: Cranelift cross-compiles, and the lattice holds aarch64 machine
    // code under that target's fingerprint.
    let mut arm_flags = edge.to_vec();
    arm_flags.extend(["--precompile-target", "aarch64-unknown-linux-gnu"]);
    let arm = precompile(&nats, &arm_flags).await.expect("cross-compile");
    assert_eq!(arm["target"], "aarch64-unknown-linux-gnu");
    assert_eq!(arm["digest"], here["digest"]);
    assert_ne!(arm["fingerprint"], here["fingerprint"]);
    let store = bucket(&nats).await;
    let name = format!(
        "{}/{}",
        arm["fingerprint"].as_str().expect("fingerprint"),
        arm["digest"]
            .as_str()
            .expect("digest")
            .trim_start_matches("sha256:")
    );
    let mut object = store.get(&name).await.expect("the aarch64 artifact");
    let mut elf = Vec::new();
    object.read_to_end(&mut elf).await.expect("read");
    assert_eq!(&elf[..4], b"\x7fELF");
    const EM_AARCH64: u16 = 183;
    assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), EM_AARCH64);
    assert_eq!(arm["bytes"].as_u64(), Some(elf.len() as u64));
}

#[tokio::test]
async fn a_host_that_cannot_reach_the_store_compiles() {
    init_logging();
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (seed, _) = lattice_key(dir.path(), "lattice").await;
    let client = nats.client(LATTICE).await;
    // A JetStream domain nobody serves: the store is as far away as from a leaf cut off from
    // its hub.
    let flags = ["--lattice-key-file", &seed, "--js-domain", "unreachable"];
    let cut_off = host(&nats, dir.path(), "cut-off", &flags).await;
    assert_eq!(
        start(&client, &cut_off, "first").await,
        CompiledFrom::Compiled
    );
    assert_eq!(
        start(&client, &cut_off, "second").await,
        CompiledFrom::Memory
    );
    let log = cut_off.log();
    assert!(log.contains("artifact store is unreachable"), "{log}");
}
