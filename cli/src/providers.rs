//! `trellis provider start|stop`.

use anyhow::Context as _;
use clap::Subcommand;
use trellis_lattice::control::StartProvider;
use trellis_lattice::labels::{self, Labels};
use trellis_lattice::Placement;

use crate::global::Global;
use crate::output::{self, Format};

#[derive(Subcommand)]
pub enum ProviderCommand {
    /// Start a provider: `builtin://NAME` or an executable (path or URL, optionally
    /// pinned with @sha256:HEX). The host supervises and restarts it.
    Start {
        reference: String,
        #[arg(long)]
        id: String,
        #[arg(long, conflicts_with = "constraint")]
        host: Option<String>,
        #[arg(long, value_name = "KEY=VALUE")]
        constraint: Vec<String>,
        /// The provider's own named config (repeatable, merged in order).
        #[arg(long)]
        config: Vec<String>,
    },
    /// Stop a provider (on one host, or every host running it).
    Stop {
        id: String,
        #[arg(long)]
        host: Option<String>,
    },
}

pub async fn run(g: &Global, cmd: ProviderCommand) -> anyhow::Result<()> {
    let client = g.client().await?;
    match cmd {
        ProviderCommand::Start {
            reference,
            id,
            host,
            constraint,
            config,
        } => {
            let placement = match host {
                Some(h) => Placement::Host(h),
                None => {
                    let mut c = Labels::new();
                    for pair in &constraint {
                        let (k, v) = labels::parse_pair(pair)
                            .with_context(|| format!("--constraint {pair}"))?;
                        c.insert(k, v);
                    }
                    Placement::Constraints(c)
                }
            };
            let image = if reference.starts_with(trellis_lattice::image::BUILTIN_SCHEME) {
                reference
            } else {
                crate::component::absolute_image(&reference)?
            };
            let pb = if g.output == Format::Json {
                indicatif::ProgressBar::hidden()
            } else {
                output::spinner(format!("starting provider {id}"))
            };
            let started = client
                .start_provider(
                    &placement,
                    &StartProvider {
                        provider_id: id,
                        image,
                        config,
                        annotations: Default::default(),
                    },
                )
                .await;
            pb.finish_and_clear();
            let started = started?;
            if g.output == Format::Json {
                return output::print_json(&started);
            }
            println!(
                "provider {} runs on {} ({})",
                started.provider_id, started.host_id, started.image
            );
        }
        ProviderCommand::Stop { id, host } => {
            let hosts = match host {
                Some(h) => vec![client.resolve_host(&h).await?],
                None => {
                    let running: Vec<String> = client
                        .inventories()
                        .await?
                        .into_iter()
                        .filter(|inv| inv.providers.iter().any(|p| p.id == id))
                        .map(|inv| inv.host_id)
                        .collect();
                    if running.is_empty() {
                        anyhow::bail!(
                            "provider {id} runs on no host in lattice `{}`",
                            client.lattice()
                        );
                    }
                    running
                }
            };
            for h in &hosts {
                client.stop_provider(h, &id).await?;
            }
            if g.output == Format::Json {
                return output::print_json(&serde_json::json!({ "stopped": id, "hosts": hosts }));
            }
            println!("stopped provider {id} on {} host(s)", hosts.len());
        }
    }
    Ok(())
}
