//! `trellis component start|scale|stop`.

use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use trellis_lattice::control::{CompiledFrom, ComponentScaled, ScaleComponent};
use trellis_lattice::labels::{self, Labels};
use trellis_lattice::{LatticeClient, Placement};

use crate::global::Global;
use crate::output::{self, Format};

// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum ComponentCommand {
    /// Start a component from a file or URL (optionally pinned: IMAGE@sha256:HEX).
    Start {
        image: String,
        #[arg(long)]
        id: String,
        /// Maximum concurrent instances on the host.
        #[arg(long, default_value_t = 1)]
        replicas: u32,
        /// Host id or friendly name; without it, an auction picks a host.
        #[arg(long, conflicts_with = "constraint")]
        host: Option<String>,
        /// Label the chosen host must carry (repeatable).
        #[arg(long, value_name = "KEY=VALUE")]
        constraint: Vec<String>,
        /// Memory cap per instance (e.g. 32MiB); the host's default otherwise.
        #[arg(long, value_parser = trellis_lattice::units::parse_bytes)]
        max_memory: Option<u64>,
        /// Time limit per invocation (e.g. 500ms, 2s); the host's default otherwise.
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<Duration>,
        /// Named config the component reads through wasi:config/store (repeatable; later
        /// names win).
        #[arg(long, value_name = "NAME")]
        config: Vec<String>,
        #[command(flatten)]
        grants: crate::grants::GrantFlags,
        /// The issuer (`A…`) the component must be signed by; the host refuses it otherwise.
        #[arg(long, value_name = "KEY")]
        issuer: Option<String>,
    },
    /// Change the replicas of a running component (on one host, or every host running it).
    Scale {
        id: String,
        #[arg(long)]
        replicas: u32,
        #[arg(long)]
        host: Option<String>,
    },
    /// Stop a component (on one host, or every host running it).
    Stop {
        id: String,
        #[arg(long)]
        host: Option<String>,
    },
}

/// Local files are sent as absolute `file://` paths, so a host in another directory finds them.
pub fn absolute_image(image: &str) -> anyhow::Result<String> {
    if image.contains("://") {
        return Ok(image.to_string());
    }
    let (path, digest) = match image.rsplit_once("@sha256:") {
        Some((p, d)) => (p, Some(d)),
        None => (image, None),
    };
    let abs = std::fs::canonicalize(path).with_context(|| format!("component file {path}"))?;
    let mut out = format!("file://{}", abs.display());
    if let Some(d) = digest {
        out.push_str("@sha256:");
        out.push_str(d);
    }
    Ok(out)
}

pub async fn run(g: &Global, cmd: ComponentCommand) -> anyhow::Result<()> {
    let client = g.client().await?;
    match cmd {
        ComponentCommand::Start {
            image,
            id,
            replicas,
            host,
            constraint,
            max_memory,
            timeout,
            config,
            grants,
            issuer,
        } => {
            if let Some(key) = &issuer {
                trellis_lattice::id::validate_issuer(key).context("--issuer")?;
            }
            let placement = match host {
                Some(h) => Placement::Host(h),
                None => {
                    let mut constraints = Labels::new();
                    for c in &constraint {
                        let (k, v) =
                            labels::parse_pair(c).with_context(|| format!("--constraint {c}"))?;
                        constraints.insert(k, v);
                    }
                    Placement::Constraints(constraints)
                }
            };
            let req = ScaleComponent {
                component_id: id.clone(),
                image: absolute_image(&image)?,
                replicas,
                config,
                max_memory_bytes: max_memory,
                timeout_ms: timeout.map(|t| t.as_millis() as u64),
                grants: grants.grants()?,
                issuer,
                ..Default::default()
            };
            let pb = spinner(g, format!("starting {id}"));
            let done = client.start_component(&placement, &req).await;
            pb.finish_and_clear();
            report(g, &client, &[done?]).await
        }
        ComponentCommand::Scale { id, replicas, host } => {
            scale_where(g, &client, &id, host, replicas).await
        }
        ComponentCommand::Stop { id, host } => scale_where(g, &client, &id, host, 0).await,
    }
}

fn spinner(g: &Global, msg: String) -> indicatif::ProgressBar {
    if g.output == Format::Json {
        indicatif::ProgressBar::hidden()
    } else {
        output::spinner(msg)
    }
}

async fn scale_where(
    g: &Global,
    client: &LatticeClient,
    id: &str,
    host: Option<String>,
    replicas: u32,
) -> anyhow::Result<()> {
    let hosts = match host {
        Some(h) => vec![client.resolve_host(&h).await?],
        None => {
            let running: Vec<String> = client
                .inventories()
                .await?
                .into_iter()
                .filter(|inv| inv.component(id).is_some())
                .map(|inv| inv.host_id)
                .collect();
            if running.is_empty() {
                anyhow::bail!(
                    "component {id} runs on no host in lattice `{}`",
                    client.lattice()
                );
            }
            running
        }
    };
    let req = ScaleComponent {
        component_id: id.to_string(),
        image: String::new(),
        replicas,
        config: Vec::new(),
        max_memory_bytes: None,
        timeout_ms: None,
        annotations: Default::default(),
        ..Default::default()
    };
    let pb = spinner(g, format!("scaling {id} to {replicas}"));
    let mut done = Vec::new();
    for h in &hosts {
        done.push(client.scale_component(h, &req).await?);
    }
    pb.finish_and_clear();
    report(g, client, &done).await
}

async fn report(
    g: &Global,
    client: &LatticeClient,
    done: &[ComponentScaled],
) -> anyhow::Result<()> {
    if g.output == Format::Json {
        return match done {
            [one] => output::print_json(one),
            all => output::print_json(all),
        };
    }
    let names = friendly_names(client, done.iter().map(|d| d.host_id.as_str())).await;
    for d in done {
        let host = names
            .get(&d.host_id)
            .cloned()
            .unwrap_or_else(|| d.host_id.clone());
        if d.replicas == 0 {
            println!("stopped {} on {host}", d.component_id);
        } else {
            let compiled = match d.compiled {
                Some(CompiledFrom::Compiled) => ", compiled now",
                Some(CompiledFrom::Lattice) => ", compiled code from the lattice",
                Some(CompiledFrom::Disk) => ", compiled code from the host's cache",
                Some(CompiledFrom::Memory) | None => "",
            };
            println!(
                "{} runs on {host} ({}) with {} replica(s), {}{compiled}",
                d.component_id, d.host_id, d.replicas, d.digest
            );
        }
    }
    Ok(())
}

/// The friendly names of `hosts`, each asked of the host itself (one directed request, not a
/// broadcast that waits for a quiet window): the CLI exits as soon as the hosts have answered.
async fn friendly_names<'a>(
    client: &LatticeClient,
    hosts: impl Iterator<Item = &'a str>,
) -> std::collections::HashMap<String, String> {
    let hosts: std::collections::BTreeSet<&str> = hosts.collect();
    let asked = hosts.into_iter().map(|h| async move {
        let inv = client.inventory_page(h, 0).await.ok()?;
        Some((h.to_string(), inv.friendly_name))
    });
    futures::future::join_all(asked)
        .await
        .into_iter()
        .flatten()
        .collect()
}
