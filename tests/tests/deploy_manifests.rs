//! Manifests through the manager: invalid ones refused with located errors and nothing
//! stored, versions immutable, unversioned puts given a version.

use std::path::{Path, PathBuf};

use trellis_tests::{component_ref, init_logging, Cli, ManagerProcess, NatsServer};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wadm-like/validate/tests/invalid")
}

/// Checks the CLI's stderr against a corpus file's `.expected` sidecar (see
/// `wadm-like/tests/corpus.rs`): `FILE: PATH: MESSAGE` must be a line as is, `~ PATH :: TEXT`
/// a line at PATH containing TEXT; every line names the file as the CLI was given it.
fn assert_reported(manifest: &Path, stderr: &str, what: &str) {
    let expected = std::fs::read_to_string(manifest.with_extension("expected"))
        .expect("every corpus manifest has a .expected sidecar");
    let file_name = manifest.file_name().unwrap().to_str().unwrap();
    let given = manifest.to_str().unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(!lines.is_empty(), "{what}: nothing on stderr");
    for line in &lines {
        assert!(line.starts_with(&format!("{given}: ")), "{what}: {line}");
    }
    for e in expected
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let found = match e.strip_prefix("~ ") {
            Some(rest) => {
                let (path, text) = rest.split_once(" :: ").expect("`~ PATH :: TEXT`");
                let prefix = match path.trim() {
                    "" => format!("{given}: "),
                    p => format!("{given}: {p}: "),
                };
                lines
                    .iter()
                    .any(|l| l.starts_with(&prefix) && l.contains(text))
            }
            None => lines.contains(&e.replacen(file_name, given, 1).as_str()),
        };
        assert!(found, "{what}: expected `{e}` in:\n{stderr}");
    }
}

#[tokio::test]
async fn invalid_manifests_are_refused_with_located_errors_and_nothing_is_stored() {
    init_logging();
    let nats = NatsServer::start().await;
    let lattice = "invalid";
    let _manager = ManagerProcess::start(&nats.url(), lattice, &[]).await;
    let cli = Cli::new(&nats.url(), lattice);

    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("the invalid-manifest corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x != "expected"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 30,
        "the corpus holds {} manifests",
        files.len()
    );
    // `validate` needs no lattice: every manifest of the corpus, every error on its own line.
    for file in &files {
        let path = file.to_str().unwrap();
        let stderr = Cli::new("nats://127.0.0.1:1", lattice)
            .run(&["app", "validate", path])
            .await
            .err();
        assert_reported(file, &stderr, &format!("trellis app validate {path}"));
    }
    let json = cli
        .run(&["app", "validate", files[0].to_str().unwrap(), "-o", "json"])
        .await;
    assert!(!json.success);
    assert_eq!(json.json()["valid"], false);

    // `deploy` refuses the same way, for a sample, and stores nothing.
    for file in files.iter().step_by(files.len() / 6) {
        let path = file.to_str().unwrap();
        let stderr = cli.run(&["app", "deploy", path]).await.err();
        assert_reported(file, &stderr, &format!("trellis app deploy {path}"));
    }
    let list = cli.run(&["app", "list", "-o", "json"]).await.ok().json();
    assert_eq!(list, serde_json::json!([]));

    // The manager checks what it is sent too (a client that skipped local validation).
    let client = nats.client(lattice).await;
    let text = std::fs::read_to_string(corpus_dir().join("28-negative-instances.yaml")).unwrap();
    let err = client
        .put_app("28-negative-instances.yaml", &text)
        .await
        .expect_err("the manager refuses an invalid manifest")
        .to_string();
    assert!(err.contains("instances"), "{err}");
    assert!(client.apps().await.unwrap().is_empty());
}

#[tokio::test]
async fn versions_are_immutable_and_unversioned_puts_get_a_generated_version() {
    init_logging();
    let nats = NatsServer::start().await;
    let lattice = "versions";
    let _manager = ManagerProcess::start(&nats.url(), lattice, &[]).await;
    let client = nats.client(lattice).await;
    let greeter = component_ref("greeter");
    let app = |version: &str, instances: u32| {
        format!(
            "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: ver\n{version}spec:\n  components:\n    - name: g\n      type: component\n      properties:\n        image: {greeter}\n      traits:\n        - type: spreadscaler\n          properties:\n            instances: {instances}\n"
        )
    };
    let v1 = app("  annotations:\n    version: v1\n", 1);
    let put = client.put_app("ver.yaml", &v1).await.unwrap();
    assert_eq!((put.version.as_str(), put.created), ("v1", true));
    let again = client.put_app("ver.yaml", &v1).await.unwrap();
    assert_eq!((again.version.as_str(), again.created), ("v1", false));
    let err = client
        .put_app("ver.yaml", &app("  annotations:\n    version: v1\n", 2))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("immutable"), "{err}");

    let unversioned = app("", 3);
    let generated = client.put_app("ver.yaml", &unversioned).await.unwrap();
    assert!(generated.created && generated.version.starts_with('v'));
    assert_ne!(generated.version, "v1");
    let same = client.put_app("ver.yaml", &unversioned).await.unwrap();
    assert_eq!(
        (same.version, same.created),
        (generated.version.clone(), false)
    );
    let stored = client
        .app_manifest("ver", Some(&generated.version))
        .await
        .unwrap();
    assert_eq!(stored.manifest.version(), Some(generated.version.as_str()));
    let history = client.app_history("ver").await.unwrap();
    let versions: Vec<&str> = history
        .versions
        .iter()
        .map(|v| v.version.as_str())
        .collect();
    assert_eq!(versions, ["v1", generated.version.as_str()]);
}
