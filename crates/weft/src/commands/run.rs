//! `weft run FILE`: one job, in this process, its record on stdout.

use anyhow::Context;
use clap::Args;
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use weft_engine::{Engine, JqRunner, Limits};
use weft_store::JobStatus;

use super::{Loaded, invalid, load_recipe, print_problems, registry};
use crate::connections_file::ConnectionsFile;
use crate::recipe_folder::RecipeFolder;

#[derive(Args)]
pub struct RunArgs {
    /// The recipe file.
    file: PathBuf,
    /// The trigger event: a JSON file, `-` for standard input, or JSON text. Default: `{}`.
    #[arg(long)]
    event: Option<String>,
    /// Connections by name (YAML or JSON); values may be `${ENV_VAR}` references.
    #[arg(long)]
    connections: Option<PathBuf>,
    /// Let outbound HTTP reach loopback and private addresses (off by default).
    #[arg(long, env = "WEFT_ALLOW_PRIVATE_NETWORK", value_parser = clap::builder::BoolishValueParser::new())]
    allow_private_network: bool,
}

pub fn run(args: RunArgs) -> ExitCode {
    match prepare_and_run(&args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("weft: {error:#}");
            invalid()
        }
    }
}

fn prepare_and_run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let options = super::connector_options(args.allow_private_network, None)?;
    let registry = registry(&options)?;
    let recipe = match load_recipe(&args.file, &registry) {
        Loaded::Recipe(recipe) => recipe,
        Loaded::Unreadable(message) => anyhow::bail!(message),
        Loaded::Invalid(problems) => {
            print_problems(&args.file, &problems);
            return Ok(invalid());
        }
    };
    let event = read_event(args.event.as_deref())?;
    let connections = match &args.connections {
        Some(path) => ConnectionsFile::load(path)?,
        None => ConnectionsFile::default(),
    };
    let folder = args
        .file
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let library = RecipeFolder::new(folder.to_path_buf(), registry.clone());
    // jq runs in worker processes, so that a runaway program cannot take this one down.
    let jq = std::env::current_exe()
        .map(JqRunner::isolated)
        .unwrap_or_default();
    let engine = Engine::new(
        registry,
        Arc::new(connections),
        Arc::new(library),
        Limits::default(),
    )
    .with_jq_runner(jq);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(engine.run_job(Arc::new(*recipe), event));
    let printed =
        serde_json::to_string_pretty(&outcome.record).context("cannot print the job record")?;
    print_record(&printed)?;
    runtime.shutdown_background();
    Ok(match outcome.record.status {
        JobStatus::Succeeded => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

/// Prints the record; a reader that stops early (`weft run … | head`) is not an error.
fn print_record(printed: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{printed}").and_then(|()| stdout.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(error).context("cannot print the job record")
        }
        _ => Ok(()),
    }
}

/// The event: a file, standard input, or JSON written on the command line.
fn read_event(event: Option<&str>) -> anyhow::Result<Value> {
    let text = match event {
        None => return Ok(Value::Object(Default::default())),
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the event from standard input")?;
            text
        }
        Some(argument) if Path::new(argument).is_file() => std::fs::read_to_string(argument)
            .with_context(|| format!("cannot read the event file {argument}"))?,
        Some(argument) if argument.trim_start().starts_with(['{', '[', '"']) => argument.to_owned(),
        Some(argument) => anyhow::bail!("the event `{argument}` is neither a file nor JSON"),
    };
    serde_json::from_str(&text).context("the event is not valid JSON")
}
