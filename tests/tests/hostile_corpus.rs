//! The corpus of malformed control requests and manifests (`tests/corpus/`, written by
//! `make-corpus.py`), sent raw on the real subjects to a real host and a real deployment
//! manager: each is refused with its `.expect` text, and both keep answering. (The parsers
//! alone see the whole corpus in `interfaces/lattice/tests/corpus.rs` and
//! `wadm-like/validate/tests/hostile_manifests.rs`.)

use std::path::{Path, PathBuf};
use std::time::Duration;

use trellis_lattice::control::ScaleComponent;
use trellis_lattice::LatticeClient;
use trellis_tests::{component_ref, init_logging, HostProcess, ManagerProcess, NatsServer};

const LATTICE: &str = "hostile-corpus";

fn corpus(kind: &str, ext: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(kind);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    files
}

fn expected(file: &Path) -> String {
    let text = std::fs::read_to_string(file.with_extension("expect")).expect("expect file");
    text.trim_end_matches('\n').to_string()
}

/// Sends `payload` on `subject` and returns the reply (`{ok, error, kind}`).
async fn raw(client: &LatticeClient, subject: String, payload: Vec<u8>) -> serde_json::Value {
    let reply = tokio::time::timeout(
        Duration::from_secs(30),
        client.nats().request(subject.clone(), payload.into()),
    )
    .await
    .unwrap_or_else(|_| panic!("{subject}: a reply within 30s"))
    .unwrap_or_else(|e| panic!("{subject}: {e}"));
    serde_json::from_slice(&reply.payload).expect("a JSON reply")
}

/// The subject a corpus request is sent on: host requests name the host.
fn subject_of(request: &str, host_id: &str) -> Option<String> {
    let (noun, verb) = request.split_once('.')?;
    let base = format!("trellis.ctl.v1.{LATTICE}.{noun}.{verb}");
    match noun {
        // Broadcasts and per-component subjects are answered by whoever matches, or nobody.
        "component" if verb != "scale" => None,
        "host" if verb == "ping" => None,
        "host" | "label" | "component" | "provider" | "gpio" => Some(format!("{base}.{host_id}")),
        _ => Some(base),
    }
}

async fn everyone_answers(client: &LatticeClient) {
    let hello = client
        .call("greeter", "greet", &[serde_json::json!("still")])
        .await
        .expect("greeter keeps answering");
    assert_eq!(hello, serde_json::json!("Hello, still!"));
    client.apps().await.expect("the manager keeps answering");
}

#[tokio::test]
async fn the_corpus_sent_raw_is_refused_clearly_and_everyone_keeps_answering() {
    init_logging();
    let nats = NatsServer::start().await;
    let host = HostProcess::start(&nats.url(), LATTICE, &[], &[]).await;
    let _manager = ManagerProcess::start(&nats.url(), LATTICE, &[]).await;
    let client = nats.client(LATTICE).await;
    let greeter: ScaleComponent = serde_json::from_value(serde_json::json!({
        "component_id": "greeter", "image": component_ref("greeter"), "replicas": 2,
    }))
    .expect("scale");
    client
        .scale_component(host.id(), &greeter)
        .await
        .expect("greeter starts");
    // What one NATS message can carry; larger files are refused by the client before sending.
    let fits = client.nats().server_info().max_payload.saturating_sub(4096);

    let mut sent = 0;
    let mut wrong = Vec::new();
    for file in corpus("control", "json") {
        let stem = file.file_stem().and_then(|s| s.to_str()).expect("name");
        let request = stem.split("--").next().expect("NOUN.VERB--CASE");
        let payload = std::fs::read(&file).expect("read");
        let Some(subject) = subject_of(request, host.id()) else {
            continue;
        };
        if payload.len() > fits {
            continue;
        }
        let reply = raw(&client, subject, payload).await;
        let error = reply["error"].as_str().unwrap_or_default();
        if reply["ok"] != false || reply["kind"] != "invalid" || !error.contains(&expected(&file)) {
            wrong.push(format!("{stem}: {reply}"));
        }
        sent += 1;
    }
    for file in corpus("manifests", "yaml") {
        let name = file.file_name().and_then(|n| n.to_str()).expect("name");
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue; // not UTF-8: cannot travel in a JSON string (the CLI refuses it)
        };
        if text.len() > fits {
            continue;
        }
        let body = serde_json::json!({"source_name": name, "manifest": text});
        let reply = raw(
            &client,
            client.subjects().app("put"),
            body.to_string().into(),
        )
        .await;
        let error = reply["error"].as_str().unwrap_or_default();
        if reply["ok"] != false || !error.contains(&expected(&file)) {
            wrong.push(format!("{name}: {reply}"));
        }
        assert!(
            error.len() < 16 << 10,
            "{name}: {} bytes of error",
            error.len()
        );
        sent += 1;
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(sent >= 50, "only {sent} sent");
    everyone_answers(&client).await;
}
