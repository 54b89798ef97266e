//! `trellis app`: applications through the deployment manager.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use clap::Subcommand;
use trellis_lattice::app::{AppChanged, AppState, AppStatus, ScalerState};
use trellis_lattice::{ErrorKind, LatticeClient};

use crate::global::Global;
use crate::output::{self, Format};

#[derive(Subcommand)]
pub enum AppCommand {
    /// Deploy an application: a manifest file (validated, stored as a version, deployed), or
    /// a stored application by name (its latest version, or VERSION).
    Deploy {
        /// A manifest file (YAML or JSON), or the name of a stored application.
        app: String,
        /// With a name: the stored version to deploy.
        version: Option<String>,
        /// Wait until the application is deployed (or failed), showing progress.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Validate and store a manifest as a new version, without deploying it.
    Put { file: String },
    /// Check a manifest file locally (no lattice needed): every mistake, with its location.
    Validate { file: String },
    /// Every application with its deployed version and status.
    List,
    /// An application's status, per scaler.
    Status { name: String },
    /// An application's versions and deployments.
    History { name: String },
    /// Deploy an earlier version (the one deployed before the current when not given).
    Rollback {
        name: String,
        version: Option<String>,
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Remove everything the application placed; its versions stay stored.
    Undeploy {
        name: String,
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Undeploy the application and forget every version of it.
    Delete {
        name: String,
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Print a stored manifest (the deployed version, else the latest).
    Get {
        name: String,
        version: Option<String>,
    },
}

pub async fn run(g: &Global, cmd: AppCommand) -> anyhow::Result<()> {
    match cmd {
        AppCommand::Validate { file } => crate::manifest_file::validate_file(g, &file),
        AppCommand::Deploy {
            app,
            version,
            wait,
            timeout,
        } => {
            let client = g.client().await?;
            let (name, version) = if Path::new(&app).is_file() {
                if version.is_some() {
                    bail!("a VERSION goes with an application name, not a file (the file's metadata.annotations.version names its version)");
                }
                let put = put_file(&client, &app).await?;
                (put.0, Some(put.1))
            } else {
                if app.ends_with(".yaml") || app.ends_with(".yml") || app.ends_with(".json") {
                    bail!("{app}: no such file");
                }
                (app, version)
            };
            let changed = client.deploy_app(&name, version.as_deref()).await?;
            finish(g, &client, changed, Goal::Deployed, wait, timeout).await
        }
        AppCommand::Put { file } => {
            let client = g.client().await?;
            let (name, version, created) = put_file(&client, &file).await?;
            if g.output == Format::Json {
                return output::print_json(&serde_json::json!({
                    "name": name, "version": version, "created": created,
                }));
            }
            if created {
                println!("stored {name} version {version}");
            } else {
                println!("{name} version {version} is already stored (unchanged)");
            }
            Ok(())
        }
        AppCommand::List => list(g).await,
        AppCommand::Status { name } => {
            let client = g.client().await?;
            let st = client.app_status(&name).await?;
            print_status(g, &client, &st).await
        }
        AppCommand::History { name } => history(g, &name).await,
        AppCommand::Rollback {
            name,
            version,
            wait,
            timeout,
        } => {
            let client = g.client().await?;
            let changed = client.rollback_app(&name, version.as_deref()).await?;
            finish(g, &client, changed, Goal::Deployed, wait, timeout).await
        }
        AppCommand::Undeploy {
            name,
            wait,
            timeout,
        } => {
            let client = g.client().await?;
            let changed = client.undeploy_app(&name).await?;
            finish(g, &client, changed, Goal::Undeployed, wait, timeout).await
        }
        AppCommand::Delete {
            name,
            wait,
            timeout,
        } => {
            let client = g.client().await?;
            let changed = client.delete_app(&name).await?;
            finish(g, &client, changed, Goal::Gone, wait, timeout).await
        }
        AppCommand::Get { name, version } => {
            let client = g.client().await?;
            let m = client.app_manifest(&name, version.as_deref()).await?;
            if g.output == Format::Json {
                return output::print_json(&m.manifest);
            }
            print!("{}", serde_yaml::to_string(&m.manifest)?);
            Ok(())
        }
    }
}

/// Validates locally, then stores on the manager: (name, version, created).
async fn put_file(client: &LatticeClient, file: &str) -> anyhow::Result<(String, String, bool)> {
    let manifest = crate::manifest_file::read_manifest(file)?;
    let json = serde_json::to_string(&manifest)?;
    match client.put_app(file, &json).await {
        Ok(put) => Ok((put.name, put.version, put.created)),
        Err(trellis_lattice::Error::Control(c))
            if c.kind == ErrorKind::Invalid && c.message.contains('\n') =>
        {
            crate::manifest_file::fail_with_lines(&c.message)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Goal {
    Deployed,
    Undeployed,
    Gone,
}

async fn finish(
    g: &Global,
    client: &LatticeClient,
    changed: AppChanged,
    goal: Goal,
    wait: bool,
    timeout: Duration,
) -> anyhow::Result<()> {
    if !wait {
        if g.output == Format::Json {
            return output::print_json(&changed);
        }
        match (goal, &changed.version) {
            (Goal::Deployed, Some(v)) => println!(
                "deploying {} version {v} (see `trellis app status {}`)",
                changed.name, changed.name
            ),
            (Goal::Gone, _) => println!("deleting {}", changed.name),
            _ => println!("undeploying {}", changed.name),
        }
        return Ok(());
    }
    let st = wait_for(client, &changed, goal, timeout).await?;
    match (goal, st) {
        (Goal::Gone, _) => {
            if g.output == Format::Json {
                return output::print_json(
                    &serde_json::json!({ "name": changed.name, "deleted": true }),
                );
            }
            println!("deleted {}", changed.name);
            Ok(())
        }
        (_, Some(st)) => {
            if g.output == Format::Json {
                output::print_json(&st)?;
            } else {
                match st.status {
                    AppState::Deployed => println!(
                        "{} version {} deployed",
                        st.name,
                        st.version.as_deref().unwrap_or("?")
                    ),
                    _ => println!("{} {}", st.name, st.status),
                }
            }
            if st.status == AppState::Failed {
                bail!(
                    "{} failed: {}",
                    st.name,
                    st.reason.as_deref().unwrap_or("see `trellis app status`")
                );
            }
            Ok(())
        }
        (_, None) => Ok(()),
    }
}

/// How long `failed` must last before `--wait` gives up: a host lost mid-deployment fails a
/// command that the next pass places elsewhere.
const FAILED_GRACE: Duration = Duration::from_secs(3);

/// Polls status until the goal (or a lasting failure); `None` once a deleted app is gone.
async fn wait_for(
    client: &LatticeClient,
    changed: &AppChanged,
    goal: Goal,
    timeout: Duration,
) -> anyhow::Result<Option<AppStatus>> {
    let spinner = output::spinner(format!("waiting for {}", changed.name));
    let deadline = tokio::time::Instant::now() + timeout;
    let mut failed_since: Option<tokio::time::Instant> = None;
    loop {
        match client.app_status(&changed.name).await {
            Ok(st) => {
                let current = st.generation >= changed.generation;
                spinner.set_message(progress(&st));
                let done = current
                    && match goal {
                        Goal::Deployed => st.status == AppState::Deployed,
                        Goal::Undeployed | Goal::Gone => st.status == AppState::Undeployed,
                    };
                if done && goal != Goal::Gone {
                    spinner.finish_and_clear();
                    return Ok(Some(st));
                }
                if current && st.status == AppState::Failed {
                    let since = *failed_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= FAILED_GRACE {
                        spinner.finish_and_clear();
                        return Ok(Some(st));
                    }
                } else {
                    failed_since = None;
                }
                if tokio::time::Instant::now() >= deadline {
                    spinner.finish_and_clear();
                    bail!(
                        "timed out after {} waiting for {} (now {}{})",
                        humantime::format_duration(timeout),
                        changed.name,
                        st.status,
                        st.reason.map(|r| format!(": {r}")).unwrap_or_default()
                    );
                }
            }
            Err(trellis_lattice::Error::Control(c))
                if goal == Goal::Gone && c.kind == ErrorKind::NotFound =>
            {
                spinner.finish_and_clear();
                return Ok(None);
            }
            Err(e) => {
                spinner.finish_and_clear();
                return Err(e.into());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn progress(st: &AppStatus) -> String {
    let workloads: Vec<_> = st
        .scalers
        .iter()
        .filter(|s| s.kind == "spreadscaler" || s.kind == "daemonscaler")
        .collect();
    let desired: u32 = workloads.iter().map(|s| s.desired).sum();
    let actual: u32 = workloads.iter().map(|s| s.actual.min(s.desired)).sum();
    let ready = st
        .scalers
        .iter()
        .filter(|s| s.state == ScalerState::Deployed)
        .count();
    format!(
        "{} {}: {actual}/{desired} replicas, {ready}/{} scalers deployed{}",
        st.name,
        st.status,
        st.scalers.len(),
        st.reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    )
}

async fn list(g: &Global) -> anyhow::Result<()> {
    let client = g.client().await?;
    let apps = client.apps().await?;
    if g.output == Format::Json {
        return output::print_json(&apps);
    }
    if apps.is_empty() {
        eprintln!("no applications in lattice `{}`", client.lattice());
        return Ok(());
    }
    let mut t = output::table(&[
        "name",
        "deployed",
        "latest",
        "versions",
        "status",
        "description",
    ]);
    for a in &apps {
        t.add_row(vec![
            a.name.clone(),
            a.deployed_version.clone().unwrap_or_else(|| "-".into()),
            a.latest_version.clone().unwrap_or_else(|| "-".into()),
            a.versions.to_string(),
            a.status.to_string(),
            a.description.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
    Ok(())
}

/// Host ids to friendly names, for tables.
async fn host_names(client: &LatticeClient) -> BTreeMap<String, String> {
    client
        .hosts()
        .await
        .map(|hosts| hosts.into_iter().map(|h| (h.id, h.friendly_name)).collect())
        .unwrap_or_default()
}

async fn print_status(g: &Global, client: &LatticeClient, st: &AppStatus) -> anyhow::Result<()> {
    if g.output == Format::Json {
        return output::print_json(st);
    }
    println!(
        "{}  version {}  {}",
        st.name,
        st.version.as_deref().unwrap_or("-"),
        st.status
    );
    if let Some(r) = &st.reason {
        println!("  {r}");
    }
    if st.scalers.is_empty() {
        return Ok(());
    }
    let names = host_names(client).await;
    let host = |id: &str| {
        names
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.chars().take(10).collect())
    };
    let mut t = output::table(&[
        "kind", "name", "state", "desired", "actual", "where", "reason",
    ]);
    for s in &st.scalers {
        let placed: Vec<String> = s
            .placements
            .iter()
            .map(|(h, n)| format!("{}={n}", host(h)))
            .collect();
        t.add_row(vec![
            s.kind.clone(),
            s.name.clone(),
            s.state.as_str().to_string(),
            s.desired.to_string(),
            s.actual.to_string(),
            placed.join(","),
            s.reason.clone().unwrap_or_default(),
        ]);
    }
    println!();
    println!("{t}");
    Ok(())
}

async fn history(g: &Global, name: &str) -> anyhow::Result<()> {
    let client = g.client().await?;
    let h = client.app_history(name).await?;
    if g.output == Format::Json {
        return output::print_json(&h);
    }
    let mut t = output::table(&["version", "stored", "deployed", "description"]);
    for v in &h.versions {
        t.add_row(vec![
            v.version.clone(),
            v.stored_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            if v.deployed { "yes" } else { "" }.to_string(),
            v.description.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
    if !h.deployments.is_empty() {
        println!();
        let mut t = output::table(&["at", "action", "version"]);
        for e in &h.deployments {
            t.add_row(vec![
                e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                e.action.clone(),
                e.version.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        println!("{t}");
    }
    Ok(())
}
