//! Links between components: a component's import served by another component on another
//! host, through a link put with the CLI.

use trellis_tests::{component_ref, init_logging, Cli, HostProcess, NatsServer};

async fn link_shout_to_upper(cli: &Cli, extra: &[&str]) {
    let mut args = vec![
        "link",
        "put",
        "shout",
        "upper",
        "trellis:examples",
        "--interface",
        "text",
    ];
    args.extend_from_slice(extra);
    cli.run(&args).await.ok();
}

#[tokio::test]
async fn a_component_calls_another_component_on_another_host_through_a_link() {
    init_logging();
    let nats = NatsServer::start().await;
    let a = HostProcess::start(&nats.url(), "c2c", &[], &[]).await;
    let b = HostProcess::start(&nats.url(), "c2c", &[], &[]).await;
    let cli = Cli::new(&nats.url(), "c2c");
    cli.run(&[
        "component",
        "start",
        &component_ref("shout"),
        "--id",
        "shout",
        "--host",
        a.id(),
    ])
    .await
    .ok();
    cli.run(&[
        "component",
        "start",
        &component_ref("upper"),
        "--id",
        "upper",
        "--host",
        b.id(),
    ])
    .await
    .ok();
    let err = cli.run(&["call", "shout", "shout", "\"hey\""]).await.err();
    assert!(
        err.contains("has no link for `trellis:examples/text`"),
        "{err}"
    );
    link_shout_to_upper(&cli, &[]).await;
    let out = cli.run(&["call", "shout", "shout", "\"hey\""]).await.ok();
    assert_eq!(out.stdout.trim(), "\"HEY!\"");
}

/// A script can tell failures apart by the exit code (see the CLI's `exit` module).
#[tokio::test]
async fn the_cli_exits_with_the_code_of_the_error_kind() {
    init_logging();
    let nats = NatsServer::start().await;
    let host = HostProcess::start(&nats.url(), "codes", &[], &[]).await;
    let cli = Cli::new(&nats.url(), "codes");
    let code = |out: trellis_tests::CliOutput| {
        assert!(!out.success, "{out:?}");
        out.code
    };
    // Invalid input, caught before anything is sent.
    let bad_id = cli
        .run(&["component", "start", &component_ref("upper"), "--id", "a.b"])
        .await;
    assert_eq!(code(bad_id), Some(2));
    // Not found: a link that does not exist.
    let missing = cli.run(&["link", "del", "shout", "trellis:examples"]).await;
    assert_eq!(code(missing), Some(3));
    // Conflict: a config a link still uses.
    cli.run(&["config", "put", "bucket", "bucket=b"]).await.ok();
    link_shout_to_upper(&cli, &["--target-config", "bucket"]).await;
    assert_eq!(code(cli.run(&["config", "del", "bucket"]).await), Some(5));
    // Unavailable: nothing runs the component.
    assert_eq!(code(cli.run(&["call", "nobody", "f"]).await), Some(6));
    drop(host);
}
