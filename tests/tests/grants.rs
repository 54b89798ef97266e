//! Least privilege inside a host: a component sees no environment, files, sockets, outgoing
//! HTTP or wall clock beyond what its start grants, and a grant of a directory the host's
//! operator does not share is refused. `sandbox` probes each and reports what happened.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};

use trellis_lattice::control::ScaleComponent;
use trellis_lattice::grants::{Grants, Preopen};
use trellis_lattice::LatticeClient;
use trellis_tests::{component_ref, init_logging, HostProcess, NatsServer};

/// `sandbox`'s `probe`: `Ok(text)` or `Err(text)`.
async fn probe(client: &LatticeClient, id: &str, what: &str, arg: &str) -> Result<String, String> {
    let v = client
        .call(
            id,
            "probe",
            &[serde_json::json!(what), serde_json::json!(arg)],
        )
        .await
        .unwrap_or_else(|e| panic!("probe {what} {arg}: {e}"));
    match (v.get("ok"), v.get("err")) {
        (Some(ok), _) => Ok(ok.as_str().unwrap_or_default().to_string()),
        (_, Some(err)) => Err(err.as_str().unwrap_or_default().to_string()),
        _ => panic!("probe {what}: {v}"),
    }
}

fn sandbox(id: &str, grants: Grants) -> ScaleComponent {
    ScaleComponent {
        component_id: id.into(),
        image: component_ref("sandbox"),
        replicas: 1,
        grants,
        ..Default::default()
    }
}

/// An HTTP server on a free port that answers 200 to anything, keeping each request's head.
fn http_listener() -> (u16, std::sync::mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut head = vec![0u8; 8192];
            let n = conn.read(&mut head).unwrap_or(0);
            let _ = tx.send(String::from_utf8_lossy(&head[..n]).into_owned());
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (port, rx)
}

#[tokio::test]
async fn a_component_reaches_nothing_it_was_not_granted() {
    init_logging();
    let nats = NatsServer::start().await;
    let shared = tempfile::tempdir().expect("tempdir");
    let writable = tempfile::tempdir().expect("tempdir");
    std::fs::write(shared.path().join("note.txt"), "shared note").expect("write");
    let (ro, rw) = (
        shared.path().display().to_string(),
        writable.path().display().to_string(),
    );
    let host = HostProcess::start(
        &nats.url(),
        "grants",
        &[],
        &["--allow-preopen", &ro, "--allow-preopen-rw", &rw],
    )
    .await;
    let client = nats.client("grants").await;
    let (port, requests) = http_listener();
    let nats_port = nats
        .url()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_string();

    // Nothing granted: nothing reached.
    client
        .scale_component(host.id(), &sandbox("bare", Grants::default()))
        .await
        .expect("bare sandbox starts");
    assert_eq!(probe(&client, "bare", "env", "").await, Ok(String::new()));
    assert!(probe(&client, "bare", "read", "/etc/passwd").await.is_err());
    assert!(probe(&client, "bare", "list", "/").await.is_err());
    let note = format!("{ro}/note.txt");
    assert!(probe(&client, "bare", "read", &note).await.is_err());
    let refused = probe(
        &client,
        "bare",
        "connect",
        &format!("127.0.0.1:{nats_port}"),
    )
    .await
    .unwrap_err();
    assert!(refused.contains("access-denied"), "{refused}");
    let url = format!("http://127.0.0.1:{port}/");
    let refused = probe(&client, "bare", "fetch", &url).await.unwrap_err();
    assert!(refused.contains("HttpRequestDenied"), "{refused}");
    assert!(requests.try_recv().is_err(), "no request went out");
    assert_eq!(probe(&client, "bare", "clock", "").await, Ok("0".into()));

    // Each grant opens exactly what it names.
    let grants = Grants {
        env: BTreeMap::from([("GREETING".into(), "hi".into())]),
        preopens: vec![
            Preopen::parse(&format!("{ro}:/data")).expect("preopen"),
            Preopen::parse(&format!("{rw}:/out:rw")).expect("preopen"),
        ],
        allowed_outbound_hosts: vec![format!("http://127.0.0.1:{port}")],
        wall_clock: true,
    };
    client
        .scale_component(host.id(), &sandbox("granted", grants))
        .await
        .expect("granted sandbox starts");
    assert_eq!(
        probe(&client, "granted", "env", "").await,
        Ok("GREETING=hi".into())
    );
    assert_eq!(
        probe(&client, "granted", "read", "/data/note.txt").await,
        Ok("shared note".into())
    );
    assert!(probe(&client, "granted", "write", "/data/new.txt")
        .await
        .is_err());
    assert!(
        !shared.path().join("new.txt").exists(),
        "read-only stays read-only"
    );
    assert_eq!(
        probe(&client, "granted", "write", "/out/new.txt").await,
        Ok("written".into())
    );
    assert!(writable.path().join("new.txt").exists());
    assert!(probe(&client, "granted", "read", "/etc/passwd")
        .await
        .is_err());
    assert!(probe(&client, "granted", "read", "/data/../../etc/passwd")
        .await
        .is_err());
    assert_eq!(
        probe(&client, "granted", "fetch", &url).await,
        Ok("200".into())
    );
    let head = requests.recv().expect("the granted request arrived");
    assert!(head.starts_with("GET / HTTP/1.1"), "{head}");
    let elsewhere = format!("http://127.0.0.1:{nats_port}/");
    let refused = probe(&client, "granted", "fetch", &elsewhere)
        .await
        .unwrap_err();
    assert!(refused.contains("HttpRequestDenied"), "{refused}");
    let refused = probe(&client, "granted", "connect", &format!("127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert!(
        refused.contains("access-denied"),
        "sockets stay closed: {refused}"
    );
    let now: u64 = probe(&client, "granted", "clock", "")
        .await
        .expect("clock")
        .parse()
        .expect("seconds");
    assert!(now > 1_700_000_000, "the real clock: {now}");
}

#[tokio::test]
async fn a_grant_of_a_directory_the_host_does_not_share_is_refused() {
    init_logging();
    let nats = NatsServer::start().await;
    let shared = tempfile::tempdir().expect("tempdir");
    let ro = shared.path().display().to_string();
    let host = HostProcess::start(
        &nats.url(),
        "grants-refused",
        &[],
        &["--allow-preopen", &ro],
    )
    .await;
    let client = nats.client("grants-refused").await;
    let outside = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(outside.path(), shared.path().join("link")).expect("symlink");
    for (spec, why) in [
        ("/etc".to_string(), "does not share"),
        (format!("{ro}:/d:rw"), "--allow-preopen-rw"),
        (format!("{ro}/link"), "does not share"),
        ("/no/such/dir".to_string(), "no such directory"),
    ] {
        let grants = Grants {
            preopens: vec![Preopen::parse(&spec).expect("preopen")],
            ..Grants::default()
        };
        let err = client
            .scale_component(host.id(), &sandbox("refused", grants))
            .await
            .expect_err(&spec);
        assert!(err.to_string().contains(why), "{spec}: {err}");
    }
    // A malformed grant is refused where the request is parsed.
    let raw = serde_json::json!({
        "component_id": "refused",
        "image": component_ref("sandbox"),
        "replicas": 1,
        "grants": {"preopens": [{"host": "relative/dir"}]},
    });
    let reply = client
        .nats()
        .request(
            client.subjects().component_scale(host.id()),
            raw.to_string().into(),
        )
        .await
        .expect("reply");
    let text = String::from_utf8_lossy(&reply.payload).into_owned();
    assert!(text.contains("absolute path"), "{text}");
    assert!(client
        .inventory(host.id())
        .await
        .expect("inventory")
        .components
        .is_empty());
}
