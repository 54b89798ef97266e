//! Signed components and provider executables: `trellis keys gen`, `sign` and `inspect`, and
//! hosts whose issuer policy refuses what is unsigned, signed by another issuer, expired or
//! altered, naming the failed check in the reply and in the `component_scale_failed` event.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use trellis_lattice::control::{ScaleComponent, StartProvider};
use trellis_lattice::event::Event;
use trellis_lattice::{LatticeClient, Placement};
use trellis_tests::{component, init_logging, Cli, EventLog, HostProcess, NatsServer};

/// `trellis keys gen issuer`: the seed file and the printed public key.
async fn issuer(cli: &Cli, dir: &Path, name: &str) -> (PathBuf, String) {
    let seed = dir.join(format!("{name}.nk"));
    let out = cli
        .run(&["keys", "gen", "issuer", "--out", seed.to_str().unwrap()])
        .await
        .ok();
    (seed, out.stdout.trim().to_string())
}

/// A copy of greeter in `dir`, signed by `seed` with extra `sign` flags.
async fn signed_greeter(cli: &Cli, dir: &Path, name: &str, seed: &Path, extra: &[&str]) -> PathBuf {
    let copy = dir.join(format!("{name}.wasm"));
    std::fs::copy(component("greeter"), &copy).expect("copy greeter");
    let out = dir.join(format!("{name}.signed.wasm"));
    let mut args = vec![
        "sign",
        copy.to_str().unwrap(),
        "--issuer",
        seed.to_str().unwrap(),
        "--name",
        "greeter",
        "--version",
        "0.1.0",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    cli.run(&args).await.ok();
    out
}

fn start(id: &str, image: &Path, issuer: Option<&str>) -> ScaleComponent {
    ScaleComponent {
        component_id: id.to_string(),
        image: format!("file://{}", image.display()),
        replicas: 1,
        issuer: issuer.map(str::to_string),
        ..Default::default()
    }
}

async fn greets(client: &LatticeClient, id: &str) -> serde_json::Value {
    client
        .call(id, "greet", &[serde_json::json!("signed")])
        .await
        .unwrap_or_else(|e| panic!("{id} answers: {e}"))
}

#[tokio::test]
async fn keys_sign_and_inspect_from_the_cli() {
    init_logging();
    let dir = tempfile::tempdir().expect("tempdir");
    let cli = Cli::new("nats://127.0.0.1:1", "unused");
    let (seed, key) = issuer(&cli, dir.path(), "issuer").await;
    assert!(key.starts_with('A') && key.len() == 56, "{key}");
    let mode = std::fs::metadata(&seed).expect("seed").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let seed_text = std::fs::read_to_string(&seed).expect("seed");
    let again = cli
        .run(&["keys", "gen", "issuer", "--out", seed.to_str().unwrap()])
        .await
        .err();
    assert!(again.contains("exists"), "{again}");
    assert_eq!(std::fs::read_to_string(&seed).unwrap(), seed_text, "kept");
    let user = dir.path().join("user.nk");
    let out = cli
        .run(&["keys", "gen", "user", "--out", user.to_str().unwrap()])
        .await
        .ok();
    assert!(out.stdout.trim().starts_with('U'), "{}", out.stdout);

    let signed = signed_greeter(&cli, dir.path(), "greeter", &seed, &["--expires", "90d"]).await;
    let text = cli.run(&["inspect", signed.to_str().unwrap()]).await.ok();
    assert!(text.stdout.contains(&key), "{}", text.stdout);
    assert!(text.stdout.contains("signature  ok"), "{}", text.stdout);
    assert!(
        !text.stdout.contains(seed_text.trim()),
        "the seed is never printed"
    );
    let json = cli
        .run(&["-o", "json", "inspect", signed.to_str().unwrap()])
        .await
        .ok()
        .json();
    assert_eq!(json["issuer"], key.as_str());
    assert_eq!(json["name"], "greeter");
    assert_eq!(json["version"], "0.1.0");
    assert!(json["subject"].as_str().is_some_and(|s| s.starts_with('M')));
    assert_eq!(json["hash"].as_str().map(str::len), Some(64));
    assert!(json["expires"].is_string());
    assert_eq!(json["signature_ok"], true);
    assert_eq!(json["hash_ok"], true);

    // The unsigned original, and a copy with one byte of code changed.
    let unsigned = cli
        .run(&["inspect", dir.path().join("greeter.wasm").to_str().unwrap()])
        .await
        .err();
    assert!(unsigned.contains("unsigned"), "{unsigned}");
    let tampered = tamper(&signed, dir.path());
    let out = cli
        .run(&["-o", "json", "inspect", tampered.to_str().unwrap()])
        .await;
    assert!(!out.success);
    assert_eq!(out.json()["hash_ok"], false);
    assert_eq!(out.json()["signature_ok"], true);
    assert!(out.stderr.contains("hash mismatch"), "{}", out.stderr);

    // An executable: the claim goes to FILE.sig.
    let exe = dir.path().join("tool");
    std::fs::copy("/bin/true", &exe).expect("copy");
    cli.run(&[
        "sign",
        exe.to_str().unwrap(),
        "--issuer",
        seed.to_str().unwrap(),
    ])
    .await
    .ok();
    assert!(dir.path().join("tool.sig").is_file());
    cli.run(&["inspect", exe.to_str().unwrap()]).await.ok();
}

/// A copy of `signed` with one byte in the middle of its code flipped.
fn tamper(signed: &Path, dir: &Path) -> PathBuf {
    let mut bytes = std::fs::read(signed).expect("signed");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    let out = dir.join("tampered.wasm");
    std::fs::write(&out, bytes).expect("write");
    out
}

#[tokio::test]
async fn a_host_with_an_issuer_policy_runs_only_what_its_issuers_signed() {
    init_logging();
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = NatsServer::start().await;
    let cli = Cli::new(&nats.url(), "signing");
    let (seed, key) = issuer(&cli, dir.path(), "ours").await;
    let (other_seed, _) = issuer(&cli, dir.path(), "theirs").await;
    let good = signed_greeter(&cli, dir.path(), "good", &seed, &[]).await;
    let other = signed_greeter(&cli, dir.path(), "other", &other_seed, &[]).await;
    let expiring = signed_greeter(&cli, dir.path(), "expiring", &seed, &["--expires", "1s"]).await;
    let tampered = tamper(&good, dir.path());
    let unsigned = dir.path().join("good.wasm");

    let host = HostProcess::start(&nats.url(), "signing", &[], &["--allowed-issuer", &key]).await;
    let client = nats.client("signing").await;
    let events = EventLog::start(&client).await;
    client
        .scale_component(host.id(), &start("good", &good, None))
        .await
        .expect("the signed greeter starts");
    assert_eq!(greets(&client, "good").await, "Hello, signed!");

    tokio::time::sleep(Duration::from_secs(2)).await;
    let cases = [
        ("unsigned", &unsigned, "unsigned"),
        ("other", &other, "issuer not allowed"),
        ("expiring", &expiring, "expired"),
        ("tampered", &tampered, "hash mismatch"),
    ];
    for (id, image, check) in cases {
        let err = client
            .scale_component(host.id(), &start(id, image, None))
            .await
            .expect_err(id)
            .to_string();
        assert!(err.contains(check), "{id}: {err}");
        assert!(err.contains("issuer policy"), "{id}: {err}");
        events
            .wait_for(&format!("component_scale_failed for {id}"), Duration::from_secs(30), |e| {
                matches!(e, Event::ComponentScaleFailed(f) if f.component_id == id && f.reason.contains(check))
            })
            .await;
    }
    // The same through the CLI: one line naming the check, a non-zero exit.
    let out = cli
        .run(&[
            "component",
            "start",
            unsigned.to_str().unwrap(),
            "--id",
            "cli-unsigned",
            "--host",
            host.id(),
        ])
        .await;
    assert!(!out.success);
    assert!(out.stderr.contains("unsigned"), "{}", out.stderr);
    assert_eq!(
        greets(&client, "good").await,
        "Hello, signed!",
        "still serving"
    );
}

#[tokio::test]
async fn without_a_policy_unsigned_runs_and_a_pinned_issuer_is_still_enforced() {
    init_logging();
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = NatsServer::start().await;
    let cli = Cli::new(&nats.url(), "open");
    let (seed, key) = issuer(&cli, dir.path(), "ours").await;
    let (_, other_key) = issuer(&cli, dir.path(), "theirs").await;
    let good = signed_greeter(&cli, dir.path(), "good", &seed, &[]).await;
    let host = HostProcess::start(&nats.url(), "open", &[], &[]).await;
    let client = nats.client("open").await;

    client
        .scale_component(host.id(), &start("plain", &component("greeter"), None))
        .await
        .expect("unsigned greeter runs on a host without a policy");
    assert_eq!(greets(&client, "plain").await, "Hello, signed!");

    let err = client
        .scale_component(host.id(), &start("pinned", &good, Some(&other_key)))
        .await
        .expect_err("pinned to another issuer")
        .to_string();
    assert!(err.contains("issuer not allowed"), "{err}");
    let err = client
        .scale_component(
            host.id(),
            &start("pinned", &component("greeter"), Some(&key)),
        )
        .await
        .expect_err("unsigned but pinned")
        .to_string();
    assert!(err.contains("unsigned"), "{err}");
    let out = cli
        .run(&[
            "component",
            "start",
            good.to_str().unwrap(),
            "--id",
            "pinned",
            "--host",
            host.id(),
            "--issuer",
            &key,
        ])
        .await;
    assert!(out.success, "{}", out.stderr);
    assert_eq!(greets(&client, "pinned").await, "Hello, signed!");
    // A pin on a start request for the copy already running is checked too.
    let err = client
        .scale_component(host.id(), &start("pinned", &good, Some(&other_key)))
        .await
        .expect_err("pinned to another issuer while running")
        .to_string();
    assert!(err.contains("issuer not allowed"), "{err}");
    client
        .scale_component(host.id(), &start("pinned", &good, Some(&key)))
        .await
        .expect("the right pin rescales");
    // A malformed pin never reaches a host.
    let bad = cli
        .run(&[
            "component",
            "start",
            good.to_str().unwrap(),
            "--id",
            "x",
            "--issuer",
            "Anope",
        ])
        .await
        .err();
    assert!(bad.contains("issuer"), "{bad}");
}

async fn start_provider(client: &LatticeClient, host: &str, exe: &Path) -> Result<(), String> {
    client
        .start_provider(
            &Placement::Host(host.to_string()),
            &StartProvider {
                provider_id: "kv".into(),
                image: exe.display().to_string(),
                config: vec![],
                annotations: Default::default(),
            },
        )
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn provider_executables_outside_allowed_directories_need_a_valid_sig() {
    init_logging();
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = NatsServer::start().await;
    let cli = Cli::new(&nats.url(), "signed-exec");
    let (seed, key) = issuer(&cli, dir.path(), "ours").await;
    let (other_seed, _) = issuer(&cli, dir.path(), "theirs").await;
    let exe = dir.path().join("kv-provider");
    std::fs::copy(trellis_tests::bin("trellis-provider-keyvalue-nats"), &exe).expect("copy");
    // The harness allows the workspace's build directory; the copy is outside it.
    let host =
        HostProcess::start(&nats.url(), "signed-exec", &[], &["--allowed-issuer", &key]).await;
    let client = nats.client("signed-exec").await;

    let err = start_provider(&client, host.id(), &exe).await.unwrap_err();
    assert!(err.contains("unsigned"), "{err}");
    let sign = |seed: &Path| {
        vec![
            "sign".to_string(),
            exe.display().to_string(),
            "--issuer".into(),
            seed.display().to_string(),
        ]
    };
    let args = sign(&other_seed);
    cli.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await
        .ok();
    let err = start_provider(&client, host.id(), &exe).await.unwrap_err();
    assert!(err.contains("issuer not allowed"), "{err}");

    let args = sign(&seed);
    cli.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await
        .ok();
    start_provider(&client, host.id(), &exe)
        .await
        .expect("the signed provider starts");
}

fn pinned_manifest(image: &Path, issuer: &str) -> String {
    format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: pinned
spec:
  components:
    - name: greeter
      type: component
      properties:
        image: file://{}
        id: pinned-greeter
        issuer: {issuer}
      traits:
        - type: spreadscaler
          properties:
            instances: 1
"#,
        image.display()
    )
}

#[tokio::test]
async fn a_manifest_pins_the_issuer_of_its_components() {
    init_logging();
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = NatsServer::start().await;
    let lattice = "pinned";
    let cli = Cli::new(&nats.url(), lattice);
    let (seed, key) = issuer(&cli, dir.path(), "ours").await;
    let (_, other_key) = issuer(&cli, dir.path(), "theirs").await;
    let good = signed_greeter(&cli, dir.path(), "good", &seed, &[]).await;
    // A host without a policy of its own: the manifest's pin is what refuses.
    let host = HostProcess::start(&nats.url(), lattice, &[], &[]).await;
    let _manager = trellis_tests::ManagerProcess::start(&nats.url(), lattice, &[]).await;
    let client = nats.client(lattice).await;
    let events = EventLog::start(&client).await;

    let wrong = dir.path().join("wrong.yaml");
    std::fs::write(&wrong, pinned_manifest(&good, &other_key)).expect("manifest");
    cli.run(&["app", "deploy", wrong.to_str().unwrap()])
        .await
        .ok();
    events
        .wait_for("the pinned start refused", Duration::from_secs(60), |e| {
            matches!(e, Event::ComponentScaleFailed(f)
                if f.component_id == "pinned-greeter" && f.host_id == host.id()
                    && f.reason.contains("issuer not allowed"))
        })
        .await;

    let right = dir.path().join("right.yaml");
    let text = pinned_manifest(&good, &key).replace(
        "name: pinned\n",
        "name: pinned\n  annotations:\n    version: v2\n",
    );
    std::fs::write(&right, text).expect("manifest");
    cli.run(&["app", "deploy", right.to_str().unwrap(), "--wait"])
        .await
        .ok();
    assert_eq!(greets(&client, "pinned-greeter").await, "Hello, signed!");
}
