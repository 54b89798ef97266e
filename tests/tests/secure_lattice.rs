//! An authenticated, encrypted lattice with least-privilege users: the nats-server
//! configuration of examples/secure (TLS with client certificates, nkey users per role), and
//! what each user can and cannot do, each refusal one clear line.

use std::time::Duration;

use trellis_lattice::ErrorKind;
use trellis_tests::secure::{SecureLattice, User, LATTICE};
use trellis_tests::{component_ref, init_logging, CliOutput};

/// One line on stderr, naming what was refused; returns it.
fn one_line(out: &CliOutput, code: i32, expected: &str) -> String {
    assert_eq!(out.code, Some(code), "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "not one line: {:?}", out.stderr);
    assert!(
        lines[0].contains(expected),
        "expected {expected:?} in {:?}",
        lines[0]
    );
    lines[0].to_string()
}

/// "authorization violation: user U… may not publish SUBJECT", exit code 4 (refused).
fn may_not_publish(out: &CliOutput, user: &str, subject: &str) {
    one_line(
        out,
        4,
        &format!("trellis: authorization violation: user {user} may not publish {subject}"),
    );
}

#[tokio::test]
async fn a_client_without_credentials_or_certificate_is_refused_at_connect() {
    init_logging();
    let lattice = SecureLattice::start().await;
    let url = lattice.url();

    let out = lattice.cli(User::Nobody).run(&["get", "hosts"]).await;
    one_line(
        &out,
        6,
        &format!("authorization violation: the server at {url} refused the credentials of a client without credentials"),
    );

    // The library says the same, typed.
    let err = trellis_lattice::client::connect(&url, &lattice.options(User::Nobody), "t")
        .await
        .expect_err("no credentials");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        err.to_string().starts_with("authorization violation"),
        "{err}"
    );

    // An nkey without a client certificate: the server verifies clients.
    let out = trellis_tests::Cli::new(&url, LATTICE)
        .env(
            "NATS_NKEY",
            &lattice.path("operator.nk").display().to_string(),
        )
        .env("NATS_TLS_CA", &lattice.path("ca.pem").display().to_string())
        .run(&["get", "hosts"])
        .await;
    one_line(&out, 6, "did not accept this client's certificate");

    // A plain client that trusts only the system's CAs is told to give the server's CA.
    let plain = trellis_tests::Cli::new(&lattice.nats.url(), LATTICE)
        .env(
            "NATS_NKEY",
            &lattice.path("operator.nk").display().to_string(),
        )
        .run(&["get", "hosts"])
        .await;
    one_line(
        &plain,
        6,
        "not signed by a CA this machine trusts (give the server's CA with --nats-tls-ca)",
    );

    // A host refused at start exits at once with the reason instead of retrying forever.
    let mut host = lattice.spawn("trellis-host", &["--ephemeral".into()], User::Nobody);
    let status = host.exit_status(Duration::from_secs(30)).await;
    assert!(
        status.is_some_and(|s| !s.success()),
        "{:?}\n{}",
        status,
        host.log()
    );
    assert!(
        host.log()
            .contains("authorization violation: the server at"),
        "{}",
        host.log()
    );
}

#[tokio::test]
async fn tls_with_a_wrong_ca_fails_clearly() {
    init_logging();
    let lattice = SecureLattice::start().await;
    let other = tempfile::tempdir().unwrap();
    trellis_tests::secure::make_keys(other.path());
    let wrong_ca = other.path().join("ca.pem");

    let out = lattice
        .cli(User::Operator)
        .run(&[
            "--nats-tls-ca",
            &wrong_ca.display().to_string(),
            "get",
            "hosts",
        ])
        .await;
    let line = one_line(
        &out,
        6,
        &format!(
            "TLS: the certificate of the server at {} is not signed by CA {}",
            lattice.url(),
            wrong_ca.display()
        ),
    );
    // The file's contents are never repeated.
    let pem = std::fs::read_to_string(&wrong_ca).unwrap();
    assert!(!line.contains("BEGIN") && !line.contains(pem.lines().nth(1).unwrap()));

    // A file that is not a certificate is named, not quoted.
    let out = lattice
        .cli(User::Operator)
        .run(&[
            "--nats-tls-ca",
            &lattice.path("operator.nk").display().to_string(),
            "get",
            "hosts",
        ])
        .await;
    let line = one_line(&out, 2, "holds no PEM certificate");
    let seed = std::fs::read_to_string(lattice.path("operator.nk")).unwrap();
    assert!(!line.contains(seed.trim()), "{line}");

    // The manager refused by TLS exits with the reason.
    let mut manager = lattice.spawn(
        "trellis-deploy",
        &["--nats-tls-ca".into(), wrong_ca.display().to_string()],
        User::Manager,
    );
    let status = manager.exit_status(Duration::from_secs(30)).await;
    assert!(
        status.is_some_and(|s| !s.success()),
        "{:?}\n{}",
        status,
        manager.log()
    );
    assert!(
        manager.log().contains("is not signed by CA"),
        "{}",
        manager.log()
    );
}

#[tokio::test]
async fn a_host_user_cannot_drive_other_hosts_links_or_apps() {
    init_logging();
    let lattice = SecureLattice::start().await;
    let _host1 = lattice.host(1).await;
    let host2 = lattice.host(2).await;
    let _manager = lattice.manager().await;
    let (user1, host2_id) = (lattice.key("HOST1_USER"), lattice.key("HOST2_ID"));
    let as_host1 = lattice.cli(User::Host(1));

    let out = as_host1
        .run(&[
            "component",
            "scale",
            "greeter",
            "--replicas",
            "0",
            "--host",
            host2_id,
        ])
        .await;
    may_not_publish(
        &out,
        user1,
        &format!("trellis.ctl.v1.{LATTICE}.component.scale.{host2_id}"),
    );
    let out = as_host1.run(&["host", "stop", host2_id]).await;
    may_not_publish(
        &out,
        user1,
        &format!("trellis.ctl.v1.{LATTICE}.host.stop.{host2_id}"),
    );
    let out = as_host1
        .run(&[
            "link",
            "put",
            "a",
            "b",
            "wasi:keyvalue",
            "--interface",
            "store",
        ])
        .await;
    may_not_publish(&out, user1, &format!("trellis.ctl.v1.{LATTICE}.link.put"));
    let manifest =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/apps/greeter.yaml");
    let out = as_host1
        .run(&["app", "deploy", &manifest.display().to_string()])
        .await;
    let line = one_line(
        &out,
        4,
        &format!(
            "authorization violation: user {user1} may not publish trellis.ctl.v1.{LATTICE}.app."
        ),
    );
    assert!(!line.contains("timed out"), "{line}");

    // The host itself logged nothing refused: its own permissions are enough to serve.
    assert!(
        !host2.log().contains("authorization violation"),
        "{}",
        host2.log()
    );
}

#[tokio::test]
async fn a_provider_user_reaches_its_subjects_and_no_control_subject() {
    init_logging();
    let lattice = SecureLattice::start().await;
    let _host = lattice.host(1).await;
    let (provider, host_id) = (lattice.key("PROVIDER"), lattice.key("HOST1_ID"));
    let as_provider = lattice.cli(User::Provider);

    let out = as_provider.run(&["get", "hosts"]).await;
    may_not_publish(
        &out,
        provider,
        &format!("trellis.ctl.v1.{LATTICE}.host.ping"),
    );
    let out = as_provider
        .run(&[
            "component",
            "start",
            &component_ref("greeter"),
            "--id",
            "g",
            "--host",
            host_id,
        ])
        .await;
    may_not_publish(
        &out,
        provider,
        &format!("trellis.ctl.v1.{LATTICE}.component.scale.{host_id}"),
    );
    let out = as_provider.run(&["config", "put", "c", "k=v"]).await;
    may_not_publish(
        &out,
        provider,
        &format!("trellis.ctl.v1.{LATTICE}.config.put"),
    );

    // A subscription it may not make ends the command at once too.
    let out = as_provider.run(&["spy"]).await;
    assert_eq!(out.code, Some(4), "{out:?}");
    let refused =
        format!("trellis: authorization violation: user {provider} may not subscribe to trellis.evt.{LATTICE}.>");
    assert!(out.stderr.contains(&refused), "{out:?}");

    // What it needs works: serving its exports and reading the links and config.
    let client = lattice.client(User::Provider).await;
    let id = lattice.key("PROVIDER_ID");
    client
        .nats()
        .queue_subscribe(client.subjects().rpc_wildcard(id), id.to_string())
        .await
        .expect("its rpc subjects");
    let store = trellis_lattice::kv::LatticeStore::open(client.nats(), client.subjects())
        .await
        .expect("the lattice's buckets");
    store.links().await.expect("reading links");
}

#[tokio::test]
async fn the_operator_drives_hosts_and_the_manager_under_tls() {
    init_logging();
    let lattice = SecureLattice::start().await;
    let host1 = lattice.host(1).await;
    let _host2 = lattice.host(2).await;
    let manager = lattice.manager().await;
    let operator = lattice.cli(User::Operator);
    let host1_id = lattice.key("HOST1_ID");

    // A component on host 1, running under host 1's user, started and called by the operator.
    operator
        .run(&[
            "component",
            "start",
            &component_ref("greeter"),
            "--id",
            "greeter",
            "--host",
            host1_id,
        ])
        .await
        .ok();
    let out = operator
        .run(&["call", "greeter", "greet", "\"Ada\""])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "\"Hello, Ada!\"");
    operator
        .run(&["config", "put", "settings", "k=v"])
        .await
        .ok();
    operator
        .run(&[
            "link",
            "put",
            "absent",
            "kv",
            "wasi:keyvalue",
            "--interface",
            "store",
        ])
        .await
        .ok();
    operator
        .run(&["link", "del", "absent", "wasi:keyvalue"])
        .await
        .ok();

    // The component-caller may call greeter, and nothing else.
    let caller = lattice.cli(User::Caller);
    let out = caller
        .run(&["call", "greeter", "greet", "\"Bo\""])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "\"Hello, Bo!\"");
    let out = caller.run(&["call", "counter", "increment", "\"k\""]).await;
    may_not_publish(
        &out,
        lattice.key("CALLER"),
        &format!("trellis.ctl.v1.{LATTICE}.component.describe.counter"),
    );

    // Reading the lattice's state directly is refused at once, not after JetStream's timeout.
    let out = caller.run(&["config", "get", "settings"]).await;
    may_not_publish(
        &out,
        lattice.key("CALLER"),
        &format!("$JS.API.STREAM.INFO.KV_trellis_links_{LATTICE}"),
    );

    // An app, placed by the manager running under the manager user.
    let manifest =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/apps/greeter.yaml");
    operator
        .run(&["app", "deploy", &manifest.display().to_string(), "--wait"])
        .await
        .ok();
    let client = lattice.client(User::Operator).await;
    trellis_tests::wait_for(
        "4 replicas of the app's greeter",
        Duration::from_secs(60),
        || {
            let client = &client;
            async move {
                let replicas = trellis_tests::deploy::replicas(client, "greeter-greeter").await;
                (replicas.values().sum::<u32>() == 4).then_some(())
            }
        },
    )
    .await;
    operator.run(&["app", "delete", "greeter"]).await.ok();

    for (who, log) in [("host 1", host1.log()), ("manager", manager.log())] {
        assert!(
            !log.contains("authorization violation"),
            "{who} was refused something:\n{log}"
        );
    }
}
