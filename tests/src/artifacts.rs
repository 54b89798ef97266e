//! Helpers of the shared-artifact tests: a lattice with a lattice key, hosts with caches of
//! their own, starts that say where their compiled code came from, and the object store as
//! any client of the lattice may read and write it.

use std::path::Path;
use std::time::Duration;

use async_nats::jetstream::object_store::{ObjectMetadata, ObjectStore};
use futures::TryStreamExt as _;
use tokio::io::AsyncReadExt as _;
use trellis_lattice::control::{CompiledFrom, ScaleComponent};
use trellis_lattice::LatticeClient;

use crate::{component, init_logging, Cli, HostProcess, NatsServer};

pub const LATTICE: &str = "artifacts";

/// A NATS server, a directory, a lattice key (seed file, public key) and a client.
pub async fn lattice() -> (NatsServer, tempfile::TempDir, String, String, LatticeClient) {
    init_logging();
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (seed, public) = lattice_key(dir.path(), "lattice").await;
    let client = nats.client(LATTICE).await;
    (nats, dir, seed, public, client)
}

/// Starts greeter as `id` on a new host `name` that holds only the lattice's public key.
pub async fn start_on_reader(
    nats: &NatsServer,
    dir: &Path,
    public: &str,
    client: &LatticeClient,
    name: &str,
    id: &str,
) -> CompiledFrom {
    let reader = host(nats, dir, name, &["--lattice-public-key", public]).await;
    start(client, &reader, id).await
}

/// `trellis keys gen lattice`: the seed file and the printed public key.
pub async fn lattice_key(dir: &Path, name: &str) -> (String, String) {
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
pub async fn host(nats: &NatsServer, dir: &Path, name: &str, flags: &[&str]) -> HostProcess {
    let cache = dir.join(format!("cache-{name}"));
    let mut extra = vec!["--cache-dir", cache.to_str().unwrap()];
    extra.extend_from_slice(flags);
    HostProcess::start(&nats.url(), LATTICE, &[], &extra).await
}

/// The host as a board's build makes it, without a compiler (`scripts/test.sh` builds it:
/// `cargo build -p trellis-host --no-default-features`, copied to `trellis-host-loader`).
pub fn loader_bin() -> std::path::PathBuf {
    crate::bin("trellis-host-loader")
}

/// A host without a compiler, with a cache of its own (empty) and `flags`.
pub async fn loader_host(nats: &NatsServer, dir: &Path, name: &str, flags: &[&str]) -> HostProcess {
    let cache = dir.join(format!("cache-{name}"));
    let mut extra = vec!["--cache-dir", cache.to_str().unwrap()];
    extra.extend_from_slice(flags);
    HostProcess::start_binary(&loader_bin(), &nats.url(), LATTICE, &[], &extra).await
}

/// One replica of the example component `name` as `id`.
pub fn one_of(name: &str, id: &str) -> ScaleComponent {
    ScaleComponent {
        component_id: id.to_string(),
        image: format!("file://{}", component(name).display()),
        replicas: 1,
        ..Default::default()
    }
}

/// Starts greeter as `id` on `host`; where its compiled code came from.
pub async fn start(client: &LatticeClient, host: &HostProcess, id: &str) -> CompiledFrom {
    let request = one_of("greeter", id);
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

pub async fn bucket(nats: &NatsServer) -> ObjectStore {
    async_nats::jetstream::new(nats.connect().await)
        .get_object_store(format!("trellis_artifacts_{LATTICE}"))
        .await
        .expect("the lattice's artifact store")
}

/// The one artifact in the store once it is there (its publisher writes it after the start).
pub async fn published(
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

pub async fn replace(
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

/// A first host (with the seed) that compiled greeter, and the store it publishes to.
pub async fn bucket_after_first(
    nats: &NatsServer,
    client: &LatticeClient,
    dir: &Path,
    seed: &str,
) -> (HostProcess, ObjectStore) {
    let first = host(nats, dir, "first", &["--lattice-key-file", seed]).await;
    assert_eq!(start(client, &first, "first").await, CompiledFrom::Compiled);
    (first, bucket(nats).await)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Writes an entry for `info.name` as any client may: straight to the store's metadata
/// subject, bypassing the client's checks.
pub async fn craft_entry(
    nats: &NatsServer,
    info: &async_nats::jetstream::object_store::ObjectInfo,
) {
    use base64::Engine as _;
    let js = async_nats::jetstream::new(nats.connect().await);
    let subject = format!(
        "$O.trellis_artifacts_{LATTICE}.M.{}",
        base64::engine::general_purpose::URL_SAFE.encode(&info.name)
    );
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Rollup", "sub");
    let body = serde_json::to_vec(info).expect("entry");
    js.publish_with_headers(subject, headers, body.into())
        .await
        .expect("publish")
        .await
        .expect("stored");
}

/// `trellis-host --precompile greeter` with `flags`, as an operator runs it: what it printed
/// on success, or its error.
pub async fn precompile(nats: &NatsServer, flags: &[&str]) -> Result<serde_json::Value, String> {
    let greeter = component("greeter").display().to_string();
    let mut args = vec!["--precompile", greeter.as_str()];
    args.extend_from_slice(flags);
    run_host(nats, &args)
        .await
        .map(|stdout| serde_json::from_str(&stdout).expect("one JSON line"))
}

/// `trellis-host` run to its end with `args` in the test lattice: its stdout on success, its
/// stderr otherwise.
pub async fn run_host(nats: &NatsServer, args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new(crate::bin("trellis-host"))
        .args(["--nats-url", &nats.url(), "--lattice", LATTICE])
        .args(["--ephemeral", "--log", "warn"])
        .args(args)
        .output()
        .await
        .expect("run trellis-host");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
