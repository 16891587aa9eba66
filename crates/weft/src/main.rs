//! The `weft` command line: validate and run recipes; later, serve the platform.

mod commands;
mod connections_file;
mod recipe_folder;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Runs jq programs for a parent weft process (internal).
    #[command(name = "__jq-worker", hide = true)]
    JqWorker,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Validate { files } => commands::validate::validate(&files),
        Command::Run(args) => commands::run::run(args),
        Command::JqWorker => match weft_engine::serve_jq_worker() {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        },
    }
}

fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
