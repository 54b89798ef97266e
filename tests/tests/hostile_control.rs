//! Control requests as a hostile NATS client sends them (straight onto the subjects, past the
//! CLI's own checks): files that are not images, fetches that never end, limits without a
//! ceiling, oversized ids, sizes and fields. Every one is answered, clearly, and the host
//! keeps serving.

use std::time::Duration;

use trellis_lattice::control::ScaleComponent;
use trellis_lattice::LatticeClient;
use trellis_tests::proc::{mkfifo, rss_bytes};
use trellis_tests::slow_files::SlowFileServer;
use trellis_tests::{
    component_ref, greeter_keeps_answering, init_logging, wait_for, HostProcess, NatsServer,
};

/// Sends a raw request and returns the decoded reply (`{ok, error, kind, data}`).
async fn raw(
    client: &LatticeClient,
    subject: String,
    payload: impl Into<bytes::Bytes>,
) -> serde_json::Value {
    let reply = tokio::time::timeout(
        Duration::from_secs(30),
        client.nats().request(subject, payload.into()),
    )
    .await
    .expect("a reply within 30s (the host must not hang)")
    .expect("a reply");
    serde_json::from_slice(&reply.payload).expect("a JSON reply")
}

fn refused(reply: &serde_json::Value, kind: &str, text: &str) {
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["kind"], kind, "{reply}");
    let error = reply["error"].as_str().unwrap_or_default();
    assert!(error.contains(text), "expected {text:?} in {reply}");
}

fn scale(id: &str, image: &str, replicas: u32) -> ScaleComponent {
    ScaleComponent {
        component_id: id.into(),
        image: image.into(),
        replicas,
        config: vec![],
        max_memory_bytes: None,
        timeout_ms: None,
        annotations: Default::default(),
        ..Default::default()
    }
}

async fn host_with_greeter(
    nats: &NatsServer,
    lattice: &str,
    extra: &[&str],
) -> (HostProcess, LatticeClient) {
    let host = HostProcess::start(&nats.url(), lattice, &[], extra).await;
    let client = nats.client(lattice).await;
    client
        .scale_component(host.id(), &scale("greeter", &component_ref("greeter"), 4))
        .await
        .expect("greeter starts");
    (host, client)
}

#[tokio::test]
async fn files_that_are_not_regular_files_are_refused_before_they_are_read() {
    init_logging();
    let nats = NatsServer::start().await;
    let (host, client) = host_with_greeter(&nats, "hostile-files", &[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("pipe.wasm");
    mkfifo(&fifo);
    let secret = dir.path().join("shadow");
    std::fs::write(&secret, "root:$6$very-secret-hash:19000:0:99999:7:::\n").expect("write");
    let cases = [
        (
            "zero",
            "/dev/zero".to_string(),
            "is a character device, not a regular file",
        ),
        (
            "fifo",
            fifo.display().to_string(),
            "is a named pipe, not a regular file",
        ),
        (
            "dir",
            dir.path().display().to_string(),
            "is a directory, not a regular file",
        ),
        (
            "secret",
            secret.display().to_string(),
            "is not a WebAssembly component",
        ),
    ];
    for (id, image, expected) in &cases {
        let body = serde_json::json!({"component_id": id, "image": image, "replicas": 1});
        let reply = raw(
            &client,
            client.subjects().component_scale(host.id()),
            body.to_string(),
        )
        .await;
        refused(&reply, "invalid", expected);
        assert!(
            !reply.to_string().contains("very-secret"),
            "an error never echoes a file's contents: {reply}"
        );
    }
    // Reading /dev/zero until memory ran out took the host to gigabytes.
    let rss = rss_bytes(host.pid().expect("pid"));
    assert!(rss < 512 << 20, "host RSS {rss} bytes");
    greeter_keeps_answering(&client).await;
}

#[tokio::test]
async fn an_endless_fetch_is_superseded_by_a_stop_and_a_second_start_fails_fast() {
    init_logging();
    let nats = NatsServer::start().await;
    let (host, client) = host_with_greeter(&nats, "hostile-fetch", &[]).await;
    let endless = SlowFileServer::start(b"\0asm".to_vec(), Duration::from_secs(3600)).await;
    let start = {
        let client = nats.client("hostile-fetch").await;
        let (host_id, image) = (host.id().to_string(), endless.url().to_string());
        tokio::spawn(async move {
            client
                .scale_component(&host_id, &scale("slow", &image, 1))
                .await
        })
    };
    // Once the host is fetching, the same start is refused at once instead of queueing.
    wait_for("the host to fetch", Duration::from_secs(30), || async {
        (endless.requests() > 0).then_some(())
    })
    .await;
    let in_progress = client
        .scale_component(host.id(), &scale("slow", endless.url(), 1))
        .await
        .expect_err("the same start fails fast");
    assert!(
        in_progress.to_string().contains("is in progress"),
        "{in_progress}"
    );
    assert_eq!(in_progress.kind(), trellis_lattice::ErrorKind::Conflict);
    // A stop does not wait behind the fetch: it supersedes it.
    client
        .scale_component(host.id(), &scale("slow", "", 0))
        .await
        .expect("the stop is carried out");
    let first = tokio::time::timeout(Duration::from_secs(30), start)
        .await
        .expect("the superseded start answers")
        .expect("task");
    let err = first.expect_err("the first start fails").to_string();
    assert!(err.contains("superseded"), "{err}");
    greeter_keeps_answering(&client).await;
}

#[tokio::test]
async fn a_fetch_has_a_deadline() {
    init_logging();
    let nats = NatsServer::start().await;
    let (host, client) =
        host_with_greeter(&nats, "hostile-deadline", &["--fetch-timeout", "1s"]).await;
    let endless = SlowFileServer::start(b"\0asm".to_vec(), Duration::from_secs(3600)).await;
    let err = client
        .scale_component(host.id(), &scale("slow", endless.url(), 1))
        .await
        .expect_err("a fetch past its deadline fails")
        .to_string();
    assert!(err.contains("cannot fetch"), "{err}");
    greeter_keeps_answering(&client).await;
}
