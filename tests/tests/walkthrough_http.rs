//! The README's walkthrough on a lattice `trellis up` started: components served over HTTP
//! through the server `up --http-addr` started (routes by path, a second route by link name,
//! `link del`), and an application deployed through the manager `up` started (`app put`,
//! `app get`, `app deploy --wait`, `app status`).

mod walkthrough_support;

use trellis_tests::{free_port, init_logging, wait_for, CliChild, HostProcess};
use walkthrough_support::{
    cli, free_nats_url, get, readme_component, up_foreground, workspace, PATIENCE,
};

/// `trellis up` in the foreground on a free NATS port, with `extra` flags.
async fn up(nats_url: &str, state: &tempfile::TempDir, extra: &[&str]) -> CliChild {
    let state_dir = state.path().display().to_string();
    let mut args = vec!["--nats-url", nats_url, "--state-dir", &state_dir];
    args.extend_from_slice(extra);
    up_foreground(cli(nats_url, "default"), &args).await
}

/// Ctrl-C, and `up` stops cleanly.
async fn stop(mut up: CliChild) {
    up.signal(libc::SIGINT);
    let status = up.wait(PATIENCE).await;
    assert!(status.success(), "{status}: {}", up.stderr());
}

#[tokio::test]
async fn components_answer_http_routed_by_path_and_by_link_name() {
    init_logging();
    let nats_url = free_nats_url();
    let http = format!("127.0.0.1:{}", free_port());
    let state = tempfile::tempdir().expect("state dir");
    let up = up(&nats_url, &state, &["--http-addr", &http]).await;
    let shell = cli(&nats_url, "default");

    // The counter and its key-value provider, as the walkthrough left them.
    shell
        .run(&["config", "put", "counter-bucket", "bucket=counters"])
        .await
        .ok();
    shell
        .run(&[
            "provider",
            "start",
            "builtin://keyvalue-nats",
            "--id",
            "kv-nats",
        ])
        .await
        .ok();
    let counter = readme_component("counter");
    shell
        .run(&["component", "start", &counter, "--id", "counter"])
        .await
        .ok();
    shell
        .run(&[
            "link",
            "put",
            "counter",
            "kv-nats",
            "wasi:keyvalue",
            "--interface",
            "atomics",
            "--interface",
            "store",
            "--target-config",
            "counter-bucket",
        ])
        .await
        .ok();

    // trellis component start target/components/hello-http.wasm --id hello --replicas 32
    let hello = readme_component("hello-http");
    let out = shell
        .run(&[
            "component",
            "start",
            &hello,
            "--id",
            "hello",
            "--replicas",
            "32",
        ])
        .await
        .ok();
    assert!(out.stdout.contains("with 32 replica(s)"), "{out:?}");
    shell
        .run(&["config", "put", "route-hello", "path=/hello"])
        .await
        .ok();
    shell
        .run(&[
            "link",
            "put",
            "http",
            "hello",
            "wasi:http",
            "--interface",
            "incoming-handler",
            "--source-config",
            "route-hello",
        ])
        .await
        .ok();
    // curl localhost:8080/hello
    let (status, body) = get(&format!("http://{http}/hello")).await;
    assert_eq!((status, body.trim()), (200, "Hello from Trellis"));

    shell
        .run(&["config", "put", "route-counter", "path=/counter"])
        .await
        .ok();
    shell
        .run(&[
            "link",
            "put",
            "http",
            "counter",
            "wasi:http",
            "--interface",
            "incoming-handler",
            "--source-config",
            "route-counter",
            "--name",
            "counter",
        ])
        .await
        .ok();
    // curl localhost:8080/counter/hits: the same count `trellis call` sees.
    let (status, first) = get(&format!("http://{http}/counter/hits")).await;
    assert_eq!(status, 200, "{first}");
    let first: u64 = first.trim().parse().expect("a count");
    let (_, second) = get(&format!("http://{http}/counter/hits")).await;
    assert_eq!(second.trim(), (first + 1).to_string());
    let called = shell
        .run(&["call", "counter", "increment", "\"hits\""])
        .await
        .ok();
    assert_eq!(called.stdout.trim(), (first + 2).to_string());
    // Both routes are links of the server, told apart by name.
    let links = shell.run(&["get", "links", "-o", "json"]).await.ok().json();
    let names: Vec<&str> = links
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["source_id"] == "http")
        .filter_map(|l| l["name"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{links:#}");
    assert!(names.contains(&"counter"), "{links:#}");

    // trellis link del http wasi:http: the default-named route goes, the named one stays.
    shell.run(&["link", "del", "http", "wasi:http"]).await.ok();
    // The server follows the deletion as it learns of it.
    wait_for("/hello to have no route", PATIENCE, || async {
        (get(&format!("http://{http}/hello")).await.0 == 404).then_some(())
    })
    .await;
    let (status, _) = get(&format!("http://{http}/counter/hits")).await;
    assert_eq!(status, 200);
    stop(up).await;
}

#[tokio::test]
async fn an_app_is_put_read_deployed_and_reported_through_the_manager_up_started() {
    init_logging();
    let nats_url = free_nats_url();
    let state = tempfile::tempdir().expect("state dir");
    let up = up(&nats_url, &state, &[]).await;
    let _second = HostProcess::start(&nats_url, "default", &[("tier", "edge")], &[]).await;
    let shell = cli(&nats_url, "default");
    shell
        .run(&["config", "put", "counter-bucket", "bucket=counters"])
        .await
        .ok();

    // trellis app put / app get
    let out = shell
        .run(&["app", "put", "examples/apps/counter.yaml"])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "stored counter version v1");
    let manifest = shell.run(&["app", "get", "counter"]).await.ok().stdout;
    for text in [
        "name: counter",
        "version: v1",
        "counter-app-bucket",
        "builtin://keyvalue-nats",
    ] {
        assert!(manifest.contains(text), "no {text} in:\n{manifest}");
    }

    // trellis app deploy examples/apps/counter.yaml --wait
    let out = shell
        .run(&["app", "deploy", "examples/apps/counter.yaml", "--wait"])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "counter version v1 deployed");
    // trellis app status counter
    let status = shell.run(&["app", "status", "counter"]).await.ok().stdout;
    let first = status.lines().next().unwrap_or_default();
    assert!(
        first.contains("counter") && first.contains("version v1") && first.contains("deployed"),
        "{status}"
    );
    for text in ["spreadscaler", "daemonscaler", "link"] {
        assert!(status.contains(text), "no {text} in:\n{status}");
    }
    let json = shell
        .run(&["app", "status", "counter", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(json["status"], "deployed");
    let out = shell
        .run(&["call", "counter-counter", "increment", "\"visits\""])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "1");

    // The hand-made counter-bucket is left alone; a manifest taking it over is refused.
    let kept = shell.run(&["config", "get", "counter-bucket"]).await.ok();
    assert_eq!(kept.stdout.trim(), "bucket=counters");
    let dir = tempfile::tempdir().expect("manifest dir");
    let thief = std::fs::read_to_string(workspace().join("examples/apps/counter.yaml"))
        .expect("the example")
        .replace("name: counter\n", "name: thief\n")
        .replace("counter-app-bucket", "counter-bucket")
        .replace("id: counter-kv", "id: thief-kv")
        .replace(
            "../../target/components/counter.wasm",
            &trellis_tests::component("counter").display().to_string(),
        );
    let path = dir.path().join("thief.yaml");
    std::fs::write(&path, thief).expect("writing the manifest");
    let refused = shell
        .run(&["app", "deploy", &path.display().to_string()])
        .await;
    assert_eq!(refused.code, Some(5), "{refused:?}");
    assert!(refused.stderr.contains("counter-bucket"), "{refused:?}");
    stop(up).await;
}
