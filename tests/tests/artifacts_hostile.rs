//! Shared artifacts as a hostile client of the lattice leaves them: altered, forged with a key
//! of its own, a link, over the size limit, an entry whose chunks never arrive or whose chunk
//! id is a wildcard. None is loaded; the host compiles, a host with the seed replaces what can
//! be replaced, and nothing else in the store is lost.

use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use trellis_lattice::control::CompiledFrom;
use trellis_tests::artifacts::*;
use trellis_tests::{init_logging, NatsServer};

#[tokio::test]
async fn an_altered_forged_or_linked_artifact_is_compiled_again_and_replaced() {
    let (nats, dir, seed, public, client) = lattice().await;
    let (_first, store) = bucket_after_first(&nats, &client, dir.path(), &seed).await;
    let (name, artifact, metadata) = published(&store).await;

    // Any client of the lattice may write the store. The original signature over other
    // bytes: one flipped byte of machine code.
    let mut altered = artifact.clone();
    let middle = altered.len() / 2;
    altered[middle] ^= 0x01;
    replace(&store, &name, &altered, metadata.clone()).await;
    assert_eq!(
        start_on_reader(&nats, dir.path(), &public, &client, "reader", "altered").await,
        CompiledFrom::Compiled
    );

    // Signed, but by a key the client made itself.
    let forger = nkeys::KeyPair::new_cluster();
    let mut forged = metadata.clone();
    forged.insert("trellis-signer".into(), forger.public_key());
    replace(&store, &name, &altered, forged).await;
    assert_eq!(
        start_on_reader(&nats, dir.path(), &public, &client, "reader2", "forged").await,
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
    assert_eq!(
        start_on_reader(&nats, dir.path(), &public, &client, "reader3", "linked").await,
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
    assert_eq!(
        start_on_reader(&nats, dir.path(), &public, &client, "reader4", "again").await,
        CompiledFrom::Lattice
    );
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
    assert!(
        shared(4096)
            .publish(&fingerprint, &digest, artifact.clone())
            .await
    );
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
async fn a_crafted_entry_neither_stalls_starts_nor_wipes_the_store() {
    let (nats, dir, seed, public, client) = lattice().await;
    let (_first, store) = bucket_after_first(&nats, &client, dir.path(), &seed).await;
    let (name, _, _) = published(&store).await;
    let genuine = store.info(&name).await.expect("entry");
    // Another artifact, to see that nothing purges it.
    let witness = vec![9u8; 300_000];
    replace(&store, "witness", &witness, Default::default()).await;

    // The genuine signed entry, now naming chunks that never arrive: the read gives up after
    // an idle chunk, the host compiles, and one holding the seed replaces the entry.
    let mut stalled = genuine.clone();
    stalled.nuid = "NOSUCHCHUNKS".into();
    stalled.chunks = 3;
    craft_entry(&nats, &stalled).await;
    assert_eq!(
        start_on_reader(&nats, dir.path(), &public, &client, "reader", "stalled").await,
        CompiledFrom::Compiled
    );
    let fixer = host(&nats, dir.path(), "fixer", &["--lattice-key-file", &seed]).await;
    assert_eq!(
        start(&client, &fixer, "fixer").await,
        CompiledFrom::Compiled
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while store.info(&name).await.expect("entry").nuid == stalled.nuid {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the entry was not replaced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // An entry whose chunk id is a wildcard: replacing it would purge every chunk of the
    // store, so no host replaces it, and every other artifact stays whole.
    let mut wildcard = genuine.clone();
    wildcard.nuid = ">".into();
    craft_entry(&nats, &wildcard).await;
    let mut seeded = host(&nats, dir.path(), "seeded", &["--lattice-key-file", &seed]).await;
    assert_eq!(
        start(&client, &seeded, "wildcard").await,
        CompiledFrom::Compiled
    );
    // A graceful stop waits for the host's writes (and a publish) to finish.
    assert!(seeded.terminate().await.success());
    assert_eq!(store.info(&name).await.expect("entry").nuid, ">");
    let mut object = store.get("witness").await.expect("witness");
    let mut read = Vec::new();
    object
        .read_to_end(&mut read)
        .await
        .expect("read the witness");
    assert_eq!(read, witness);
}

#[tokio::test]
async fn bad_flags_and_images_are_refused_clearly_without_echoing_files() {
    let (nats, dir, seed, _, _) = lattice().await;
    const SECRET: &str = "SECRET-TOKEN-4242";
    let refused = |args: Vec<String>| {
        let nats = &nats;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let err = run_host(nats, &args).await.expect_err("refused");
            assert!(!err.contains(SECRET), "file contents echoed: {err}");
            err
        }
    };
    let path = |name: &str| dir.path().join(name).display().to_string();

    // Images that are not components: a text file, a directory, a truncated component.
    std::fs::write(path("secret.txt"), format!("{SECRET}\n")).unwrap();
    let mut truncated = std::fs::read(trellis_tests::component("greeter")).unwrap();
    truncated.truncate(truncated.len() / 2);
    std::fs::write(path("truncated.wasm"), truncated).unwrap();
    for (image, why) in [
        (path("secret.txt"), "not a WebAssembly component"),
        (dir.path().display().to_string(), "not a regular file"),
        (path("truncated.wasm"), "failed to compile"),
    ] {
        let err = refused(vec![
            "--precompile".into(),
            image,
            "--lattice-key-file".into(),
            seed.clone(),
        ])
        .await;
        assert!(err.contains(why), "{why}: {err}");
    }

    // A target nobody can compile for, and a target without --precompile.
    let greeter = trellis_tests::component("greeter").display().to_string();
    let err = refused(vec![
        "--precompile".into(),
        greeter,
        "--lattice-key-file".into(),
        seed.clone(),
        "--precompile-target".into(),
        "no-such-triple".into(),
    ])
    .await;
    assert!(err.contains("compiling for no-such-triple"), "{err}");
    let err = refused(vec![
        "--precompile-target".into(),
        "x86_64-unknown-linux-gnu".into(),
    ])
    .await;
    assert!(err.contains("--precompile"), "{err}");

    // Keys that are not lattice keys; seed files that are not seed files.
    let err = refused(vec!["--lattice-public-key".into(), SECRET.into()]).await;
    assert!(err.contains("not a lattice public key"), "{err}");
    let issuer = nkeys::KeyPair::new_account().public_key();
    let err = refused(vec!["--lattice-public-key".into(), issuer]).await;
    assert!(err.contains("not a lattice public key"), "{err}");
    for (name, mode, why) in [
        ("garbage.nk", 0o600, "does not hold an nkeys seed"),
        ("open.nk", 0o644, "group or others may read it"),
    ] {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(path(name), format!("{SECRET}\n")).unwrap();
        std::fs::set_permissions(path(name), std::fs::Permissions::from_mode(mode)).unwrap();
        let err = refused(vec!["--lattice-key-file".into(), path(name)]).await;
        assert!(err.contains(why), "{why}: {err}");
    }
    let host_seed = path("host.nk");
    std::fs::write(
        &host_seed,
        format!("{}\n", nkeys::KeyPair::new_server().seed().unwrap()),
    )
    .unwrap();
    std::fs::set_permissions(
        &host_seed,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let err = refused(vec!["--lattice-key-file".into(), host_seed]).await;
    assert!(err.contains("not a lattice seed"), "{err}");
}
