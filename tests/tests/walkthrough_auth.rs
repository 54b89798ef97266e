//! "Everything takes `--creds`": the CLI's NATS credentials (`--nats-creds`/`--creds`,
//! `--nats-nkey`, `--nats-user`/`--nats-password`, `--nats-token`, or the same in the
//! environment), for every command and for `trellis up`, which hands them to the host and
//! the manager it starts.

mod walkthrough_support;

use trellis_tests::{free_port, init_logging, NatsServer};
use walkthrough_support::{
    cli, free_nats_url, get, host_ids, listening, up_detached, up_foreground, DetachedGuard,
    PATIENCE,
};

/// One line on stderr, and the exit code of "unavailable".
fn one_refusal(out: trellis_tests::CliOutput) -> String {
    assert_eq!(out.code, Some(6), "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "not one line: {:?}", out.stderr);
    assert!(lines[0].starts_with("trellis: "), "{}", lines[0]);
    assert!(lines[0].contains("authorization violation"), "{}", lines[0]);
    lines[0].to_string()
}

#[tokio::test]
async fn the_cli_connects_with_the_servers_token_and_fails_in_one_line_without() {
    init_logging();
    let nats = NatsServer::start_with_config("authorization { token: \"s3cret\" }").await;
    let url = nats.url();

    // As flags, before or after the command, and from the environment.
    let hosts = cli(&url, "default")
        .run(&["--nats-token", "s3cret", "get", "hosts", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(hosts, serde_json::json!([]));
    cli(&url, "default")
        .run(&["get", "hosts", "--nats-token", "s3cret"])
        .await
        .ok();
    let from_env = cli(&url, "default")
        .env("NATS_TOKEN", "s3cret")
        .run(&["get", "hosts", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(from_env, serde_json::json!([]));

    one_refusal(cli(&url, "default").run(&["get", "hosts"]).await);
    one_refusal(
        cli(&url, "default")
            .run(&["--nats-token", "wrong", "config", "get", "c"])
            .await,
    );
    // A user and password are not the token.
    one_refusal(
        cli(&url, "default")
            .env("NATS_USER", "ada")
            .env("NATS_PASSWORD", "s3cret")
            .run(&["get", "hosts"])
            .await,
    );

    // At most one kind of credentials; a password needs a user.
    let both = cli(&url, "default")
        .run(&[
            "--nats-token",
            "s3cret",
            "--nats-user",
            "ada",
            "get",
            "hosts",
        ])
        .await;
    assert_eq!(both.code, Some(2), "{both:?}");
    assert!(both.stderr.contains("give only one"), "{both:?}");
    let lone = cli(&url, "default")
        .run(&["--nats-password", "pw", "get", "hosts"])
        .await;
    assert_eq!(lone.code, Some(2), "{lone:?}");
    assert!(lone.stderr.contains("--nats-user"), "{lone:?}");
    // `--creds` is `--nats-creds`: a missing file is named.
    let creds = cli(&url, "default")
        .run(&["--creds", "/nonexistent/user.creds", "get", "hosts"])
        .await;
    assert!(!creds.success);
    assert!(
        creds.stderr.contains("/nonexistent/user.creds"),
        "{creds:?}"
    );
}

#[tokio::test]
async fn up_reuses_a_protected_server_and_gives_its_token_to_the_host_and_manager() {
    init_logging();
    let nats = NatsServer::start_with_config("authorization { token: \"s3cret\" }").await;
    let url = nats.url();
    let http = format!("127.0.0.1:{}", free_port());
    let state = tempfile::tempdir().expect("state dir");
    let state_dir = state.path().display().to_string();

    // Without the token, `up` says in one line that the server refused it.
    let refused = cli(&url, "default")
        .run(&["up", "--nats-url", &url, "--state-dir", &state_dir])
        .await;
    let line = one_refusal(refused);
    assert!(line.contains("did not accept"), "{line}");

    let mut up = up_foreground(
        cli(&url, "default"),
        &[
            "--nats-url",
            &url,
            "--nats-token",
            "s3cret",
            "--http-addr",
            &http,
            "--state-dir",
            &state_dir,
        ],
    )
    .await;
    assert!(
        up.stderr()
            .contains(&format!("using the NATS server at {url}")),
        "{}",
        up.stderr()
    );
    // The host and the manager it started are connected: they answer a client with the token.
    let shell = cli(&url, "default").env("NATS_TOKEN", "s3cret");
    assert_eq!(host_ids(&shell).await.len(), 1);
    shell.run(&["app", "list"]).await.ok();
    assert_eq!(get(&format!("http://{http}/")).await.0, 404);

    // The host dies: `up` reaps it, says so, and fails.
    let host = up
        .children()
        .into_iter()
        .find(|(_, comm)| comm == "trellis-host")
        .map(|(pid, _)| pid)
        .expect("the host up started");
    // SAFETY: killing the host `up` started.
    unsafe {
        libc::kill(host as libc::pid_t, libc::SIGKILL);
    }
    let status = up.wait(PATIENCE).await;
    assert!(!status.success());
    assert!(
        up.stderr().contains(&format!(
            "the host (trellis-host, pid {host}) exited (signal: 9"
        )),
        "{}",
        up.stderr()
    );
    // The server was not `up`'s: it still runs.
    assert!(listening(&url.replace("nats://", "")));
}

#[tokio::test]
async fn up_detach_protects_the_server_it_starts_with_the_user_and_password_until_down() {
    init_logging();
    let url = free_nats_url();
    let state = tempfile::tempdir().expect("state dir");
    let state_dir = state.path().display().to_string();
    let _guard = DetachedGuard(state.path().to_path_buf());
    let with_password = cli(&url, "default")
        .env("NATS_USER", "ada")
        .env("NATS_PASSWORD", "lovelace");

    let out = up_detached(
        &with_password,
        &["--nats-url", &url, "--state-dir", &state_dir],
    )
    .await;
    assert!(out.success, "up --detach failed:\n{}", out.stderr);
    assert!(
        out.stderr
            .contains("clients must give the same credentials"),
        "{}",
        out.stderr
    );
    // Its host and manager got in; a client without the password does not.
    assert_eq!(host_ids(&with_password).await.len(), 1);
    with_password.run(&["app", "list"]).await.ok();
    one_refusal(cli(&url, "default").run(&["get", "hosts"]).await);
    let flags = cli(&url, "default")
        .run(&[
            "get",
            "hosts",
            "--nats-user",
            "ada",
            "--nats-password",
            "lovelace",
        ])
        .await
        .ok();
    assert!(flags.stdout.contains("NAME"), "{flags:?}");

    let down = cli(&url, "default")
        .run(&["down", "--state-dir", &state_dir])
        .await
        .ok();
    assert!(down.stderr.contains("stopped nats-server"), "{down:?}");
    assert!(!down.stderr.contains("killing"), "{down:?}");
    assert!(!listening(&url.replace("nats://", "")));
}
