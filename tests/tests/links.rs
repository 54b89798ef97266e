//! Links between components: a component's import served by another component on another
//! host, through a link put with the CLI.

use trellis_tests::{component_ref, init_logging, Cli, HostProcess, NatsServer};

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
    cli.run(&[
        "link",
        "put",
        "shout",
        "upper",
        "trellis:examples",
        "--interface",
        "text",
    ])
    .await
    .ok();
    let out = cli.run(&["call", "shout", "shout", "\"hey\""]).await.ok();
    assert_eq!(out.stdout.trim(), "\"HEY!\"");
}
