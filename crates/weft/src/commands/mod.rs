//! One module per command.

pub mod admin;
pub mod client;
pub mod connection;
pub mod connectors;
pub mod db;
pub mod job;
pub mod recipe;
pub mod run;
pub mod serve;
pub mod store_args;
pub mod usage;
pub mod validate;

use std::path::Path;
use std::process::ExitCode;

use weft_connectors::{ConnectorOptions, Registry};
use weft_recipe::{Problems, Recipe, compile_recipe};

/// Exit status when the input (recipe, event, connections) is invalid.
pub const EXIT_INVALID: u8 = 2;

/// The connectors this binary has, with the operator's options.
pub fn registry(options: &ConnectorOptions) -> anyhow::Result<Registry> {
    Ok(Registry::builtin(options)?)
}

/// A recipe file read and compiled, or why not.
pub enum Loaded {
    Recipe(Box<Recipe>),
    /// The file could not be read: the message says why.
    Unreadable(String),
    Invalid(Problems),
}

pub fn load_recipe(path: &Path, registry: &Registry) -> Loaded {
    match std::fs::read_to_string(path) {
        Ok(text) => match compile_recipe(&text, registry) {
            Ok(recipe) => Loaded::Recipe(Box::new(recipe)),
            Err(problems) => Loaded::Invalid(problems),
        },
        Err(error) => {
            Loaded::Unreadable(format!("{}: cannot read the file: {error}", path.display()))
        }
    }
}

/// Prints every problem of a file as `FILE:LINE:COL: message`.
pub fn print_problems(path: &Path, problems: &Problems) {
    let file = path.display().to_string();
    for problem in &problems.0 {
        eprintln!("{}", problem.display_in(&file));
    }
}

/// The recipe files of a folder (`.yaml`, `.yml`, `.json`), in name order.
pub fn recipe_files(folder: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(folder)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .and_then(|ext| ext.to_str())
                .is_some_and(|ext| matches!(ext, "yaml" | "yml" | "json"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The connectors' options for a command that may open private networks.
/// The environment variable naming the folder of imported connectors.
pub const CONNECTORS_DIR_VARIABLE: &str = "WEFT_CONNECTORS_DIR";

/// The connectors' options: the network policy, and the connectors imported into the folder
/// of `WEFT_CONNECTORS_DIR` (or `default_dir`, for `weft serve` its data folder's).
pub fn connector_options(
    allow_private_network: bool,
    default_dir: Option<&Path>,
) -> anyhow::Result<ConnectorOptions> {
    let folder = std::env::var_os(CONNECTORS_DIR_VARIABLE)
        .map(std::path::PathBuf::from)
        .or_else(|| default_dir.map(Path::to_path_buf));
    Ok(ConnectorOptions {
        http: weft_connectors::http::HttpOptions {
            network: weft_connectors::http::NetworkPolicy {
                allow_private: allow_private_network,
            },
            ..Default::default()
        },
        imported: match folder {
            Some(folder) => connectors::imported(&folder)?,
            None => Vec::new(),
        },
    })
}

pub fn invalid() -> ExitCode {
    ExitCode::from(EXIT_INVALID)
}
