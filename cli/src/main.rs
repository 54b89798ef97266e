//! `trellis`: the operator's command line for a Trellis lattice.

mod apps;
mod call;
mod component;
mod exit;
mod global;
mod gpio;
mod grants;
mod hosts;
mod keys;
mod links;
mod manifest_file;
mod output;
mod providers;
mod secrets;
mod sign;
mod spy;
mod top;
mod up;

use clap::{Parser, Subcommand};
use tracing::Instrument as _;

use global::Global;
use output::Format;

#[derive(Parser)]
#[command(
    name = "trellis",
    version,
    about = "Run WebAssembly components on a lattice of hosts"
)]
struct Cli {
    /// The lattice's NATS server: URL, credentials and TLS.
    #[command(flatten)]
    nats: trellis_lattice::client::NatsArgs,

    /// Lattice name.
    #[arg(long, global = true, env = "TRELLIS_LATTICE", default_value = trellis_lattice::DEFAULT_LATTICE)]
    lattice: String,

    /// The JetStream domain holding the lattice's state (e.g. `hub`), when the NATS server
    /// this connects to is a leaf node with a JetStream of its own (or none).
    #[arg(long, global = true, env = "TRELLIS_JS_DOMAIN")]
    js_domain: Option<String>,

    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = Format::Table)]
    output: Format,

    /// Export this command's trace (and those of hosts and managers `trellis up` starts)
    /// over OTLP, configured by the standard `OTEL_*` variables.
    #[arg(long, global = true, env = "TRELLIS_OBSERVABILITY", action = clap::ArgAction::SetTrue, value_parser = clap::builder::FalseyValueParser::new())]
    observability: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start (or reuse) a NATS server and a host.
    Up(up::UpArgs),
    /// Stop what `trellis up --detach` started.
    Down(up::DownArgs),
    /// Show hosts and what they run.
    #[command(subcommand)]
    Get(hosts::GetCommand),
    /// Start, scale and stop components.
    #[command(subcommand)]
    Component(component::ComponentCommand),
    /// Call a component's exported function with JSON arguments.
    Call(call::CallArgs),
    /// Put and delete host labels.
    #[command(subcommand)]
    Label(hosts::LabelCommand),
    /// Act on hosts.
    #[command(subcommand)]
    Host(hosts::HostCommand),
    /// Put, retarget and delete links.
    #[command(subcommand)]
    Link(links::LinkCommand),
    /// Put, get and delete named config.
    #[command(subcommand)]
    Config(links::ConfigCommand),
    /// Start and stop capability providers.
    #[command(subcommand)]
    Provider(providers::ProviderCommand),
    /// Watch lattice events (and a component's invocations) live.
    Spy(spy::SpyArgs),
    /// Live per-component figures from every host: invocations/s, errors/s, p50/p99,
    /// active/max instances, peak memory, CPU per invocation.
    Top(top::TopArgs),
    /// Deploy, inspect and remove applications (OAM manifests).
    #[command(subcommand)]
    App(apps::AppCommand),
    /// A host's GPIO: list chips and lines, read a line, drive a simulated input.
    #[command(subcommand)]
    Gpio(gpio::GpioCommand),
    /// The lattice's secrets key and sealed config values.
    #[command(subcommand)]
    Secret(secrets::SecretCommand),
    /// Make keys for signing, hosts and NATS users.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Sign a component (embedded claim) or a provider executable (FILE.sig).
    Sign(sign::SignArgs),
    /// Show a component's or executable's claim and whether it verifies.
    Inspect(sign::InspectArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Output piped into `head` and the like: when the reader goes away, end quietly as other
    // command-line tools do, instead of panicking on a broken pipe.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread writes.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    // async-nats logs a failed connection (a refused token, say) itself; the error line
    // below says it once.
    let telemetry = trellis_telemetry::init(
        trellis_telemetry::Service {
            name: "trellis".into(),
            version: env!("CARGO_PKG_VERSION"),
            instance_id: uuid::Uuid::new_v4().to_string(),
            attributes: vec![trellis_telemetry::KeyValue::new(
                "trellis.lattice",
                cli.lattice.clone(),
            )],
        },
        &trellis_telemetry::Logging {
            filter: std::env::var("TRELLIS_LOG").unwrap_or_else(|_| "warn,async_nats=off".into()),
            json: false,
            plain: false,
        },
        cli.observability,
    );
    let span = trellis_telemetry::spans::root(&format!("trellis {}", cli.command.name()));
    let result = match cli.nats.options() {
        Ok(nats) => {
            let global = Global {
                nats_url: cli.nats.nats_url,
                lattice: cli.lattice,
                js_domain: cli.js_domain.filter(|d| !d.is_empty()),
                violations: trellis_lattice::client::Violations::new(nats.auth.who(), false),
                nats,
                output: cli.output,
            };
            // A refused publish or subscription ends the command at once, in one line.
            let mut refused = global.violations.listen();
            tokio::select! {
                done = run(&global, cli.command).instrument(span.clone()) => done,
                err = refused.any() => Err(err.into()),
            }
        }
        Err(err) => Err(err.into()),
    };
    if let Err(err) = &result {
        trellis_telemetry::spans::fail(&span, "error", &format!("{err:#}"));
    }
    drop(span);
    telemetry.shutdown(std::time::Duration::from_secs(5)).await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // One line: the chain of causes, outermost first.
            eprintln!("trellis: {}", format!("{err:#}").replace('\n', " "));
            exit::code(&err)
        }
    }
}

impl Command {
    /// The command's name in its root span.
    fn name(&self) -> &'static str {
        match self {
            Command::Up(_) => "up",
            Command::Down(_) => "down",
            Command::Get(_) => "get",
            Command::Component(_) => "component",
            Command::Call(_) => "call",
            Command::Label(_) => "label",
            Command::Host(_) => "host",
            Command::Link(_) => "link",
            Command::Config(_) => "config",
            Command::Provider(_) => "provider",
            Command::Spy(_) => "spy",
            Command::Top(_) => "top",
            Command::App(_) => "app",
            Command::Gpio(_) => "gpio",
            Command::Secret(_) => "secret",
            Command::Keys(_) => "keys",
            Command::Sign(_) => "sign",
            Command::Inspect(_) => "inspect",
        }
    }
}

async fn run(global: &Global, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Up(args) => up::up(global, args).await,
        Command::Down(args) => up::down(args).await,
        Command::Get(cmd) => hosts::get(global, cmd).await,
        Command::Component(cmd) => component::run(global, cmd).await,
        Command::Call(args) => call::run(global, args).await,
        Command::Label(cmd) => hosts::label(global, cmd).await,
        Command::Host(cmd) => hosts::host(global, cmd).await,
        Command::Link(cmd) => links::link(global, cmd).await,
        Command::Config(cmd) => links::config(global, cmd).await,
        Command::Provider(cmd) => providers::run(global, cmd).await,
        Command::Spy(args) => spy::run(global, args).await,
        Command::Top(args) => top::run(global, args).await,
        Command::App(cmd) => apps::run(global, cmd).await,
        Command::Gpio(cmd) => gpio::run(global, cmd).await,
        Command::Secret(cmd) => secrets::run(global, cmd).await,
        Command::Keys(cmd) => keys::run(global, cmd).await,
        Command::Sign(args) => sign::sign(global, args).await,
        Command::Inspect(args) => sign::inspect(global, args).await,
    }
}
