//! The README's walkthrough, continued: components started and called, a second host with a
//! label, placement by constraint, `get hosts`, `get inventory`, `label put`, `host stop`,
//! component settings through `config put`, and the global `--nats-url`/`--lattice` flags.

mod walkthrough_support;

use trellis_tests::{init_logging, HostProcess, NatsServer};
use walkthrough_support::{cli, cli_with_flags, friendly_name, host_ids, readme_component};

#[tokio::test]
async fn components_start_from_their_files_and_answer_calls_in_json() {
    init_logging();
    let nats = NatsServer::start().await;
    let _host = HostProcess::start(&nats.url(), "default", &[], &[]).await;
    let shell = cli(&nats.url(), "default");

    // trellis component start target/components/greeter.wasm --id greeter
    let greeter = readme_component("greeter");
    let out = shell
        .run(&["component", "start", &greeter, "--id", "greeter"])
        .await
        .ok();
    assert!(out.stdout.contains("greeter runs on"), "{out:?}");
    // trellis call greeter greet '"Ada"'
    let out = shell
        .run(&["call", "greeter", "greet", "\"Ada\""])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "\"Hello, Ada!\"");

    // The same, in Python.
    let python = readme_component("greeter-py");
    shell
        .run(&["component", "start", &python, "--id", "greeter-py"])
        .await
        .ok();
    let out = shell
        .run(&["call", "greeter-py", "greet", "\"Ada\""])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "\"Hello, Ada!\"");
}

/// The part of `trellis get inventory` about host `name` (from its `host NAME (ID)` line to
/// the next host's).
fn section(inventory: &str, name: &str) -> String {
    let mut lines = inventory
        .lines()
        .skip_while(|l| !l.starts_with(&format!("host {name} (")));
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("no host {name} in:\n{inventory}"));
    std::iter::once(first)
        .chain(lines.take_while(|l| !l.starts_with("host ")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_second_host_with_a_label_takes_components_by_constraint_and_stops_on_request() {
    init_logging();
    let nats = NatsServer::start().await;
    let first = HostProcess::start(&nats.url(), "default", &[], &[]).await;
    // trellis-host --label tier=edge &
    let mut edge = HostProcess::start(&nats.url(), "default", &[("tier", "edge")], &[]).await;
    let shell = cli(&nats.url(), "default");
    let edge_name = friendly_name(&shell, edge.id()).await;
    let first_name = friendly_name(&shell, first.id()).await;

    // trellis get hosts: both hosts, their labels and uptime.
    let table = shell.run(&["get", "hosts"]).await.ok().stdout;
    for text in [
        "UPTIME",
        first.id(),
        edge.id(),
        &edge_name,
        &first_name,
        "tier=edge",
    ] {
        assert!(table.contains(text), "no {text} in:\n{table}");
    }

    // trellis component start ... --id edge-greeter --constraint tier=edge
    let greeter = readme_component("greeter");
    let out = shell
        .run(&[
            "component",
            "start",
            &greeter,
            "--id",
            "edge-greeter",
            "--constraint",
            "tier=edge",
        ])
        .await
        .ok();
    assert!(
        out.stdout
            .contains(&format!("edge-greeter runs on {edge_name} ({})", edge.id())),
        "{out:?}"
    );
    let refused = shell
        .run(&[
            "component",
            "start",
            &greeter,
            "--id",
            "nowhere",
            "--constraint",
            "tier=moon",
        ])
        .await;
    assert!(!refused.success, "{refused:?}");

    // trellis get inventory: what runs where.
    let inventory = shell.run(&["get", "inventory"]).await.ok().stdout;
    let edge_part = section(&inventory, &edge_name);
    assert!(edge_part.contains("edge-greeter"), "{inventory}");
    assert!(edge_part.contains("tier=edge"), "{inventory}");
    let first_part = section(&inventory, &first_name);
    assert!(first_part.contains("no components"), "{inventory}");
    assert!(!first_part.contains("edge-greeter"), "{inventory}");

    // trellis label put <host> zone=north: by friendly name, at once.
    let out = shell
        .run(&["label", "put", &edge_name, "zone=north"])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "tier=edge,zone=north");
    let hosts = shell.run(&["get", "hosts", "-o", "json"]).await.ok().json();
    let labels = hosts
        .as_array()
        .into_iter()
        .flatten()
        .find(|h| h["id"] == edge.id())
        .map(|h| h["labels"].clone())
        .expect("the edge host");
    assert_eq!(labels["zone"], "north");

    // trellis host stop <host>: it says goodbye and exits cleanly.
    let out = shell.run(&["host", "stop", &edge_name]).await.ok();
    assert!(
        out.stdout
            .contains(&format!("host {} is stopping", edge.id())),
        "{out:?}"
    );
    let status = edge.terminate().await;
    assert!(status.success(), "the stopped host exited with {status}");
    assert_eq!(host_ids(&shell).await, vec![first.id().to_string()]);
}

#[tokio::test]
async fn config_put_changes_the_settings_a_running_component_reads() {
    init_logging();
    let nats = NatsServer::start().await;
    let _host = HostProcess::start(&nats.url(), "default", &[], &[]).await;
    let shell = cli(&nats.url(), "default");

    // trellis config put greetings greeting=Howdy lang=en
    let out = shell
        .run(&["config", "put", "greetings", "greeting=Howdy", "lang=en"])
        .await
        .ok();
    assert!(
        out.stdout.contains("config greetings set (2 key(s))"),
        "{out:?}"
    );
    let settings = readme_component("settings");
    shell
        .run(&[
            "component",
            "start",
            &settings,
            "--id",
            "settings",
            "--config",
            "greetings",
        ])
        .await
        .ok();
    let said = shell
        .run(&["call", "settings", "setting", "\"greeting\""])
        .await
        .ok();
    assert_eq!(said.stdout.trim(), "\"Howdy\"");
    let lang = shell
        .run(&["call", "settings", "setting", "\"lang\""])
        .await
        .ok();
    assert_eq!(lang.stdout.trim(), "\"en\"");

    // trellis config put greetings greeting=Hi: the next call says "Hi".
    shell
        .run(&["config", "put", "greetings", "greeting=Hi"])
        .await
        .ok();
    let said = shell
        .run(&["call", "settings", "setting", "\"greeting\""])
        .await
        .ok();
    assert_eq!(said.stdout.trim(), "\"Hi\"");
    // A put replaces the whole config: `lang` is gone.
    let lang = shell
        .run(&["call", "settings", "setting", "\"lang\""])
        .await
        .ok();
    assert_eq!(lang.stdout.trim(), "null");
}

#[tokio::test]
async fn global_flags_name_the_server_and_the_lattice() {
    init_logging();
    let nats = NatsServer::start().await;
    let host = HostProcess::start(&nats.url(), "flags", &[], &[]).await;
    let _other = HostProcess::start(&nats.url(), "other", &[], &[]).await;

    // `--nats-url` and `--lattice` as flags, with nothing in the environment.
    let flags = cli_with_flags(&nats.url(), "flags");
    assert_eq!(host_ids(&flags).await, vec![host.id().to_string()]);
    let greeter = readme_component("greeter");
    flags
        .run(&["component", "start", &greeter, "--id", "greeter"])
        .await
        .ok();
    let out = flags
        .run(&["call", "greeter", "greet", "\"flags\""])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "\"Hello, flags!\"");

    // Flags win over the environment, and may follow the command.
    let elsewhere = cli("nats://127.0.0.1:1", "nowhere");
    let after = elsewhere
        .run(&[
            "get",
            "hosts",
            "-o",
            "json",
            "--nats-url",
            &nats.url(),
            "--lattice",
            "flags",
        ])
        .await
        .ok()
        .json();
    assert_eq!(after[0]["id"], host.id());
    let out = elsewhere
        .run(&[
            "--lattice",
            "flags",
            "--nats-url",
            &nats.url(),
            "call",
            "greeter",
            "greet",
            "\"again\"",
        ])
        .await
        .ok();
    assert_eq!(out.stdout.trim(), "\"Hello, again!\"");
    // The environment alone points elsewhere: nothing answers there.
    let err = elsewhere.run(&["get", "hosts"]).await;
    assert_eq!(err.code, Some(6), "{err:?}");
    // Another lattice on the same server sees its own host only.
    let other = cli_with_flags(&nats.url(), "other");
    let ids = host_ids(&other).await;
    assert_eq!(ids.len(), 1);
    assert_ne!(ids[0], host.id());
}
