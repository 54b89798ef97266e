//! `trellis`: the operator's command line for a Trellis lattice.

mod apps;
mod call;
mod component;
mod exit;
mod global;
mod hosts;
mod links;
mod manifest_file;
mod output;
mod providers;
mod spy;
mod up;

use clap::{Parser, Subcommand};

use global::Global;
use output::Format;

#[derive(Parser)]
#[command(
    name = "trellis",
    version,
    about = "Run WebAssembly components on a lattice of hosts"
)]
struct Cli {
    /// NATS server of the lattice.
    #[arg(
        long,
        global = true,
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_url: String,

    /// Lattice name.
    #[arg(long, global = true, env = "TRELLIS_LATTICE", default_value = trellis_lattice::DEFAULT_LATTICE)]
    lattice: String,

    /// NATS credentials file (JWT + nkey seed).
    #[arg(
        long = "nats-creds",
        visible_alias = "creds",
        global = true,
        env = "NATS_CREDS"
    )]
    nats_creds: Option<std::path::PathBuf>,

    /// NATS user nkey seed (`SU...`).
    #[arg(long, global = true, env = "NATS_NKEY", hide_env_values = true)]
    nats_nkey: Option<String>,

    /// NATS user name (with --nats-password).
    #[arg(long, global = true, env = "NATS_USER")]
    nats_user: Option<String>,

    /// NATS password (with --nats-user).
    #[arg(
        long,
        global = true,
        env = "NATS_PASSWORD",
        hide_env_values = true,
        requires = "nats_user"
    )]
    nats_password: Option<String>,

    /// NATS authentication token.
    #[arg(long, global = true, env = "NATS_TOKEN", hide_env_values = true)]
    nats_token: Option<String>,

    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = Format::Table)]
    output: Format,

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
    /// Deploy, inspect and remove applications (OAM manifests).
    #[command(subcommand)]
    App(apps::AppCommand),
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TRELLIS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,async_nats=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let auth = trellis_lattice::NatsAuth::from_parts(
        cli.nats_creds,
        cli.nats_nkey,
        cli.nats_user,
        cli.nats_password,
        cli.nats_token,
    );
    let result = match auth {
        Ok(auth) => {
            let global = Global {
                nats_url: cli.nats_url,
                lattice: cli.lattice,
                auth,
                output: cli.output,
            };
            run(&global, cli.command).await
        }
        Err(err) => Err(err.into()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // One line: the chain of causes, outermost first.
            eprintln!("trellis: {}", format!("{err:#}").replace('\n', " "));
            exit::code(&err)
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
        Command::App(cmd) => apps::run(global, cmd).await,
    }
}
