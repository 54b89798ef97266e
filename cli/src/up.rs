//! `trellis up` and `trellis down`: a NATS server (started or reused), a host and the
//! deployment manager, in the foreground with their logs, or detached in the background.
//!
//! In the foreground `up` reaps its children as they exit: when one dies, `up` says which,
//! with its exit status and the last lines of its log, stops the others and fails.

mod children;
mod nats;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::signal::unix::{signal as on_signal, Signal, SignalKind};
use trellis_lattice::event::Event;

use crate::global::Global;
use children::{alive, find_program, signal, Children, Spec};
use nats::{auth_env, probe, start_nats, Probe};

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

/// Ctrl-C, SIGTERM and a closed terminal: each stops `up` and what it started.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            interrupt: on_signal(SignalKind::interrupt())?,
            terminate: on_signal(SignalKind::terminate())?,
            hangup: on_signal(SignalKind::hangup())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
            _ = self.hangup.recv() => {}
        }
    }
}

pub async fn up(g: &Global, args: UpArgs) -> anyhow::Result<()> {
    let dir = state_dir(args.state_dir.clone());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if let Ok(text) = std::fs::read_to_string(pid_file(&dir)) {
        let started: Started = serde_json::from_str(&text).unwrap_or_default();
        if started
            .processes
            .iter()
            .any(|(name, pid)| alive(*pid, name))
        {
            bail!(
                "a detached `trellis up` is already running (see {}); run `trellis down` first",
                pid_file(&dir).display()
            );
        }
    }
    for l in &args.labels {
        trellis_lattice::labels::parse_pair(l).with_context(|| format!("--label {l}"))?;
    }
    if let Some(addr) = &args.http_addr {
        addr.parse::<std::net::SocketAddr>()
            .with_context(|| format!("--http-addr {addr} is not HOST:PORT (e.g. 0.0.0.0:8080)"))?;
    }
    let mut signals = Signals::new()?;
    let mut children = Children::new(args.detach.then(|| dir.clone()));
    let started = tokio::select! {
        done = start(g, &args, &dir, &mut children) => Some(done),
        () = signals.recv() => None,
    };
    match started {
        Some(Ok(())) => {}
        Some(Err(err)) => {
            children.stop_all().await;
            return Err(err);
        }
        None => {
            eprintln!("interrupted; stopping what was started");
            children.stop_all().await;
            return Ok(());
        }
    }

    if args.detach {
        let started = Started {
            processes: children.detach(),
        };
        std::fs::write(pid_file(&dir), serde_json::to_vec_pretty(&started)?)?;
        eprintln!(
            "running in the background (logs in {}); `trellis down` stops it",
            dir.display()
        );
        return Ok(());
    }

    eprintln!("press Ctrl-C to stop");
    let died = tokio::select! {
        biased;
        () = signals.recv() => None,
        exit = children.watch() => Some(exit),
    };
    let Some(exit) = died else {
        children.stop_all().await;
        return Ok(());
    };
    exit.report();
    eprintln!("stopping the rest");
    children.stop_all().await;
    bail!("{}", exit.summary())
}

/// NATS (found or started), the host, the manager and the HTTP server, in that order.
async fn start(
    g: &Global,
    args: &UpArgs,
    dir: &Path,
    children: &mut Children,
) -> anyhow::Result<()> {
    match probe(&g.nats_url, &g.nats).await {
        Probe::Answers => eprintln!("using the NATS server at {}", g.nats_url),
        Probe::Refused(err) => {
            return Err(err.context(format!(
                "a server listens at {} but did not accept the connection (check --nats-creds, --nats-nkey, --nats-user/--nats-password, --nats-token and --nats-tls-*)",
                g.nats_url
            )))
        }
        Probe::Silent => start_nats(g, dir, children).await?,
    }

    let client = g.client().await?;
    let mut events = client.watch_events().await?;
    let env = auth_env(&g.nats)?;
    let mut connection = vec![
        "--nats-url".to_string(),
        g.nats_url.clone(),
        "--lattice".into(),
        g.lattice.clone(),
    ];
    if let Some(domain) = &g.js_domain {
        connection.extend(["--js-domain".to_string(), domain.clone()]);
    }
    let host_bin = find_program("trellis-host")
        .context("trellis-host is not installed next to trellis or on PATH (cargo build --release builds both)")?;
    let mut host_args = connection.clone();
    // The host's own state (its key, its last workload) lives with up's.
    host_args.push("--state-dir".into());
    host_args.push(dir.join("host").display().to_string());
    for l in &args.labels {
        host_args.push("--label".into());
        host_args.push(l.clone());
    }
    children.spawn(Spec {
        role: "the host",
        name: "trellis-host",
        tag: "host",
        program: &host_bin,
        args: host_args,
        env: env.clone(),
    })?;
    // The host announces itself once it is ready.
    let announced = children
        .while_running(
            "the host to join the lattice",
            Duration::from_secs(30),
            async {
                while let Some(ev) = events.next().await {
                    if let Ok(Event::HostStarted(h)) = ev.event() {
                        return Ok(h);
                    }
                }
                bail!("the event subscription ended (NATS connection closed)")
            },
        )
        .await?;
    eprintln!(
        "host {} ({}) joined lattice `{}`",
        announced.friendly_name, announced.host_id, g.lattice
    );

    // The deployment manager, for `trellis app`.
    match find_program("trellis-deploy") {
        Some(deploy_bin) => {
            children.spawn(Spec {
                role: "the deployment manager",
                name: "trellis-deploy",
                tag: "deploy",
                program: &deploy_bin,
                args: connection,
                env,
            })?;
            children.while_running(
                "the deployment manager to answer",
                Duration::from_secs(30),
                async {
                    while client.apps().await.is_err() {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Ok(())
                },
            )
            .await?;
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
    Ok(())
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
        if !alive(*pid, name) {
            continue;
        }
        signal(*pid, libc::SIGTERM);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while alive(*pid, name) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if alive(*pid, name) {
            eprintln!("{name} ({pid}) did not stop within 15s; killing it");
            signal(*pid, libc::SIGKILL);
        } else {
            eprintln!("stopped {name} ({pid})");
        }
    }
    std::fs::remove_file(&path)?;
    Ok(())
}
