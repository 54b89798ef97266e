use anyhow::Context as _;
use clap::Parser as _;
use tokio::signal::unix::{signal, SignalKind};
use trellis_host::{Host, HostArgs, HostConfig};

fn main() -> std::process::ExitCode {
    // Errors inside the runtime are reported as messages; capturing a backtrace for each
    // (as RUST_BACKTRACE=1 would) costs more than the request it belongs to. Panics still
    // print backtraces per RUST_BACKTRACE.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    let args = HostArgs::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("trellis-host: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("trellis-host: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: HostArgs) -> anyhow::Result<()> {
    let logging = trellis_telemetry::Logging {
        filter: args.log.clone(),
        json: args.log_json,
        plain: false,
    };
    let observability = args.observability;
    let otel_labels = args.otel_labels.clone();
    let mut config = match HostConfig::from_args(args) {
        Ok(config) => config,
        Err(err) => {
            trellis_telemetry::init(service_stub(), &logging, false);
            return Err(err);
        }
    };
    let identity = config.pin_identity()?;
    let telemetry = trellis_telemetry::init(
        service(&config, &identity, &otel_labels),
        &logging,
        observability,
    );
    let result = match config.artifacts.precompile.clone() {
        Some((image, target)) => {
            trellis_host::precompile::run(&config, &identity.host_id(), &image, &target)
                .await
                .and_then(|published| {
                    println!("{}", serde_json::to_string(&published)?);
                    Ok(())
                })
        }
        None => serve(config).await,
    };
    telemetry.shutdown(std::time::Duration::from_secs(5)).await;
    result
}

async fn serve(config: HostConfig) -> anyhow::Result<()> {
    let host = Host::start(config).await?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let reason = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = host.stopped() => "stop requested",
    };
    tracing::info!(reason, "stopping");
    host.stop(reason).await;
    Ok(())
}

/// The exported resource: the host id, its name, lattice, `tier` and the labels asked for.
fn service(
    config: &HostConfig,
    identity: &trellis_host::identity::Identity,
    otel_labels: &[String],
) -> trellis_telemetry::Service {
    use trellis_telemetry::KeyValue;
    let mut attributes = vec![
        KeyValue::new("trellis.lattice", config.lattice.clone()),
        KeyValue::new("trellis.host.name", identity.friendly_name.clone()),
    ];
    for (key, value) in &config.labels {
        if key == "tier" || otel_labels.iter().any(|k| k == key) {
            attributes.push(KeyValue::new(format!("trellis.label.{key}"), value.clone()));
        }
    }
    trellis_telemetry::Service {
        name: "trellis-host".into(),
        version: env!("CARGO_PKG_VERSION"),
        instance_id: identity.host_id(),
        attributes,
    }
}

fn service_stub() -> trellis_telemetry::Service {
    trellis_telemetry::Service {
        name: "trellis-host".into(),
        version: env!("CARGO_PKG_VERSION"),
        instance_id: String::new(),
        attributes: Vec::new(),
    }
}
