//! `trellis up` and `trellis down`: a NATS server (started or reused), a host and the
//! deployment manager, in the foreground with their logs, or detached in the background.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};
use trellis_lattice::event::Event;
use trellis_lattice::NatsAuth;

use crate::global::Global;

#[derive(clap::Args)]
pub struct UpArgs {
    /// A label for the host (repeatable).
    #[arg(long = "label", short = 'l', value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Also serve HTTP on this address through the built-in HTTP server provider.
    #[arg(long)]
    pub http_addr: Option<String>,
    /// Run in the background; `trellis down` stops it.
    #[arg(long)]
    pub detach: bool,
    /// Where `up` keeps its NATS data, logs and process ids.
    #[arg(long, env = "TRELLIS_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct DownArgs {
    #[arg(long, env = "TRELLIS_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Processes a detached `up` started, in the order `down` stops them.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Started {
    processes: Vec<(String, u32)>,
}

fn state_dir(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .unwrap_or_else(std::env::temp_dir)
            .join("trellis")
    })
}

fn pid_file(dir: &Path) -> PathBuf {
    dir.join("up.json")
}

/// A program shipped next to `trellis`, else found on PATH (or in /usr/sbin for Debian's
/// nats-server).
fn find_program(name: &str) -> Option<PathBuf> {
    let beside = std::env::current_exe().ok()?.parent()?.join(name);
    if beside.is_file() {
        return Some(beside);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([
            "/usr/sbin".into(),
            "/usr/local/sbin".into(),
            "/usr/local/bin".into(),
        ])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: sending a signal to a process id we started.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

async fn nats_answers(url: &str) -> bool {
    tokio::time::timeout(
        Duration::from_secs(2),
        trellis_lattice::client::connect(url, &NatsAuth::None, "trellis-up-probe"),
    )
    .await
    .is_ok_and(|r| r.is_ok())
}

fn nats_port(url: &str) -> anyhow::Result<(String, u16)> {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let hostport = rest
        .rsplit('@')
        .next()
        .unwrap_or(rest)
        .trim_end_matches('/');
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h.to_string(),
            p.parse()
                .with_context(|| format!("port in NATS URL {url}"))?,
        ),
        None => (hostport.to_string(), 4222),
    };
    if !matches!(
        host.as_str(),
        "127.0.0.1" | "localhost" | "0.0.0.0" | "::1" | "[::1]"
    ) {
        bail!("no NATS server answers at {url}, and `trellis up` only starts one on this machine (use a 127.0.0.1 URL)");
    }
    Ok((
        if host == "localhost" {
            "127.0.0.1".into()
        } else {
            host
        },
        port,
    ))
}

/// Starts a child; detached children get their own session and log to a file.
fn spawn(program: &Path, args: &[String], detach: Option<&Path>) -> anyhow::Result<Child> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .kill_on_drop(detach.is_none());
    match detach {
        Some(log) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .with_context(|| format!("opening log {}", log.display()))?;
            cmd.stdout(file.try_clone()?).stderr(file);
            // SAFETY: setsid is async-signal-safe; it detaches the child from our terminal.
            unsafe {
                cmd.pre_exec(|| {
                    libc::setsid();
                    Ok(())
                });
            }
        }
        None => {
            cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
        }
    }
    cmd.spawn()
        .with_context(|| format!("starting {}", program.display()))
}

pub async fn up(g: &Global, args: UpArgs) -> anyhow::Result<()> {
    let dir = state_dir(args.state_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if let Ok(text) = std::fs::read_to_string(pid_file(&dir)) {
        let started: Started = serde_json::from_str(&text).unwrap_or_default();
        if started.processes.iter().any(|(_, pid)| alive(*pid)) {
            bail!(
                "a detached `trellis up` is already running (see {}); run `trellis down` first",
                pid_file(&dir).display()
            );
        }
    }
    for l in &args.labels {
        trellis_lattice::labels::parse_pair(l).with_context(|| format!("--label {l}"))?;
    }
    let log = |name: &str| args.detach.then(|| dir.join(format!("{name}.log")));
    let mut children: Vec<(String, Child)> = Vec::new();

    if nats_answers(&g.nats_url).await {
        eprintln!("using the NATS server at {}", g.nats_url);
    } else {
        let (addr, port) = nats_port(&g.nats_url)?;
        let Some(nats) = find_program("nats-server") else {
            bail!("nats-server is not installed: install it with `apt-get install nats-server` (Debian, Ubuntu) or from https://github.com/nats-io/nats-server/releases");
        };
        let store = dir.join("jetstream");
        let nats_args: Vec<String> = vec![
            "-a".into(),
            addr,
            "-p".into(),
            port.to_string(),
            "-js".into(),
            "-sd".into(),
            store.display().to_string(),
        ];
        let child = spawn(&nats, &nats_args, log("nats").as_deref())?;
        children.push(("nats-server".into(), child));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !nats_answers(&g.nats_url).await {
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "nats-server did not start listening on {} within 10s",
                    g.nats_url
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!("started nats-server with JetStream on {}", g.nats_url);
    }

    let client = g.client().await?;
    let mut events = client.watch_events().await?;
    let host_bin = find_program("trellis-host")
        .context("trellis-host is not installed next to trellis or on PATH (cargo build --release builds both)")?;
    let mut host_args = vec![
        "--nats-url".to_string(),
        g.nats_url.clone(),
        "--lattice".into(),
        g.lattice.clone(),
    ];
    for l in &args.labels {
        host_args.push("--label".into());
        host_args.push(l.clone());
    }
    let child = spawn(&host_bin, &host_args, log("host").as_deref())?;
    let host_pid = child.id();
    children.push(("trellis-host".into(), child));

    // The host announces itself once it is ready.
    let announced = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(ev) = events.next().await {
            if let Ok(Event::HostStarted(h)) = ev.event() {
                return Some(h);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .context("the host did not announce itself within 30s (see its log)")?;
    eprintln!(
        "host {} ({}) joined lattice `{}`",
        announced.friendly_name, announced.host_id, g.lattice
    );
    // The deployment manager, for `trellis app`.
    match find_program("trellis-deploy") {
        Some(deploy_bin) => {
            let deploy_args = vec![
                "--nats-url".to_string(),
                g.nats_url.clone(),
                "--lattice".into(),
                g.lattice.clone(),
            ];
            let child = spawn(&deploy_bin, &deploy_args, log("deploy").as_deref())?;
            children.push(("trellis-deploy".into(), child));
            eprintln!("started the deployment manager (trellis-deploy)");
        }
        None => eprintln!(
            "note: trellis-deploy is not installed next to trellis or on PATH; `trellis app` needs it"
        ),
    }
    if let Some(addr) = &args.http_addr {
        // The built-in HTTP server, as provider `http` with config `http`: route to a
        // component with `trellis link put http COMPONENT wasi:http --interface
        // incoming-handler --source-config ROUTE` (ROUTE holding `path=/prefix`).
        addr.parse::<std::net::SocketAddr>()
            .with_context(|| format!("--http-addr {addr} is not HOST:PORT (e.g. 0.0.0.0:8080)"))?;
        client
            .put_config("http", [("address".to_string(), addr.clone())].into())
            .await
            .context("configuring the HTTP server")?;
        client
            .start_provider(
                &trellis_lattice::Placement::Host(announced.host_id.clone()),
                &trellis_lattice::control::StartProvider {
                    provider_id: "http".into(),
                    image: "builtin://http-server".into(),
                    config: vec!["http".into()],
                    annotations: Default::default(),
                },
            )
            .await
            .context("starting the HTTP server")?;
        eprintln!("HTTP server `http` listening on {addr}");
    }

    if args.detach {
        let started = Started {
            processes: children
                .iter()
                .rev()
                .filter_map(|(n, c)| c.id().map(|pid| (n.clone(), pid)))
                .collect(),
        };
        std::fs::write(pid_file(&dir), serde_json::to_vec_pretty(&started)?)?;
        eprintln!(
            "running in the background (logs in {}); `trellis down` stops it",
            dir.display()
        );
        return Ok(());
    }

    eprintln!("press Ctrl-C to stop");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let host_exit = async {
        loop {
            if !host_pid.is_some_and(alive) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = host_exit => eprintln!("the host exited"),
    }
    for (name, mut child) in children.into_iter().rev() {
        stop_child(&name, &mut child).await;
    }
    Ok(())
}

async fn stop_child(name: &str, child: &mut Child) {
    if let Some(pid) = child.id() {
        signal(pid, libc::SIGTERM);
    }
    if tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .is_err()
    {
        eprintln!("{name} did not stop within 15s; killing it");
        let _ = child.kill().await;
    }
}

pub async fn down(args: DownArgs) -> anyhow::Result<()> {
    let dir = state_dir(args.state_dir);
    let path = pid_file(&dir);
    let Ok(text) = std::fs::read_to_string(&path) else {
        bail!(
            "nothing to stop: no detached `trellis up` recorded in {}",
            dir.display()
        );
    };
    let started: Started = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a record of `trellis up`", path.display()))?;
    for (name, pid) in &started.processes {
        if !alive(*pid) {
            continue;
        }
        signal(*pid, libc::SIGTERM);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while alive(*pid) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if alive(*pid) {
            eprintln!("{name} ({pid}) did not stop within 15s; killing it");
            signal(*pid, libc::SIGKILL);
        } else {
            eprintln!("stopped {name} ({pid})");
        }
    }
    std::fs::remove_file(&path)?;
    Ok(())
}
