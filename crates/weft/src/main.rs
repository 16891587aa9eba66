//! The `weft` command line: validate and run recipes; later, serve the platform.

mod commands;
mod connections_file;
mod master_key;
mod plans_file;
mod recipe_folder;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc instead of the system allocator: a job builds and drops many small JSON values,
/// and glibc's malloc spent a fifth of the server's time on them (see bench/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "weft",
    version,
    about = "Weft: connect the apps, databases and brokers your business runs on."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check recipe files; print every problem as FILE:LINE:COL: message.
    Validate {
        /// Recipe files (YAML or JSON).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run one job of a recipe in this process and print its job record.
    Run(commands::run::RunArgs),
    /// Run the platform: webhooks, the API, workers and the store.
    Serve(Box<commands::serve::ServeArgs>),
    /// Manage the database schema.
    #[command(subcommand)]
    Db(commands::db::DbCommand),
    /// Create users and API tokens.
    #[command(subcommand)]
    Admin(commands::admin::AdminCommand),
    /// Recipes on a server.
    #[command(subcommand)]
    Recipe(commands::recipe::RecipeCommand),
    /// Make a server's recipes match a folder of recipe files, printing the plan first.
    Apply {
        folder: PathBuf,
        /// Print the plan only.
        #[arg(long)]
        dry_run: bool,
        /// Remove recipes that are not in the folder.
        #[arg(long)]
        prune: bool,
        #[command(flatten)]
        server: commands::client::ServerArgs,
    },
    /// Connections on a server: their secrets are sealed there and never shown back.
    #[command(subcommand)]
    Connection(commands::connection::ConnectionCommand),
    /// The connectors this binary has, and their reference pages.
    #[command(subcommand)]
    Connectors(commands::connectors::ConnectorsCommand),
    /// Job history on a server.
    #[command(subcommand)]
    Job(commands::job::JobCommand),
    /// A workspace's usage this month against its plan, and the months before.
    Usage(commands::usage::UsageArgs),
    /// Runs jq programs for a parent weft process (internal).
    #[command(name = "__jq-worker", hide = true)]
    JqWorker,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Serve(_));
    if !serving {
        stop_quietly_on_closed_pipe();
    }
    init_logging(serving);
    match cli.command {
        Command::Validate { files } => commands::validate::validate(&files),
        Command::Run(args) => commands::run::run(args),
        Command::Serve(args) => on_runtime(commands::serve::run(*args)),
        Command::Db(command) => on_runtime(commands::db::run(command)),
        Command::Admin(command) => on_runtime(commands::admin::run(command)),
        Command::Recipe(command) => on_runtime(commands::recipe::run(command)),
        Command::Apply {
            folder,
            dry_run,
            prune,
            server,
        } => on_runtime(
            async move { commands::recipe::apply(&folder, dry_run, prune, &server).await },
        ),
        Command::Job(command) => on_runtime(commands::job::run(command)),
        Command::Usage(args) => on_runtime(commands::usage::run(args)),
        Command::Connection(command) => on_runtime(commands::connection::run(command)),
        Command::Connectors(command) => exit_status(commands::connectors::run(command)),
        Command::JqWorker => match weft_engine::serve_jq_worker() {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        },
    }
}

/// A command whose reader goes away (`weft … | head`) ends quietly, as other command-line
/// tools do, instead of failing on its next line. The server keeps ignoring SIGPIPE: a client
/// hanging up must not stop it.
fn stop_quietly_on_closed_pipe() {
    // SAFETY: restores the default action of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Runs an async command to its end; errors are printed and exit 1.
fn on_runtime(command: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("weft: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    exit_status(runtime.block_on(command))
}

/// Success exits 0; an error is printed and exits 1.
fn exit_status(outcome: anyhow::Result<()>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("weft: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to standard error, as text or (`WEFT_LOG_FORMAT=json`) JSON lines; `WEFT_LOG`
/// sets the level. The server logs at `info` by default, other commands at `warn`.
fn init_logging(serving: bool) {
    let default = if serving { "info" } else { "warn" };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG").unwrap_or_else(|_| default.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if std::env::var("WEFT_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
