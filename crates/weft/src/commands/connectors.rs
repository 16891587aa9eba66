//! `weft connectors`: the connectors this binary has, and the reference pages made from them.

use anyhow::{Context, bail};
use clap::Subcommand;
use std::path::{Path, PathBuf};

use weft_connectors::{Registry, docs};

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
}

pub fn run(command: ConnectorsCommand) -> anyhow::Result<()> {
    let registry = super::registry(&super::connector_options(false))?;
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
    }
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
