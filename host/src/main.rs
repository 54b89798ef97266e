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
    init_logging(&args.log, args.log_json);
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
    let config = HostConfig::from_args(args)?;
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

fn init_logging(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
