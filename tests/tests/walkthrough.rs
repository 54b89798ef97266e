//! The README's "Five minutes with Trellis", command by command, through the `trellis` binary:
//! `trellis up` in the foreground and with `--detach`, `trellis down`, and what `up` does when
//! a process it started dies. (The other commands: `walkthrough_*.rs`.)

mod walkthrough_support;

use trellis_tests::{free_port, init_logging, CliChild};
use walkthrough_support::{
    cli, free_nats_url, get, host_ids, listening, running, up_detached, up_foreground,
    DetachedGuard, PATIENCE,
};

/// The process `up` started as `name`.
fn child_named(up: &CliChild, name: &str) -> u32 {
    up.children()
        .into_iter()
        .find(|(_, comm)| comm == name)
        .map(|(pid, _)| pid)
        .unwrap_or_else(|| panic!("`trellis up` runs no {name}: {:?}", up.children()))
}

fn address(url: &str) -> String {
    url.trim_start_matches("nats://").to_string()
}

#[tokio::test]
async fn up_in_the_foreground_runs_nats_a_host_the_manager_and_http_until_ctrl_c() {
    init_logging();
    let nats_url = free_nats_url();
    let http = format!("127.0.0.1:{}", free_port());
    let state = tempfile::tempdir().expect("state dir");
    let shell = cli(&nats_url, "default");
    // trellis up --http-addr 127.0.0.1:8080, on free ports and its own state directory.
    let mut up = up_foreground(
        cli(&nats_url, "default"),
        &[
            "--nats-url",
            &nats_url,
            "--http-addr",
            &http,
            "--state-dir",
            &state.path().display().to_string(),
        ],
    )
    .await;
    let said = up.stderr();
    for line in [
        format!("started nats-server with JetStream on {nats_url}"),
        "joined lattice `default`".to_string(),
        "started the deployment manager".to_string(),
        format!("HTTP server `http` listening on {http}"),
    ] {
        assert!(said.contains(&line), "`up` did not say {line:?}:\n{said}");
    }
    // Its own children: nats-server, the host and the manager, all running.
    let pids: Vec<u32> = ["nats-server", "trellis-host", "trellis-deploy"]
        .iter()
        .map(|n| child_named(&up, n))
        .collect();

    // Another terminal sees one host, the manager answers, the HTTP server listens.
    assert_eq!(host_ids(&shell).await.len(), 1);
    let apps = shell.run(&["app", "list", "-o", "json"]).await.ok().json();
    assert_eq!(apps, serde_json::json!([]));
    let (status, _) = get(&format!("http://{http}/nothing-routed-here")).await;
    assert_eq!(status, 404);
    // The host's log comes through, marked as the host's.
    assert!(up.stdout().contains("host   | ") || said.contains("host   | "));

    // Ctrl-C: everything stops, and `up` exits successfully.
    up.signal(libc::SIGINT);
    let status = up.wait(PATIENCE).await;
    assert!(status.success(), "{status}: {}", up.stderr());
    assert!(!up.stderr().contains("exited ("), "{}", up.stderr());
    for pid in pids {
        assert!(!running(pid), "process {pid} survived `up`");
    }
    assert!(!listening(&address(&nats_url)), "nats-server still listens");
    assert!(!listening(&http), "the HTTP server still listens");
}

#[tokio::test]
async fn up_detach_runs_in_the_background_until_down() {
    init_logging();
    let nats_url = free_nats_url();
    let http = format!("127.0.0.1:{}", free_port());
    let state = tempfile::tempdir().expect("state dir");
    let state_dir = state.path().display().to_string();
    let _guard = DetachedGuard(state.path().to_path_buf());
    let shell = cli(&nats_url, "default");

    let out = up_detached(
        &shell,
        &[
            "--nats-url",
            &nats_url,
            "--http-addr",
            &http,
            "--state-dir",
            &state_dir,
        ],
    )
    .await;
    assert!(out.success, "up --detach failed:\n{}", out.stderr);
    assert!(out.stderr.contains("running in the background"), "{out:?}");
    // `up` has returned; what it started runs on, logging into the state directory.
    assert_eq!(host_ids(&shell).await.len(), 1);
    shell.run(&["app", "list"]).await.ok();
    assert_eq!(get(&format!("http://{http}/")).await.0, 404);
    for log in ["nats.log", "host.log", "deploy.log"] {
        assert!(state.path().join(log).is_file(), "no {log}");
    }
    // A second `up` on the same state directory refuses.
    let again = shell
        .run(&[
            "up",
            "--detach",
            "--nats-url",
            &nats_url,
            "--state-dir",
            &state_dir,
        ])
        .await
        .err();
    assert!(again.contains("already running"), "{again}");

    // trellis down
    let down = shell.run(&["down", "--state-dir", &state_dir]).await.ok();
    for name in ["trellis-deploy", "trellis-host", "nats-server"] {
        assert!(
            down.stderr.contains(&format!("stopped {name}")),
            "{}",
            down.stderr
        );
    }
    assert!(!down.stderr.contains("killing"), "{}", down.stderr);
    assert!(!listening(&address(&nats_url)), "nats-server still listens");
    assert!(!listening(&http), "the HTTP server still listens");
    let err = shell.run(&["down", "--state-dir", &state_dir]).await.err();
    assert!(err.contains("nothing to stop"), "{err}");
}

/// `up` in the foreground on a free port, with `--state-dir` in `state`.
async fn up_here(nats_url: &str, state: &tempfile::TempDir) -> CliChild {
    up_foreground(
        cli(nats_url, "default"),
        &[
            "--nats-url",
            nats_url,
            "--state-dir",
            &state.path().display().to_string(),
        ],
    )
    .await
}

#[tokio::test]
async fn up_notices_its_host_dying_and_says_how_with_the_end_of_its_log() {
    init_logging();
    let nats_url = free_nats_url();
    let state = tempfile::tempdir().expect("state dir");
    let mut up = up_here(&nats_url, &state).await;
    let host = child_named(&up, "trellis-host");
    let others = [
        child_named(&up, "nats-server"),
        child_named(&up, "trellis-deploy"),
    ];

    // SAFETY: killing the host `up` started, as a crash would.
    unsafe {
        libc::kill(host as libc::pid_t, libc::SIGKILL);
    }
    let status = up.wait(PATIENCE).await;
    assert!(
        !status.success(),
        "up exited successfully after losing its host"
    );
    let said = up.stderr();
    assert!(
        said.contains(&format!(
            "the host (trellis-host, pid {host}) exited (signal: 9"
        )),
        "{said}"
    );
    // The end of the host's log, after the news.
    let news = said.find("exited (signal: 9").expect("the news");
    let after = &said[news..];
    assert!(after.contains("last lines of its log"), "{said}");
    assert!(after.contains("    host   | "), "{said}");
    // The error line comes last and names the host.
    let last = said.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("trellis: the host (trellis-host"),
        "{last}"
    );
    // The others were stopped.
    for pid in others {
        assert!(!running(pid), "process {pid} survived `up`");
    }
    assert!(!listening(&address(&nats_url)));
}

#[tokio::test]
async fn up_notices_its_manager_dying() {
    init_logging();
    let nats_url = free_nats_url();
    let state = tempfile::tempdir().expect("state dir");
    let mut up = up_here(&nats_url, &state).await;
    let manager = child_named(&up, "trellis-deploy");
    let host = child_named(&up, "trellis-host");

    // SAFETY: killing the manager `up` started.
    unsafe {
        libc::kill(manager as libc::pid_t, libc::SIGKILL);
    }
    let status = up.wait(PATIENCE).await;
    assert!(!status.success());
    let said = up.stderr();
    assert!(
        said.contains(&format!(
            "the deployment manager (trellis-deploy, pid {manager}) exited (signal: 9"
        )),
        "{said}"
    );
    let news = said.find("exited (signal: 9").expect("the news");
    assert!(said[news..].contains("    deploy | "), "{said}");
    assert!(!running(host), "the host survived `up`");
}

#[tokio::test]
async fn up_stops_when_host_stop_stops_its_host() {
    init_logging();
    let nats_url = free_nats_url();
    let state = tempfile::tempdir().expect("state dir");
    let mut up = up_here(&nats_url, &state).await;
    let shell = cli(&nats_url, "default");
    let host = child_named(&up, "trellis-host");
    let id = host_ids(&shell).await.pop().expect("up's host");

    // trellis host stop HOST: the host says goodbye and exits cleanly; `up` reports it.
    let out = shell.run(&["host", "stop", &id]).await.ok();
    assert!(
        out.stdout.contains(&format!("host {id} is stopping")),
        "{out:?}"
    );
    let status = up.wait(PATIENCE).await;
    assert!(!status.success());
    let said = up.stderr();
    assert!(
        said.contains(&format!(
            "the host (trellis-host, pid {host}) exited (exit status: 0)"
        )),
        "{said}"
    );
    assert!(!listening(&address(&nats_url)));
}
