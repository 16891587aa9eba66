//! `weft connectors`: the connectors this binary has, and the reference pages made from them.

use anyhow::{Context, bail};
use clap::Subcommand;
use std::path::{Path, PathBuf};

use weft_connectors::{Registry, docs, openapi};

use super::client::print_json;

#[derive(Subcommand)]
pub enum ConnectorsCommand {
    /// List the connectors, a line each.
    List,
    /// Show a connector's connection fields, actions and triggers with their schemas.
    Show {
        name: String,
        /// Print JSON instead of Markdown.
        #[arg(long)]
        json: bool,
    },
    /// Write the reference pages (one Markdown file per connector and an index) to a folder.
    Docs { folder: PathBuf },
    /// Make a connector from an OpenAPI 3 document (YAML or JSON): each operation becomes an
    /// action. It is written to the folder of imported connectors, which `weft serve` (after
    /// a restart), `weft run` and `weft validate` read.
    ImportOpenapi {
        file: PathBuf,
        /// The connector's name, as recipes write it (`NAME.action`).
        #[arg(long)]
        name: String,
        /// The folder of imported connectors (default: WEFT_CONNECTORS_DIR, else the data
        /// folder's `connectors`).
        #[arg(long)]
        into: Option<PathBuf>,
    },
}

pub fn run(command: ConnectorsCommand) -> anyhow::Result<()> {
    let registry = super::registry(&super::connector_options(false, None)?)?;
    match command {
        ConnectorsCommand::List => {
            for connector in registry.iter() {
                println!("{:<12}  {}", connector.name(), connector.description());
            }
            Ok(())
        }
        ConnectorsCommand::Show { name, json } => {
            let Some(connector) = registry.get(&name) else {
                let known: Vec<&str> = registry.iter().map(|found| found.name()).collect();
                bail!("no connector named `{name}` (known: {})", known.join(", "));
            };
            if json {
                print_json(&docs::describe(connector.as_ref()));
            } else {
                print!("{}", docs::page(connector.as_ref()));
            }
            Ok(())
        }
        ConnectorsCommand::Docs { folder } => write_docs(&registry, &folder),
        ConnectorsCommand::ImportOpenapi { file, name, into } => {
            import_openapi(&registry, &file, &name, into)
        }
    }
}

/// Imports an OpenAPI document as a connector file, refusing a name already taken.
fn import_openapi(
    registry: &Registry,
    file: &Path,
    name: &str,
    into: Option<PathBuf>,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let document: serde_json::Value = serde_saphyr::from_str(&text)
        .map_err(|error| anyhow::anyhow!("{} is not YAML or JSON: {error}", file.display()))?;
    let definition = openapi::import(&document, name).map_err(|problems| {
        anyhow::anyhow!(
            "{} cannot be imported:\n  {}",
            file.display(),
            problems.join("\n  ")
        )
    })?;
    let folder = into
        .or_else(|| std::env::var_os(super::CONNECTORS_DIR_VARIABLE).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("weft-data/connectors"));
    let target = folder.join(format!("{name}.json"));
    if registry.get(name).is_some() && !target.exists() {
        bail!("a connector named `{name}` exists already");
    }
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    let text = serde_json::to_string_pretty(&definition)?;
    std::fs::write(&target, text).with_context(|| format!("cannot write {}", target.display()))?;
    let actions: Vec<&str> = definition
        .operations
        .iter()
        .map(|operation| operation.action.as_str())
        .collect();
    println!(
        "imported `{name}` with {} action(s) ({}) into {}",
        actions.len(),
        actions.join(", "),
        target.display()
    );
    Ok(())
}

/// The connectors imported into a folder: every `*.json` file of it. A missing folder holds
/// none.
pub fn imported(folder: &Path) -> anyhow::Result<Vec<openapi::Definition>> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", folder.display()));
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "json")
        })
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not an imported connector", path.display()))
        })
        .collect()
}

/// The pages `weft connectors docs` writes: file name and text.
pub fn pages(registry: &Registry) -> Vec<(String, String)> {
    let mut pages = vec![("README.md".to_owned(), docs::index(registry))];
    for connector in registry.iter() {
        pages.push((
            format!("{}.md", connector.name()),
            docs::page(connector.as_ref()),
        ));
    }
    pages
}

fn write_docs(registry: &Registry, folder: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    for (name, text) in pages(registry) {
        let path = folder.join(&name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
