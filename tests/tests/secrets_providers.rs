//! Secret config for providers: a Redis password sealed in a link's target config is opened
//! by the providers of the host holding the secrets key (built in, and an executable the host
//! started), and by nothing else; a host without the key refuses a provider whose own config
//! holds a secret. The password is found in no log, event or stored entry.

use std::path::Path;
use std::time::Duration;

use trellis_lattice::control::{ScaleComponent, StartProvider};
use trellis_lattice::Placement;
use trellis_tests::{
    component_ref, counter_link, init_logging, start_provider_on, wait_for, Cli, EventLog,
    HostProcess, NatsServer, RedisServer,
};

const LATTICE: &str = "secprov";

async fn increment(client: &trellis_lattice::LatticeClient, key: &str) -> serde_json::Value {
    client
        .call("counter", "increment", &[serde_json::json!(key)])
        .await
        .unwrap_or_else(|e| panic!("increment {key}: {e}"))
}

async fn keygen(cli: &Cli, dir: &Path) -> (String, String) {
    let file = dir.join("secrets.xk");
    let file = file.to_str().expect("path").to_string();
    let out = cli.run(&["secret", "keygen", "--out", &file]).await.ok();
    (file, out.stdout.trim().to_string())
}

#[tokio::test]
async fn providers_open_a_sealed_redis_password_only_on_the_host_with_the_key() {
    init_logging();
    let nats = NatsServer::start().await;
    let redis = RedisServer::start().await;
    let random = nkeys::KeyPair::new_user().public_key();
    let password = format!("redispw-{}", &random[1..33]);
    let reply = redis
        .command(&["CONFIG", "SET", "requirepass", &password])
        .await;
    assert!(reply.starts_with("+OK"), "{reply}");
    let dir = tempfile::tempdir().expect("temp dir");
    let cli = Cli::new(&nats.url(), LATTICE).env("TRELLIS_LOG", "trace");
    let (key_file, public_key) = keygen(&cli, dir.path()).await;
    let holder = HostProcess::start(
        &nats.url(),
        LATTICE,
        &[],
        &["--log", "trace", "--secrets-key", &key_file],
    )
    .await;
    let stranger = HostProcess::start(&nats.url(), LATTICE, &[], &["--log", "trace"]).await;
    let client = nats.client(LATTICE).await;
    let events = EventLog::start(&client).await;
    let port = redis.url().rsplit(':').next().expect("port").to_string();
    let url = format!("redis://:{password}@127.0.0.1:{port}");
    let put = cli
        .run(&[
            "config",
            "put",
            "redis",
            &format!("url={url}"),
            "--secret",
            "--secrets-public-key",
            &public_key,
        ])
        .await
        .ok();

    start_provider_on(&client, holder.id(), "kv-redis", "builtin://keyvalue-redis").await;
    let exe = trellis_tests::bin("trellis-provider-keyvalue-redis");
    start_provider_on(
        &client,
        holder.id(),
        "kv-ext",
        &format!("file://{}", exe.display()),
    )
    .await;
    client
        .scale_component(
            holder.id(),
            &ScaleComponent {
                component_id: "counter".into(),
                image: component_ref("counter"),
                replicas: 2,
                ..Default::default()
            },
        )
        .await
        .expect("counter starts");
    // Redis wants the password: the built-in provider opened it.
    client
        .put_link(counter_link("counter", "kv-redis", "redis"))
        .await
        .expect("link");
    assert_eq!(increment(&client, "n").await, serde_json::json!(1));
    // So did the provider executable the host started.
    client
        .retarget_link(
            counter_link("counter", "kv-redis", "redis").key(),
            "kv-ext",
            None,
        )
        .await
        .expect("retarget");
    // With the built-in gone, only the executable can answer (once the host routes there).
    client
        .stop_provider(holder.id(), "kv-redis")
        .await
        .expect("stop kv-redis");
    let counted = wait_for("kv-ext to answer", Duration::from_secs(60), || async {
        client
            .call("counter", "increment", &[serde_json::json!("n")])
            .await
            .ok()
    })
    .await;
    assert_eq!(counted, serde_json::json!(2));

    // A provider on a host without the key fails the link's calls, naming config and key.
    start_provider_on(
        &client,
        stranger.id(),
        "kv-stranger",
        "builtin://keyvalue-redis",
    )
    .await;
    client
        .retarget_link(
            counter_link("counter", "kv-redis", "redis").key(),
            "kv-stranger",
            None,
        )
        .await
        .expect("retarget");
    let err = wait_for(
        "the stranger's refusal",
        Duration::from_secs(60),
        || async {
            match client
                .call("counter", "increment", &[serde_json::json!("n")])
                .await
            {
                Err(e) if e.to_string().contains("config `redis` key `url`") => Some(e.to_string()),
                _ => None,
            }
        },
    )
    .await;
    assert!(err.contains("no secrets key"), "{err}");
    assert!(!err.contains(&password), "{err}");

    // A host without the key refuses a provider whose own config holds the secret.
    let err = client
        .start_provider(
            &Placement::Host(stranger.id().to_string()),
            &StartProvider {
                provider_id: "kv-elsewhere".into(),
                image: "builtin://keyvalue-redis".into(),
                config: vec!["redis".into()],
                annotations: Default::default(),
            },
        )
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("config `redis` key `url`") && err.contains("--secrets-key"),
        "{err}"
    );
    assert!(!err.contains(&password), "{err}");

    let all_events = serde_json::to_string(&events.all()).expect("events");
    for (what, text) in [
        ("the holder's log", holder.log()),
        ("the stranger's log", stranger.log()),
        ("the CLI's output", format!("{}{}", put.stdout, put.stderr)),
        ("the events", all_events),
        (
            "the stored config",
            format!("{:?}", client.named_config("redis").await.expect("read")),
        ),
    ] {
        assert!(
            !text.contains(&password),
            "{what} holds the password:\n{text}"
        );
    }
}
