//! `trellis-deploy`: runs a deployment manager for one lattice until SIGTERM or Ctrl-C.

use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use trellis_deploy::{Manager, Settings};
use trellis_lattice::client::{NatsArgs, NatsOptions, Violations};

/// Flags of `trellis-deploy`. Every flag has an environment variable.
#[derive(Debug, Parser)]
#[command(
    name = "trellis-deploy",
    version,
    about = "The Trellis deployment manager: keeps the lattice matching the deployed applications"
)]
struct Args {
    /// The lattice's NATS server: URL, credentials and TLS.
    #[command(flatten)]
    nats: NatsArgs,
    /// Lattice to manage.
    #[arg(long, env = "TRELLIS_LATTICE", default_value = trellis_lattice::DEFAULT_LATTICE)]
    lattice: String,
    /// The JetStream domain holding the lattice's state (e.g. `hub`), when the manager's
    /// NATS server is a leaf node or the state is not in its own JetStream.
    #[arg(long, env = "TRELLIS_JS_DOMAIN")]
    js_domain: Option<String>,
    /// How often the whole lattice is read again, besides reacting to events.
    #[arg(long, env = "TRELLIS_DEPLOY_FULL_PASS", default_value = "10s", value_parser = humantime::parse_duration)]
    full_pass: Duration,
    /// How long a leader lease goes unrenewed before another instance takes it over (a
    /// stopped leader releases it at once). The leader renews it every third of this.
    #[arg(long, env = "TRELLIS_DEPLOY_LEASE_STALE", default_value = "3s", value_parser = humantime::parse_duration)]
    lease_stale: Duration,
    /// Log filter (tracing's env-filter syntax).
    #[arg(long, env = "TRELLIS_LOG", default_value = "info")]
    log: String,
    /// Log as JSON lines.
    #[arg(long, env = "TRELLIS_LOG_JSON")]
    log_json: bool,
    /// Export traces (a span per reconcile pass, with the commands it issued), metrics and
    /// logs over OTLP, configured by the standard `OTEL_*` variables.
    #[arg(long, env = "TRELLIS_OBSERVABILITY", action = clap::ArgAction::SetTrue, value_parser = clap::builder::FalseyValueParser::new())]
    observability: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let instance = Manager::new_instance_id();
    let telemetry = trellis_telemetry::init(
        trellis_telemetry::Service {
            name: "trellis-deploy".into(),
            version: env!("CARGO_PKG_VERSION"),
            instance_id: instance.clone(),
            attributes: vec![trellis_telemetry::KeyValue::new(
                "trellis.lattice",
                args.lattice.clone(),
            )],
        },
        &trellis_telemetry::Logging {
            filter: args.log.clone(),
            json: args.log_json,
            plain: false,
        },
        args.observability,
    );
    let result = run(instance, args).await;
    telemetry.shutdown(Duration::from_secs(5)).await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("trellis-deploy: {}", format!("{err:#}").replace('\n', " "));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(instance: String, args: Args) -> anyhow::Result<()> {
    trellis_lattice::id::validate_lattice(&args.lattice)?;
    let nats_options = args.nats.options()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let nats = tokio::select! {
        nats = connect(&args.nats.nats_url, &nats_options) => nats?,
        _ = tokio::signal::ctrl_c() => return Ok(()),
        _ = term.recv() => return Ok(()),
    };
    let settings = Settings {
        full_pass: args.full_pass,
        lease: trellis_deploy::lease::LeaseTiming::for_stale(args.lease_stale),
        ..Settings::default()
    };
    let js_domain = args.js_domain.filter(|d| !d.is_empty());
    if let Some(domain) = &js_domain {
        trellis_lattice::id::validate_js_domain(domain).context("--js-domain")?;
    }
    let subjects = trellis_lattice::Subjects::new(&args.lattice).with_js_domain(js_domain);
    let manager = Manager::start_as(instance, nats, &subjects, settings)
        .await
        .context("starting the deployment manager")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
        _ = term.recv() => tracing::info!("terminated; stopping"),
    }
    manager.stop().await;
    Ok(())
}

/// Connects, retrying with back-off until the server answers (a server that refuses the
/// credentials or the TLS files fails at once); reconnects forever after. Refused publishes
/// and subscriptions are logged once per subject.
async fn connect(url: &str, nats: &NatsOptions) -> anyhow::Result<async_nats::Client> {
    let mut delay = Duration::from_millis(100);
    let violations = Violations::new(nats.auth.who(), true);
    loop {
        let opts = trellis_lattice::client::connect_options(nats, "trellis-deploy").await?;
        let recorder = violations.clone();
        match opts
            .connection_timeout(Duration::from_secs(3))
            .max_reconnects(None)
            .event_callback(move |event| {
                recorder.record(&event);
                async {}
            })
            .connect(url)
            .await
        {
            Ok(client) => {
                tracing::info!(url, "connected to NATS");
                return Ok(client);
            }
            Err(err) => {
                if let Some(refused) = trellis_lattice::client::refusal(url, nats, &err) {
                    return Err(refused.into());
                }
                tracing::warn!(url, %err, retry_in = ?delay, "cannot connect to NATS");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
