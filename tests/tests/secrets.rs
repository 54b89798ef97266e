//! Secret config values: sealed by the CLI to the lattice's secrets key, shown as `<secret>`,
//! opened only by a host holding the key for a component it runs, and never found in what
//! was stored (the KV entry, JetStream's files, the host's state copy), logged (host and
//! CLI at trace level), published (lattice events) or exported (OTLP).

use std::path::{Path, PathBuf};
use std::time::Duration;

use trellis_lattice::control::ScaleComponent;
use trellis_lattice::{LatticeClient, Subjects};
use trellis_tests::{
    component_ref, init_logging, wait_for, Cli, EventLog, HostProcess, NatsServer, OtlpReceiver,
    Protocol,
};

const LATTICE: &str = "sec";

fn settings(id: &str, config: &[&str]) -> ScaleComponent {
    ScaleComponent {
        component_id: id.into(),
        image: component_ref("settings"),
        replicas: 1,
        config: config.iter().map(|c| c.to_string()).collect(),
        ..Default::default()
    }
}

/// A value nothing else in the run could contain by chance.
fn unique(what: &str) -> String {
    let random = nkeys::KeyPair::new_user().public_key();
    format!("{what}-{}", &random[1..33])
}

/// `trellis secret keygen`: the seed file and the public key it printed.
async fn keygen(cli: &Cli, dir: &Path) -> (PathBuf, String) {
    let file = dir.join("secrets.xk");
    let out = cli
        .run(&["secret", "keygen", "--out", file.to_str().expect("path")])
        .await
        .ok();
    let public_key = out.stdout.trim().to_string();
    assert!(public_key.starts_with('X'), "{}", out.stdout);
    (file, public_key)
}

/// Runs `trellis ARGS...` with `input` and a newline on its standard input; it must succeed.
async fn with_stdin(cli: &Cli, args: &[&str], input: &str) -> std::process::Output {
    let mut cmd = cli.command(args);
    let input = format!("{input}\n");
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes())?;
        drop(stdin);
        child.wait_with_output()
    })
    .await
    .expect("task")
    .expect("running trellis");
    assert!(out.status.success(), "{out:?}");
    out
}

async fn setting(client: &LatticeClient, id: &str, key: &str) -> serde_json::Value {
    client
        .call(id, "setting", &[serde_json::json!(key)])
        .await
        .unwrap_or_else(|e| panic!("{id}.setting({key}): {e}"))
}

/// Every file under `dir` whose bytes contain one of `needles`.
fn files_containing(dir: &Path, needles: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                if needles.iter().any(|n| contains(&bytes, n)) {
                    found.push(path);
                }
            }
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn assert_absent(what: &str, text: &str, plaintexts: &[&str]) {
    for p in plaintexts {
        assert!(!text.contains(p), "{what} holds the plaintext {p}:\n{text}");
    }
}

/// The raw bytes of every revision of config `name` in the lattice's bucket.
async fn stored_revisions(nats: &NatsServer, name: &str) -> Vec<Vec<u8>> {
    use futures::StreamExt as _;
    let client = nats.connect().await;
    let subjects = Subjects::new(LATTICE.to_string());
    let kv = subjects
        .jetstream(&client)
        .get_key_value(subjects.config_bucket())
        .await
        .expect("config bucket");
    let mut history = kv.history(name).await.expect("history");
    let mut out = Vec::new();
    while let Some(entry) = history.next().await {
        out.push(entry.expect("entry").value.to_vec());
    }
    out
}

#[tokio::test]
async fn a_secret_is_opened_only_where_it_runs_and_leaks_nowhere() {
    init_logging();
    let nats = NatsServer::start().await;
    let otlp = OtlpReceiver::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let cli = Cli::new(&nats.url(), LATTICE).env("TRELLIS_LOG", "trace");
    let (key_file, public_key) = keygen(&cli, dir.path()).await;
    let state_dir = dir.path().join("state");
    let mut env = otlp.env(Protocol::Grpc);
    env.push((
        "TRELLIS_SECRETS_KEY_FILE".into(),
        key_file.display().to_string(),
    ));
    let holder = HostProcess::start_with_env(
        &nats.url(),
        LATTICE,
        &[("role", "holder")],
        &[
            "--log",
            "trace",
            "--state-dir",
            state_dir.to_str().expect("path"),
        ],
        &trellis_tests::otlp::pairs(&env),
    )
    .await;
    let stranger = HostProcess::start(
        &nats.url(),
        LATTICE,
        &[("role", "stranger")],
        &["--log", "trace"],
    )
    .await;
    let client = nats.client(LATTICE).await;
    let events = EventLog::start(&client).await;
    let (first, second, piped) = (unique("pw"), unique("pw2"), unique("token"));
    let plaintexts = [first.as_str(), second.as_str(), piped.as_str()];
    let cli = cli.env("TRELLIS_SECRETS_PUBLIC_KEY", &public_key);

    let put = cli
        .run(&[
            "config",
            "put",
            "db",
            &format!("password={first}"),
            "user=app",
            "--secret",
        ])
        .await
        .ok();
    assert!(put.stdout.contains("2 sealed secret(s)"), "{}", put.stdout);
    let mut logged = vec![put.stdout, put.stderr];
    // A bare KEY reads its value from standard input (not the process list or history).
    let out = with_stdin(&cli, &["secret", "put", "api", "token"], &piped).await;
    logged.push(String::from_utf8_lossy(&out.stdout).into_owned());
    logged.push(String::from_utf8_lossy(&out.stderr).into_owned());

    // Shown as <secret>, in tables and JSON.
    let get = cli.run(&["config", "get", "db"]).await.ok();
    assert_eq!(get.stdout, "password=<secret>\nuser=<secret>\n");
    let get = cli.run(&["-o", "json", "config", "get", "api"]).await.ok();
    assert_eq!(get.json(), serde_json::json!({"token": "<secret>"}));
    logged.extend([get.stdout, get.stderr]);

    // The host holding the key opens it for the component it runs.
    client
        .scale_component(holder.id(), &settings("reader", &["db", "api"]))
        .await
        .expect("the holder starts the reader");
    assert_eq!(
        setting(&client, "reader", "password").await,
        serde_json::json!(first)
    );
    assert_eq!(
        setting(&client, "reader", "token").await,
        serde_json::json!(piped)
    );
    assert_eq!(
        setting(&client, "reader", "user").await,
        serde_json::json!("app")
    );

    // A host without the key refuses, naming the config and key, not the value.
    let err = client
        .scale_component(stranger.id(), &settings("elsewhere", &["db"]))
        .await
        .expect_err("a host without the key refuses")
        .to_string();
    assert!(
        err.contains("config `db` key `password`") && err.contains("--secrets-key"),
        "{err}"
    );
    assert_absent("the refusal", &err, &plaintexts);

    // A changed secret reaches the running component.
    cli.run(&[
        "config",
        "put",
        "db",
        &format!("password={second}"),
        "--secret",
    ])
    .await
    .ok();
    wait_for("the changed secret", Duration::from_secs(60), || async {
        (setting(&client, "reader", "password").await == serde_json::json!(second)).then_some(())
    })
    .await;

    // Stored: every revision of the KV entries, JetStream's files on disk, the state copy.
    for name in ["db", "api"] {
        let revisions = stored_revisions(&nats, name).await;
        assert!(!revisions.is_empty());
        for raw in revisions {
            let text = String::from_utf8_lossy(&raw);
            assert!(text.contains("trellis-sealed:v1:"), "{text}");
            assert_absent("the stored config", &text, &plaintexts);
        }
    }
    let js_dir = nats.log_path().parent().expect("nats dir").join("js");
    assert!(
        js_dir.is_dir(),
        "JetStream keeps files in {}",
        js_dir.display()
    );
    assert_eq!(
        files_containing(&js_dir, &plaintexts),
        Vec::<PathBuf>::new()
    );
    wait_for("the state copy", Duration::from_secs(30), || async {
        (!files_containing(&state_dir, &["trellis-sealed:v1:"]).is_empty()).then_some(())
    })
    .await;
    assert_eq!(
        files_containing(&state_dir, &plaintexts),
        Vec::<PathBuf>::new()
    );

    // Exported: spans and logs of the holder's work (the calls above) have arrived.
    otlp.wait_for("the holder's spans", |o| {
        o.spans()
            .iter()
            .any(|s| s.service == "trellis-host" && s.name.contains("reader"))
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_absent(
        "the OTLP spans",
        &format!("{:?}", otlp.spans()),
        &plaintexts,
    );
    assert_absent("the OTLP logs", &format!("{:?}", otlp.logs()), &plaintexts);
    assert_absent(
        "the OTLP metrics",
        &format!("{:?}", otlp.points()),
        &plaintexts,
    );

    // Published: every lattice event (config_set carries keys only).
    let all_events = serde_json::to_string(&events.all()).expect("events as JSON");
    assert!(all_events.contains("config_set"), "{all_events}");
    assert_absent("the lattice events", &all_events, &plaintexts);

    // Logged, at trace level: both hosts and every CLI run.
    assert_absent("the holder's log", &holder.log(), &plaintexts);
    assert_absent("the stranger's log", &stranger.log(), &plaintexts);
    assert_absent("the CLI's output", &logged.join("\n"), &plaintexts);
    assert!(holder.log().contains("holding the lattice's secrets key"));
}

#[tokio::test]
async fn a_tampered_or_malformed_secret_is_refused_clearly() {
    init_logging();
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let cli = Cli::new(&nats.url(), LATTICE);
    // `trellis keys gen xkey` makes the same key as `trellis secret keygen`.
    let key_file = dir.path().join("secrets.xk");
    let public_key = cli
        .run(&[
            "keys",
            "gen",
            "xkey",
            "--out",
            key_file.to_str().expect("path"),
        ])
        .await
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(public_key.starts_with('X'), "{public_key}");
    let host = HostProcess::start(
        &nats.url(),
        LATTICE,
        &[],
        &["--secrets-key", key_file.to_str().expect("path")],
    )
    .await;
    let client = nats.client(LATTICE).await;
    let secret = unique("pw");
    cli.run(&[
        "config",
        "put",
        "db",
        &format!("password={secret}"),
        "--secret",
        "--secrets-public-key",
        &public_key,
    ])
    .await
    .ok();

    // One digit of the box changed: stored (the form is right), refused at start.
    let mut config = client.named_config("db").await.expect("read").expect("db");
    let untouched = config.clone();
    let sealed = config.get_mut("password").expect("password");
    let flip = sealed.len() - 4;
    let digit = if &sealed[flip..flip + 1] == "0" {
        "1"
    } else {
        "0"
    };
    sealed.replace_range(flip..flip + 1, digit);
    client.put_config("db", config.clone()).await.expect("put");
    let err = client
        .scale_component(host.id(), &settings("reader", &["db"]))
        .await
        .expect_err("a tampered secret is refused")
        .to_string();
    assert!(
        err.contains("config `db` key `password`") && err.contains("altered"),
        "{err}"
    );

    // `trellis secret seal` prints a sealed value (for a manifest's config properties).
    let pasted = unique("pasted");
    let sealed = with_stdin(
        &cli,
        &[
            "secret",
            "seal",
            "site",
            "token",
            "--secrets-public-key",
            &public_key,
        ],
        &pasted,
    )
    .await;
    let sealed = String::from_utf8(sealed.stdout).expect("text");
    assert!(sealed.starts_with("trellis-sealed:v1:") && !sealed.contains(&pasted));
    let site = [("token".to_string(), sealed.trim().to_string())].into();
    client.put_config("site", site).await.expect("put");
    client
        .scale_component(host.id(), &settings("paster", &["site"]))
        .await
        .expect("a pasted sealed value opens");
    assert_eq!(
        setting(&client, "paster", "token").await,
        serde_json::json!(pasted)
    );

    // Copied into another config: refused, it was sealed for `db`.
    client.put_config("copy", untouched).await.expect("put");
    let err = client
        .scale_component(host.id(), &settings("copier", &["copy"]))
        .await
        .expect_err("a copied secret is refused")
        .to_string();
    assert!(err.contains("another config or key"), "{err}");

    // Not in the sealed form at all: refused when put.
    let bad = [(
        "password".to_string(),
        "trellis-sealed:v1:garbage".to_string(),
    )]
    .into();
    let err = client
        .put_config("db", bad)
        .await
        .expect_err("refused")
        .to_string();
    assert!(err.contains("sealed form"), "{err}");

    // Sealing without the public key says where to get it.
    let err = Cli::new(&nats.url(), LATTICE)
        .run(&["config", "put", "x", "k=v", "--secret"])
        .await
        .err();
    assert!(err.contains("--secrets-public-key"), "{err}");
    assert!(!host.log().contains(&secret));
}
