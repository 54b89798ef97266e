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
