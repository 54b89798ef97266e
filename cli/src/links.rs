//! `trellis link`, `trellis config`, `trellis get links`.

use clap::Subcommand;
use trellis_lattice::link::{parse_package, Link, LinkKey, DEFAULT_LINK_NAME};
use trellis_lattice::LatticeClient;

use crate::global::Global;
use crate::output::{self, Format};

#[derive(Subcommand)]
pub enum LinkCommand {
    /// Link SOURCE's imports of NAMESPACE:PACKAGE to TARGET.
    Put {
        source: String,
        target: String,
        /// WIT namespace and package, e.g. wasi:keyvalue.
        package: String,
        /// Interface(s) of the package the link covers (repeatable).
        #[arg(long = "interface", required = true)]
        interfaces: Vec<String>,
        #[arg(long, default_value = DEFAULT_LINK_NAME)]
        name: String,
        /// Named config handed to the source (repeatable).
        #[arg(long)]
        source_config: Vec<String>,
        /// Named config handed to the target (repeatable).
        #[arg(long)]
        target_config: Vec<String>,
    },
    /// Point an existing link at NEW_TARGET, atomically: calls under way finish where they
    /// are, new calls go to the new target.
    Retarget {
        source: String,
        package: String,
        new_target: String,
        #[arg(long, default_value = DEFAULT_LINK_NAME)]
        name: String,
        /// Replace the target config (repeatable); kept as is when not given.
        #[arg(long)]
        target_config: Vec<String>,
    },
    /// Delete a link.
    Del {
        source: String,
        package: String,
        #[arg(long, default_value = DEFAULT_LINK_NAME)]
        name: String,
    },
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Create or replace a named config: `trellis config put NAME key=value...`.
    Put {
        name: String,
        /// KEY=VALUE (with --secret, a bare KEY reads its value from standard input).
        values: Vec<String>,
        /// Seal every value to the lattice's secrets key: stored encrypted, shown as
        /// `<secret>`, opened only by hosts holding the key for what they run.
        #[arg(long)]
        secret: bool,
        #[command(flatten)]
        key: crate::secrets::PublicKeyArg,
    },
    /// Show a named config.
    Get { name: String },
    /// Delete a named config.
    Del { name: String },
}

fn key(source: &str, package: &str, name: &str) -> anyhow::Result<LinkKey> {
    let (ns, pkg) = parse_package(package)?;
    Ok(LinkKey {
        source_id: source.to_string(),
        wit_namespace: ns,
        wit_package: pkg,
        name: name.to_string(),
    })
}

fn print_links(g: &Global, links: &[Link]) -> anyhow::Result<()> {
    if g.output == Format::Json {
        return output::print_json(links);
    }
    if links.is_empty() {
        eprintln!("no links");
        return Ok(());
    }
    let mut t = output::table(&[
        "source",
        "target",
        "package",
        "interfaces",
        "name",
        "source config",
        "target config",
    ]);
    for l in links {
        t.add_row(vec![
            l.source_id.clone(),
            l.target_id.clone(),
            l.package(),
            l.interfaces.join(","),
            l.name.clone(),
            l.source_config.join(","),
            l.target_config.join(","),
        ]);
    }
    println!("{t}");
    Ok(())
}

pub async fn get_links(g: &Global, client: &LatticeClient) -> anyhow::Result<()> {
    print_links(g, &client.links().await?)
}

pub async fn link(g: &Global, cmd: LinkCommand) -> anyhow::Result<()> {
    let client = g.client().await?;
    let link = match cmd {
        LinkCommand::Put {
            source,
            target,
            package,
            interfaces,
            name,
            source_config,
            target_config,
        } => {
            let (ns, pkg) = parse_package(&package)?;
            client
                .put_link(Link {
                    source_id: source,
                    target_id: target,
                    name,
                    wit_namespace: ns,
                    wit_package: pkg,
                    interfaces,
                    source_config,
                    target_config,
                })
                .await?
        }
        LinkCommand::Retarget {
            source,
            package,
            new_target,
            name,
            target_config,
        } => {
            let tc = (!target_config.is_empty()).then_some(target_config);
            client
                .retarget_link(key(&source, &package, &name)?, &new_target, tc)
                .await?
        }
        LinkCommand::Del {
            source,
            package,
            name,
        } => {
            client.delete_link(key(&source, &package, &name)?).await?;
            if g.output == Format::Json {
                return output::print_json(&serde_json::json!({"deleted": true}));
            }
            println!("deleted link {source} {package} ({name})");
            return Ok(());
        }
    };
    print_links(g, std::slice::from_ref(&link))
}

pub async fn config(g: &Global, cmd: ConfigCommand) -> anyhow::Result<()> {
    let client = g.client().await?;
    match cmd {
        ConfigCommand::Put {
            name,
            values,
            secret,
            key,
        } => {
            let config = crate::secrets::parse_values(&name, &values, secret.then_some(&key))?;
            client.put_config(&name, config.clone()).await?;
            crate::secrets::report_put(g, &name, &config)?;
        }
        ConfigCommand::Get { name } => {
            let Some(config) = client.named_config(&name).await? else {
                anyhow::bail!("no config named {name}");
            };
            // Sealed values are shown as `<secret>`: the CLI cannot open them anyway.
            let config = trellis_lattice::secret::shown(&config);
            if g.output == Format::Json {
                return output::print_json(&config);
            }
            for (k, v) in &config {
                println!("{k}={v}");
            }
        }
        ConfigCommand::Del { name } => {
            client.delete_config(&name).await?;
            if g.output == Format::Json {
                return output::print_json(&serde_json::json!({"deleted": name}));
            }
            println!("deleted config {name}");
        }
    }
    Ok(())
}
