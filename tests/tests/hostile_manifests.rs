//! Manifests as a careless operator or a hostile client writes them: images that are devices
//! or pipes, documents that expand without end, text that is not UTF-8, manifests larger than
//! a message, pinned digests that do not match. The CLI and the manager refuse each with a
//! located error, and the manager keeps answering everyone else meanwhile.

use std::path::Path;
use std::time::Duration;

use trellis_lattice::LatticeClient;
use trellis_tests::proc::{mkfifo, rss_bytes};
use trellis_tests::{component, init_logging, Cli, ManagerProcess, NatsServer};

fn manifest(name: &str, image: &str) -> String {
    format!(
        "apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: {name}
spec:
  components:
    - name: web
      type: component
      properties:
        image: {image}
      traits:
        - type: spreadscaler
          properties:
            instances: 1
"
    )
}

async fn put(client: &LatticeClient, source: &str, text: &str) -> Result<(), String> {
    tokio::time::timeout(Duration::from_secs(60), client.put_app(source, text))
        .await
        .expect("the manager answers within 60s")
        .map(drop)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn devices_and_pipes_as_images_are_refused_and_the_manager_keeps_answering() {
    init_logging();
    let nats = NatsServer::start().await;
    let manager = ManagerProcess::start(&nats.url(), "hm-files", &[]).await;
    let client = nats.client("hm-files").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("pipe.wasm");
    mkfifo(&fifo);

    // Reading /dev/zero took the manager to 1.9 GiB in a second.
    let err = put(&client, "zero.yaml", &manifest("zero", "/dev/zero"))
        .await
        .unwrap_err();
    assert!(
        err.contains("spec.components[0].properties.image: /dev/zero is a character device, not a regular file"),
        "{err}"
    );
    // Four puts naming a pipe blocked both of the manager's runtime threads.
    let fifo_image = fifo.display().to_string();
    let puts: Vec<_> = (0..4)
        .map(|i| {
            let (url, text) = (nats.url(), manifest(&format!("pipe{i}"), &fifo_image));
            tokio::spawn(async move {
                let client = NatsServer::client_for(&url, "hm-files").await;
                put(&client, "pipe.yaml", &text).await
            })
        })
        .collect();
    let apps = tokio::time::timeout(Duration::from_secs(30), client.apps())
        .await
        .expect("app list answers while pipes are named")
        .expect("app list");
    assert!(apps.is_empty(), "{apps:?}");
    for p in puts {
        let err = p.await.expect("task").unwrap_err();
        assert!(err.contains("is a named pipe, not a regular file"), "{err}");
    }
    let rss = rss_bytes(manager.pid().expect("pid"));
    assert!(rss < 512 << 20, "manager RSS {rss} bytes");
}

#[tokio::test]
async fn the_cli_locates_what_is_wrong_with_a_manifest_file() {
    init_logging();
    let dir = tempfile::tempdir().expect("tempdir");
    let cli = Cli::new("nats://127.0.0.1:1", "hm-cli");
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        path.display().to_string()
    };
    let validate = |file: String| {
        let cli = &cli;
        async move {
            let out = tokio::time::timeout(
                Duration::from_secs(60),
                cli.run(&["app", "validate", &file]),
            )
            .await
            .expect("validate finishes within 60s");
            assert_eq!(out.code, Some(2), "{out:?}");
            out.stderr
        }
    };

    let zero = write("zero.yaml", manifest("zero", "/dev/zero").as_bytes());
    let err = validate(zero.clone()).await;
    assert!(
        err.contains(&format!(
            "{zero}: spec.components[0].properties.image: /dev/zero is a character device"
        )),
        "{err}"
    );

    let fifo = dir.path().join("manifest.yaml");
    mkfifo(&fifo);
    let err = validate(fifo.display().to_string()).await;
    assert!(err.contains("is a named pipe, not a regular file"), "{err}");
    let err = validate("/dev/zero".into()).await;
    assert!(err.contains("is a character device"), "{err}");

    let bomb = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n";
    let err = validate(write("bomb.yaml", bomb.as_bytes())).await;
    assert!(err.contains("bomb.yaml: line 2: aliases expand"), "{err}");
    let two = format!("{}---\nkind: Other\n", manifest("two", "/c.wasm"));
    let err = validate(write("two.yaml", two.as_bytes())).await;
    assert!(
        err.contains("two.yaml: line 15 column 1: a second YAML document"),
        "{err}"
    );
    let err = validate(write("latin1.yaml", b"apiVersion: x\nkind: Appli\xe9\n")).await;
    assert!(
        err.contains("latin1.yaml: line 2 column 12: the manifest is not valid UTF-8"),
        "{err}"
    );
    let big = format!(
        "{}# {}\n",
        manifest("big", "/c.wasm"),
        "x".repeat(800 << 10)
    );
    let err = validate(write("big.yaml", big.as_bytes())).await;
    assert!(
        err.contains("larger than the 786432 bytes accepted"),
        "{err}"
    );

    let greeter = component("greeter");
    let pinned = format!("{}@sha256:{}", greeter.display(), "0".repeat(64));
    let err = validate(write("pinned.yaml", manifest("pinned", &pinned).as_bytes())).await;
    assert!(
        err.contains("spec.components[0].properties.image: digest mismatch"),
        "{err}"
    );
}

#[tokio::test]
async fn a_manifest_larger_than_a_message_is_refused_before_it_is_sent() {
    init_logging();
    let nats = NatsServer::start_with_config("max_payload: 65536\n").await;
    let _manager = ManagerProcess::start(&nats.url(), "hm-size", &[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Within what a manifest may hold, but not what this server takes in one message.
    let text = manifest("size", &component("greeter").display().to_string()).replace(
        "  name: size\n",
        &format!(
            "  name: size\n  annotations:\n    description: {}\n",
            "x".repeat(100 << 10)
        ),
    );
    let file = dir.path().join("size.yaml");
    std::fs::write(&file, text).expect("write");
    let out = Cli::new(&nats.url(), "hm-size")
        .run(&["app", "deploy", file.to_str().expect("path")])
        .await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("is larger than the 65536 bytes the NATS server accepts in one message"),
        "{}",
        out.stderr
    );
    assert!(!Path::new(&file).with_extension("stored").exists());
}
