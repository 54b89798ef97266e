//! `trellis get`, `trellis label`, `trellis host`.

use clap::Subcommand;
use trellis_lattice::inventory::HostInventory;
use trellis_lattice::labels;

use crate::global::Global;
use crate::output::{self, Format};

#[derive(Subcommand)]
pub enum GetCommand {
    /// Every host in the lattice.
    Hosts,
    /// Labels and components of one host, or of every host.
    Inventory {
        /// Host id or friendly name.
        host: Option<String>,
    },
    /// Every link in the lattice.
    Links,
}

#[derive(Subcommand)]
pub enum LabelCommand {
    /// Set a label on a host: `trellis label put HOST key=value`.
    Put { host: String, label: String },
    /// Remove a label from a host.
    Del { host: String, key: String },
}

#[derive(Subcommand)]
pub enum HostCommand {
    /// Stop a host: it finishes in-flight calls, says goodbye and exits.
    Stop {
        host: String,
        /// Time in-flight calls get to finish.
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<std::time::Duration>,
    },
}

pub async fn get(g: &Global, cmd: GetCommand) -> anyhow::Result<()> {
    let client = g.client().await?;
    match cmd {
        GetCommand::Hosts => {
            let hosts = client.hosts().await?;
            if g.output == Format::Json {
                return output::print_json(&hosts);
            }
            if hosts.is_empty() {
                eprintln!("no hosts in lattice `{}`", client.lattice());
                return Ok(());
            }
            let mut t = output::table(&["id", "name", "labels", "uptime", "components"]);
            for h in &hosts {
                t.add_row(vec![
                    h.id.clone(),
                    h.friendly_name.clone(),
                    output::labels(&h.labels, false),
                    output::age(h.uptime_seconds),
                    h.component_count.to_string(),
                ]);
            }
            println!("{t}");
        }
        GetCommand::Links => crate::links::get_links(g, &client).await?,
        GetCommand::Inventory { host } => {
            let inventories = match host {
                Some(h) => vec![client.inventory(&client.resolve_host(&h).await?).await?],
                None => client.inventories().await?,
            };
            if g.output == Format::Json {
                return match inventories.as_slice() {
                    [one] if inventories.len() == 1 && g.output == Format::Json => {
                        output::print_json(one)
                    }
                    all => output::print_json(all),
                };
            }
            for inv in &inventories {
                print_inventory(inv);
            }
        }
    }
    Ok(())
}

fn print_inventory(inv: &HostInventory) {
    println!("host {} ({})", inv.friendly_name, inv.host_id);
    println!("  labels: {}", output::labels(&inv.labels, true));
    if !inv.providers.is_empty() {
        let mut t = output::table(&["provider", "image", "health"]);
        for p in &inv.providers {
            let health = serde_json::to_value(p.health)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let health = match &p.health_message {
                Some(m) => format!("{health} ({m})"),
                None => health,
            };
            t.add_row(vec![p.id.clone(), p.image.clone(), health]);
        }
        println!("{t}");
    }
    if inv.components.is_empty() {
        println!("  no components\n");
        return;
    }
    let mut t = output::table(&["component", "image", "replicas", "max memory", "timeout"]);
    for c in &inv.components {
        t.add_row(vec![
            c.id.clone(),
            c.image.clone(),
            c.replicas.to_string(),
            format!("{} MiB", c.limits.max_memory_bytes >> 20),
            humantime::format_duration(std::time::Duration::from_millis(c.limits.timeout_ms))
                .to_string(),
        ]);
    }
    println!("{t}\n");
}

pub async fn label(g: &Global, cmd: LabelCommand) -> anyhow::Result<()> {
    let client = g.client().await?;
    let labels = match cmd {
        LabelCommand::Put { host, label } => {
            let (k, v) = labels::parse_pair(&label)?;
            let id = client.resolve_host(&host).await?;
            client.put_label(&id, &k, &v).await?
        }
        LabelCommand::Del { host, key } => {
            let id = client.resolve_host(&host).await?;
            client.delete_label(&id, &key).await?
        }
    };
    if g.output == Format::Json {
        return output::print_json(&labels);
    }
    println!("{}", output::labels(&labels, false));
    Ok(())
}

pub async fn host(g: &Global, cmd: HostCommand) -> anyhow::Result<()> {
    let client = g.client().await?;
    match cmd {
        HostCommand::Stop { host, timeout } => {
            let id = client.resolve_host(&host).await?;
            client
                .stop_host(&id, timeout.map(|t| t.as_millis() as u64))
                .await?;
            if g.output == Format::Json {
                return output::print_json(&serde_json::json!({ "stopped": id }));
            }
            println!("host {id} is stopping");
        }
    }
    Ok(())
}
