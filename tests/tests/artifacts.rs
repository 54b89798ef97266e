//! Compiled artifacts shared through the lattice: the first host to compile a component
//! publishes the artifact signed with the lattice key; another host with an empty cache loads
//! it instead of compiling; a host without the key, or an artifact altered, forged by a client
//! with a key of its own, or replaced by a link, is never loaded: the host compiles.

use std::path::Path;
use std::time::Duration;

use async_nats::jetstream::object_store::{ObjectMetadata, ObjectStore};
use futures::TryStreamExt as _;
use tokio::io::AsyncReadExt as _;
use trellis_lattice::control::{CompiledFrom, ScaleComponent};
use trellis_lattice::LatticeClient;
use trellis_tests::{component, init_logging, Cli, HostProcess, NatsServer};

const LATTICE: &str = "artifacts";

/// `trellis keys gen lattice`: the seed file and the printed public key.
async fn lattice_key(dir: &Path, name: &str) -> (String, String) {
    let seed = dir.join(format!("{name}.nk"));
    let cli = Cli::new("nats://127.0.0.1:1", "unused");
    let out = cli
        .run(&["keys", "gen", "lattice", "--out", seed.to_str().unwrap()])
        .await
        .ok();
    let public = out.stdout.trim().to_string();
    assert!(public.starts_with('C') && public.len() == 56, "{public}");
    (seed.display().to_string(), public)
}

/// A host with a compiled-artifact cache of its own (empty) and `flags`.
async fn host(nats: &NatsServer, dir: &Path, name: &str, flags: &[&str]) -> HostProcess {
    let cache = dir.join(format!("cache-{name}"));
    let mut extra = vec!["--cache-dir", cache.to_str().unwrap()];
    extra.extend_from_slice(flags);
    HostProcess::start(&nats.url(), LATTICE, &[], &extra).await
}

/// Starts greeter as `id` on `host`; where its compiled code came from.
async fn start(client: &LatticeClient, host: &HostProcess, id: &str) -> CompiledFrom {
    let request = ScaleComponent {
        component_id: id.to_string(),
        image: format!("file://{}", component("greeter").display()),
        replicas: 1,
        ..Default::default()
    };
    let scaled = client
        .scale_component(host.id(), &request)
        .await
        .unwrap_or_else(|e| panic!("starting {id}: {e}"));
    let answer = client
        .call(id, "greet", &[serde_json::json!("artifacts")])
        .await
        .unwrap_or_else(|e| panic!("{id} answers: {e}"));
    assert_eq!(answer, serde_json::json!("Hello, artifacts!"));
    scaled
        .compiled
        .expect("a start that loaded a component says from where")
}

async fn bucket(nats: &NatsServer) -> ObjectStore {
    async_nats::jetstream::new(nats.connect().await)
        .get_object_store(format!("trellis_artifacts_{LATTICE}"))
        .await
        .expect("the lattice's artifact store")
}

/// The one artifact in the store once it is there (its publisher writes it after the start).
async fn published(
    store: &ObjectStore,
) -> (String, Vec<u8>, std::collections::HashMap<String, String>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let names: Vec<String> = store
            .list()
            .await
            .expect("list")
            .map_ok(|info| info.name)
            .try_collect()
            .await
            .expect("list");
        if let [name] = names.as_slice() {
            let mut object = store.get(name).await.expect("get");
            let metadata = object.info().metadata.clone();
            let mut bytes = Vec::new();
            object.read_to_end(&mut bytes).await.expect("read");
            return (name.clone(), bytes, metadata);
        }
        assert!(names.len() < 2, "one artifact expected: {names:?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing was published"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn replace(
    store: &ObjectStore,
    name: &str,
    bytes: &[u8],
    metadata: std::collections::HashMap<String, String>,
) {
    let meta = ObjectMetadata {
        name: name.to_string(),
        metadata,
        ..Default::default()
    };
    let mut reader = bytes;
    store
        .put(meta, &mut reader)
        .await
        .expect("replace the artifact");
}

#[tokio::test]
async fn a_second_host_loads_what_the_first_compiled() {
    init_logging();
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (seed, public) = lattice_key(dir.path(), "lattice").await;
    let client = nats.client(LATTICE).await;

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
    let wary = host(
        &nats,
        dir.path(),
        "wary",
        &["--lattice-public-key", &stranger],
    )
    .await;
    assert_eq!(
        start(&client, &wary, "greeter-6").await,
        CompiledFrom::Compiled
    );
}

#[tokio::test]
async fn an_altered_forged_or_linked_artifact_is_compiled_again_and_replaced() {
    init_logging();
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (seed, public) = lattice_key(dir.path(), "lattice").await;
    let client = nats.client(LATTICE).await;
    let (_first, store) = bucket_after_first(&nats, &client, dir.path(), &seed).await;
    let (name, artifact, metadata) = published(&store).await;

    // Any client of the lattice may write the store. The original signature over other
    // bytes: one flipped byte of machine code.
    let mut altered = artifact.clone();
    let middle = altered.len() / 2;
    altered[middle] ^= 0x01;
    replace(&store, &name, &altered, metadata.clone()).await;
    let reader = host(
        &nats,
        dir.path(),
        "reader",
        &["--lattice-public-key", &public],
    )
    .await;
    assert_eq!(
        start(&client, &reader, "altered").await,
        CompiledFrom::Compiled
    );

    // Signed, but by a key the client made itself.
    let forger = nkeys::KeyPair::new_cluster();
    let mut forged = metadata.clone();
    forged.insert("trellis-signer".into(), forger.public_key());
    replace(&store, &name, &altered, forged).await;
    let reader = host(
        &nats,
        dir.path(),
        "reader2",
        &["--lattice-public-key", &public],
    )
    .await;
    assert_eq!(
        start(&client, &reader, "forged").await,
        CompiledFrom::Compiled
    );

    // A link to another object is not followed. (The client removes what the store knows of
    // the artifact's name first: the object store will not turn an object into a link.)
    let js = async_nats::jetstream::new(nats.connect().await);
    let stream = js
        .get_stream(format!("OBJ_trellis_artifacts_{LATTICE}"))
        .await
        .expect("the store's stream");
    stream
        .purge()
        .filter(format!("$O.trellis_artifacts_{LATTICE}.M.>"))
        .await
        .expect("purge the metadata");
    replace(&store, "elsewhere", &artifact, metadata.clone()).await;
    let target = store.info("elsewhere").await.expect("info");
    store.add_link(&name, &target).await.expect("link");
    let reader = host(
        &nats,
        dir.path(),
        "reader3",
        &["--lattice-public-key", &public],
    )
    .await;
    assert_eq!(
        start(&client, &reader, "linked").await,
        CompiledFrom::Compiled
    );
    store.delete("elsewhere").await.expect("delete decoy");

    // A host holding the seed that had to compile replaces what it could not use, and the
    // next host loads the good artifact again.
    let fixer = host(&nats, dir.path(), "fixer", &["--lattice-key-file", &seed]).await;
    assert_eq!(
        start(&client, &fixer, "fixer").await,
        CompiledFrom::Compiled
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let info = store.info(&name).await.expect("info");
        if info.options.as_ref().is_none_or(|o| o.link.is_none()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the link was not replaced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reader = host(
        &nats,
        dir.path(),
        "reader4",
        &["--lattice-public-key", &public],
    )
    .await;
    assert_eq!(
        start(&client, &reader, "again").await,
        CompiledFrom::Lattice
    );
}

/// A first host (with the seed) that compiled greeter, and the store it publishes to.
async fn bucket_after_first(
    nats: &NatsServer,
    client: &LatticeClient,
    dir: &Path,
    seed: &str,
) -> (HostProcess, ObjectStore) {
    let first = host(nats, dir, "first", &["--lattice-key-file", seed]).await;
    assert_eq!(start(client, &first, "first").await, CompiledFrom::Compiled);
    (first, bucket(nats).await)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `trellis-host --precompile greeter` with `flags`, as an operator runs it: what it printed
/// on success, or its error.
async fn precompile(nats: &NatsServer, flags: &[&str]) -> Result<serde_json::Value, String> {
    let greeter = component("greeter").display().to_string();
    let out = tokio::process::Command::new(trellis_tests::bin("trellis-host"))
        .args([
            "--nats-url",
            &nats.url(),
            "--lattice",
            LATTICE,
            "--ephemeral",
        ])
        .args(["--log", "warn", "--precompile", &greeter])
        .args(flags)
        .output()
        .await
        .expect("run trellis-host --precompile");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("one JSON line"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test]
async fn a_board_loads_what_a_server_precompiled_for_it() {
    init_logging();
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (seed, public) = lattice_key(dir.path(), "lattice").await;
    let client = nats.client(LATTICE).await;

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
async fn an_artifact_over_the_size_limit_is_not_read() {
    use trellis_host::runtime::{ArtifactTrust, Lookup, Rejected, SharedArtifacts};
    init_logging();
    let nats = NatsServer::start().await;
    let key = nkeys::KeyPair::new_cluster();
    let trust = ArtifactTrust::new(Some(key), &[]).expect("trust");
    let subjects = trellis_lattice::Subjects::new(LATTICE);
    let connection = nats.connect().await;
    let shared = |limit| {
        SharedArtifacts::new(&connection, &subjects, "NHOST".into(), trust.clone())
            .with_max_bytes(limit)
    };
    let (fingerprint, digest) = ("f".repeat(32), "d".repeat(64));
    let artifact = vec![7u8; 4096];
    assert!(shared(4096).publish(&fingerprint, &digest, &artifact).await);
    match shared(4096).fetch(&fingerprint, &digest).await {
        Lookup::Found(read) => assert_eq!(read, artifact),
        other => panic!("at the limit it is read: {other:?}"),
    }
    match shared(4095).fetch(&fingerprint, &digest).await {
        Lookup::Rejected(Rejected::TooLarge) => {}
        other => panic!("one byte over the limit it is not: {other:?}"),
    }
    match shared(4096).fetch(&fingerprint, &"e".repeat(64)).await {
        Lookup::Missing => {}
        other => panic!("another digest is missing: {other:?}"),
    }
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
