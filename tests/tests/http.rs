//! HTTP ingress: routing by path and host, error statuses, bodies, many connections,
//! traps, retargeting routes under load, and the lattice hop to another host.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use trellis_lattice::control::ScaleComponent;
use trellis_lattice::LatticeClient;
use trellis_tests::{
    component_ref, init_logging, route, start_http_server, HostProcess, NatsServer,
};

async fn start(
    client: &LatticeClient,
    host: &str,
    id: &str,
    component: &str,
    timeout_ms: Option<u64>,
) {
    client
        .scale_component(
            host,
            &ScaleComponent {
                component_id: id.into(),
                image: component_ref(component),
                replicas: 64,
                config: Vec::new(),
                max_memory_bytes: None,
                timeout_ms,
                annotations: Default::default(),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{id}: {e}"));
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

async fn get(url: &str) -> (u16, String) {
    let resp = http()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let body = resp
        .text()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: reading the body: {e}"));
    (status, body)
}

#[tokio::test]
async fn routes_statuses_bodies_and_traps() {
    init_logging();
    let nats = NatsServer::start().await;
    let host = HostProcess::start(&nats.url(), "web", &[], &[]).await;
    let client = nats.client("web").await;
    start(&client, host.id(), "hello", "hello-http", None).await;
    start(&client, host.id(), "tester", "http-test", None).await;
    start(&client, host.id(), "slow", "http-test", Some(300)).await;
    let base = start_http_server(
        &client,
        host.id(),
        "web",
        &[("max_body", "8MiB"), ("timeout", "5s")],
    )
    .await;
    route(&client, "web", "hello", "hello", Some("/hello"), None).await;
    route(
        &client,
        "web",
        "vhost",
        "tester",
        None,
        Some("test.example"),
    )
    .await;
    route(&client, "web", "tests", "tester", Some("/t"), None).await;
    route(&client, "web", "slow", "slow", Some("/slow"), None).await;
    route(&client, "web", "gone", "not-running", Some("/gone"), None).await;

    // By path.
    let (status, body) = get(&format!("{base}/hello")).await;
    assert_eq!((status, body.as_str()), (200, "Hello from Trellis\n"));
    // By host.
    let resp = http()
        .get(format!("{base}/anything"))
        .header("host", "test.example")
        .send()
        .await
        .expect("GET by host");
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.text().await.expect("body by host");
    assert!(
        body.starts_with("hello from http-test at /anything"),
        "{body}"
    );
    // No route.
    let (status, body) = get(&format!("{base}/nowhere")).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no route"), "{body}");
    // A route to a component nobody runs.
    let (status, body) = get(&format!("{base}/gone")).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("no running instance of component `not-running`"),
        "{body}"
    );
    // Over the time limit.
    let (status, body) = get(&format!("{base}/slow/spin")).await;
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("time limit"), "{body}");
    // A trap is a 500, and the next request is fine.
    let (status, body) = get(&format!("{base}/t/crash")).await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("trapped"), "{body}");
    let (status, _) = get(&format!("{base}/t/after")).await;
    assert_eq!(status, 200);
    // A large body streams through; one over the limit is refused.
    let big: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let resp = http()
        .post(format!("{base}/t/echo"))
        .body(big.clone())
        .send()
        .await
        .expect("POST a large body");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["x-body-length"],
        big.len().to_string().as_str()
    );
    let echoed = resp.bytes().await.expect("body");
    let first_difference = echoed.iter().zip(&big).position(|(a, b)| a != b);
    assert!(
        echoed.len() == big.len() && first_difference.is_none(),
        "echoed body differs: {} bytes back of {}, first difference at {first_difference:?}",
        echoed.len(),
        big.len()
    );
    // Announce a body over the limit: the server answers 413 before reading it.
    let status_line = {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let addr = base.trim_start_matches("http://");
        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "POST /t/echo HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\n\r\n",
            9 << 20
        );
        conn.write_all(head.as_bytes()).await.expect("write");
        let mut buf = vec![0u8; 1024];
        let n = conn.read(&mut buf).await.expect("read");
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(status_line, "HTTP/1.1 413 Payload Too Large");
}

#[tokio::test]
async fn two_hundred_keep_alive_connections_and_a_route_retargeted_under_load() {
    init_logging();
    let nats = NatsServer::start().await;
    let host = HostProcess::start(&nats.url(), "load", &[], &[]).await;
    let client = nats.client("load").await;
    start(&client, host.id(), "hello", "hello-http", None).await;
    start(&client, host.id(), "tester", "http-test", None).await;
    let base = start_http_server(&client, host.id(), "web", &[]).await;
    route(&client, "web", "r", "hello", Some("/r"), None).await;

    // 200 connections at once, each kept alive for several requests.
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let url = format!("{base}/r");
        tasks.push(tokio::spawn(async move {
            let c = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .expect("client");
            let mut bad = Vec::new();
            for _ in 0..5 {
                match c.get(&url).send().await {
                    Ok(r) if r.status().is_success() => match r.text().await {
                        Ok(body) if body.starts_with("Hello from Trellis") => {}
                        Ok(body) => bad.push(format!("unexpected body {body:?}")),
                        Err(e) => bad.push(format!("reading the body: {e}")),
                    },
                    Ok(r) => bad.push(format!("status {}", r.status())),
                    Err(e) => bad.push(e.to_string()),
                }
            }
            bad
        }));
    }
    let mut errors = Vec::new();
    for t in tasks {
        errors.extend(t.await.expect("task"));
    }
    assert!(
        errors.is_empty(),
        "{} errors, e.g. {:?}",
        errors.len(),
        errors.first()
    );

    // Retarget the route back and forth while requests flow.
    let ok = Arc::new(AtomicU64::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut load = Vec::new();
    for _ in 0..8 {
        let (url, ok, stop) = (format!("{base}/r"), Arc::clone(&ok), stop.clone());
        load.push(tokio::spawn(async move {
            let c = http();
            let (mut bad, mut seen) = (Vec::new(), std::collections::BTreeSet::new());
            while !stop.is_cancelled() {
                match c.get(&url).send().await {
                    Ok(r) if r.status().is_success() => match r.text().await {
                        Ok(text) => {
                            seen.insert(
                                text.split_whitespace()
                                    .take(3)
                                    .collect::<Vec<_>>()
                                    .join(" "),
                            );
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => bad.push(format!("reading the body: {e}")),
                    },
                    Ok(r) => {
                        let status = r.status();
                        bad.push(match r.text().await {
                            Ok(body) => format!("status {status}: {body}"),
                            Err(e) => format!("status {status}, body unreadable: {e}"),
                        })
                    }
                    Err(e) => bad.push(e.to_string()),
                }
            }
            (bad, seen)
        }));
    }
    // Each phase lasts a number of answered requests, not a time, so every retarget happens
    // under load however slow the machine is; the deadline only stops a hung test.
    const PHASE: u64 = 100;
    let phase_done = |from: u64| {
        let ok = Arc::clone(&ok);
        async move {
            trellis_tests::wait_for("a phase of requests", Duration::from_secs(120), || {
                let done = ok.load(Ordering::Relaxed) >= from + PHASE;
                async move { done.then_some(()) }
            })
            .await
        }
    };
    for target in ["tester", "hello", "tester"] {
        phase_done(ok.load(Ordering::Relaxed)).await;
        let key = trellis_lattice::link::LinkKey {
            source_id: "web".into(),
            wit_namespace: "wasi".into(),
            wit_package: "http".into(),
            name: "r".into(),
        };
        client
            .retarget_link(key, target, None)
            .await
            .expect("retarget");
    }
    phase_done(ok.load(Ordering::Relaxed)).await;
    stop.cancel();
    let (mut bad, mut seen) = (Vec::new(), std::collections::BTreeSet::new());
    for t in load {
        let (b, s) = t.await.expect("load task");
        bad.extend(b);
        seen.extend(s);
    }
    assert!(
        bad.is_empty(),
        "{} failed requests, e.g. {:?}",
        bad.len(),
        bad.first()
    );
    assert!(
        seen.contains("Hello from Trellis") && seen.contains("hello from http-test"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_route_to_a_component_on_another_host_crosses_the_lattice() {
    init_logging();
    let nats = NatsServer::start().await;
    let edge = HostProcess::start(&nats.url(), "hop", &[("role", "ingress")], &[]).await;
    let worker = HostProcess::start(&nats.url(), "hop", &[("role", "worker")], &[]).await;
    let client = nats.client("hop").await;
    start(&client, worker.id(), "tester", "http-test", Some(300)).await;
    let base = start_http_server(&client, edge.id(), "web", &[]).await;
    route(&client, "web", "all", "tester", None, None).await;

    let (status, body) = get(&format!("{base}/over/there?x=1")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with("hello from http-test at /over/there?x=1"),
        "{body}"
    );
    let payload = vec![7u8; 300_000];
    let resp = http()
        .post(format!("{base}/echo"))
        .body(payload.clone())
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.bytes().await.expect("body").len(), payload.len());
    let (status, body) = get(&format!("{base}/crash")).await;
    assert_eq!(status, 500, "{body}");
    let (status, body) = get(&format!("{base}/spin")).await;
    assert_eq!(status, 504, "{body}");
    let (status, _) = get(&format!("{base}/again")).await;
    assert_eq!(status, 200);
}
