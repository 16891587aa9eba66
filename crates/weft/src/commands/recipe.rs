//! `weft recipe` and `weft apply`: recipes on a server, from files.

use anyhow::{Context, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::client::{Client, ServerArgs, print_json};
use super::{Loaded, load_recipe, print_problems, registry};

#[derive(Subcommand)]
pub enum RecipeCommand {
    /// Save recipe files on the server: new names are created, known ones get a new version.
    Push {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the server's recipes.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show a recipe (by id or name), source included.
    Show {
        recipe: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    Enable {
        recipe: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    Disable {
        recipe: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    Delete {
        recipe: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Print a recipe's text (a recipe of the server by id or name, or a file). With
    /// --share, in a form fit to share: connection names, secrets, emails, phone numbers,
    /// people's names and URLs with tokens become placeholders, and what was taken out is
    /// listed on standard error.
    Export {
        recipe: String,
        #[arg(long)]
        share: bool,
        /// The server's base URL (for a recipe of the server).
        #[arg(long, env = "WEFT_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        /// An API token (for a recipe of the server).
        #[arg(long, env = "WEFT_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Forget a poll trigger's cursor and seen items: items seen before make jobs again.
    ResetPoll {
        recipe: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub async fn run(command: RecipeCommand) -> anyhow::Result<()> {
    match command {
        RecipeCommand::Push { files, server } => {
            let client = Client::new(&server)?;
            let local = read_recipes(&files)?;
            let remote = remote_by_name(&client).await?;
            for (name, recipe) in local {
                apply_one(&client, &name, &recipe.source, remote.get(&name)).await?;
            }
            Ok(())
        }
        RecipeCommand::List { server } => {
            let client = Client::new(&server)?;
            let listed = client.call(Method::GET, "/recipes", None).await?;
            for recipe in listed["recipes"].as_array().into_iter().flatten() {
                println!(
                    "{}  v{}  {}  {}",
                    recipe["id"].as_str().unwrap_or_default(),
                    recipe["version"],
                    if recipe["enabled"] == true {
                        "enabled "
                    } else {
                        "disabled"
                    },
                    recipe["name"].as_str().unwrap_or_default()
                );
            }
            Ok(())
        }
        RecipeCommand::Show { recipe, server } => {
            let client = Client::new(&server)?;
            let id = client.recipe_id(&recipe).await?;
            print_json(
                &client
                    .call(Method::GET, &format!("/recipes/{id}"), None)
                    .await?,
            );
            Ok(())
        }
        RecipeCommand::Enable { recipe, server } => switch(&server, &recipe, "enable").await,
        RecipeCommand::Disable { recipe, server } => switch(&server, &recipe, "disable").await,
        RecipeCommand::Delete { recipe, server } => {
            let client = Client::new(&server)?;
            let id = client.recipe_id(&recipe).await?;
            client
                .call(Method::DELETE, &format!("/recipes/{id}"), None)
                .await?;
            println!("deleted {recipe}");
            Ok(())
        }
        RecipeCommand::Export {
            recipe,
            share,
            server,
            token,
        } => {
            let source = if Path::new(&recipe).is_file() {
                std::fs::read_to_string(&recipe).with_context(|| format!("cannot read {recipe}"))?
            } else {
                let Some(token) = token else {
                    bail!("{recipe} is no file; to export a recipe of the server, give --token");
                };
                let client = Client::new(&ServerArgs { server, token })?;
                let id = client.recipe_id(&recipe).await?;
                let shown = client
                    .call(Method::GET, &format!("/recipes/{id}"), None)
                    .await?;
                shown["source"].as_str().unwrap_or_default().to_owned()
            };
            if !share {
                print!("{source}");
                return Ok(());
            }
            let shared = weft_recipe::share::share(&source).map_err(anyhow::Error::msg)?;
            print!("{}", shared.source);
            for finding in &shared.findings {
                let lines: Vec<String> = finding.lines.iter().map(usize::to_string).collect();
                eprintln!(
                    "removed: {} `{}` (line {}) -> {}",
                    finding.kind.as_str(),
                    finding.value,
                    lines.join(", "),
                    finding.placeholder
                );
            }
            if shared.findings.is_empty() {
                eprintln!("removed: nothing (no connection, secret or personal data found)");
            }
            Ok(())
        }
        RecipeCommand::ResetPoll { recipe, server } => {
            let client = Client::new(&server)?;
            let id = client.recipe_id(&recipe).await?;
            client
                .call(Method::POST, &format!("/recipes/{id}/poll/reset"), None)
                .await?;
            println!("reset the poll state of {recipe}: items seen before will make jobs again");
            Ok(())
        }
    }
}

async fn switch(server: &ServerArgs, recipe: &str, action: &str) -> anyhow::Result<()> {
    let client = Client::new(server)?;
    let id = client.recipe_id(recipe).await?;
    client
        .call(Method::POST, &format!("/recipes/{id}/{action}"), None)
        .await?;
    println!("{action}d {recipe}");
    Ok(())
}

/// A recipe file of a folder: its text, and the webhook path it listens on.
struct LocalRecipe {
    source: String,
    webhook_path: Option<String>,
}

/// Reads and checks recipe files; any invalid one stops everything, with its problems.
fn read_recipes(files: &[PathBuf]) -> anyhow::Result<BTreeMap<String, LocalRecipe>> {
    let registry = registry(&super::connector_options(false, None)?)?;
    let mut recipes = BTreeMap::new();
    let mut invalid = false;
    for path in files {
        match load_recipe(path, &registry) {
            Loaded::Recipe(recipe) => {
                let source = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let local = LocalRecipe {
                    source,
                    webhook_path: recipe.webhook_path().map(str::to_owned),
                };
                if recipes.insert(recipe.name.clone(), local).is_some() {
                    bail!("two files hold a recipe named `{}`", recipe.name);
                }
            }
            Loaded::Unreadable(message) => bail!(message),
            Loaded::Invalid(problems) => {
                print_problems(path, &problems);
                invalid = true;
            }
        }
    }
    if invalid {
        bail!("nothing was changed: fix the problems above first");
    }
    Ok(recipes)
}

async fn remote_by_name(client: &Client) -> anyhow::Result<BTreeMap<String, Value>> {
    Ok(client
        .recipes_with_sources()
        .await?
        .into_iter()
        .map(|recipe| {
            (
                recipe["name"].as_str().unwrap_or_default().to_owned(),
                recipe,
            )
        })
        .collect())
}

/// Creates or updates one recipe; says which.
async fn apply_one(
    client: &Client,
    name: &str,
    source: &str,
    remote: Option<&Value>,
) -> anyhow::Result<()> {
    match remote {
        None => {
            let saved = client
                .call(Method::POST, "/recipes", Some(source.to_owned()))
                .await?;
            println!("created   {name} (version {})", saved["version"]);
        }
        Some(existing) if existing["source"].as_str() == Some(source) => {
            println!("unchanged {name}")
        }
        Some(existing) => {
            let id = existing["id"].as_str().unwrap_or_default();
            let saved = client
                .call(
                    Method::PUT,
                    &format!("/recipes/{id}"),
                    Some(source.to_owned()),
                )
                .await?;
            println!("changed   {name} (version {})", saved["version"]);
        }
    }
    Ok(())
}

/// `weft apply DIR`: makes the server's recipes match a folder's, printing the plan first.
pub async fn apply(
    folder: &Path,
    dry_run: bool,
    prune: bool,
    server: &ServerArgs,
) -> anyhow::Result<()> {
    let files = super::recipe_files(folder)
        .with_context(|| format!("cannot read the folder {}", folder.display()))?;
    let local = read_recipes(&files)?;
    let client = Client::new(server)?;
    let mut remote = remote_by_name(&client).await?;
    // With --prune, a new name on the webhook path of a recipe that leaves is a rename: the
    // recipe is replaced in place (same id, a new version), as a create would find the path
    // taken until the old recipe is removed.
    let mut renamed = BTreeMap::new();
    if prune {
        for (name, recipe) in &local {
            let Some(path) = &recipe.webhook_path else {
                continue;
            };
            if remote.contains_key(name) {
                continue;
            }
            let old = remote.iter().find(|(old_name, existing)| {
                !local.contains_key(*old_name) && existing["webhook_path"].as_str() == Some(path)
            });
            if let Some((old_name, existing)) = old {
                renamed.insert(name.clone(), (old_name.clone(), existing.clone()));
            }
        }
        for (old_name, _) in renamed.values() {
            remote.remove(old_name);
        }
    }
    for (name, recipe) in &local {
        let what = match (remote.get(name), renamed.get(name)) {
            (None, Some((old_name, _))) => format!("~ rename    {old_name} ->"),
            (None, None) => "+ create   ".to_owned(),
            (Some(existing), _) if existing["source"].as_str() == Some(recipe.source.as_str()) => {
                "= unchanged".to_owned()
            }
            (Some(_), _) => "~ change   ".to_owned(),
        };
        println!("{what} {name}");
    }
    let gone: Vec<&String> = remote
        .keys()
        .filter(|name| !local.contains_key(*name))
        .collect();
    for name in &gone {
        if prune {
            println!("- remove    {name}");
        } else {
            println!("  keep      {name} (not in the folder; --prune removes it)");
        }
    }
    if dry_run {
        println!("dry run: nothing was changed");
        return Ok(());
    }
    for (name, recipe) in &local {
        let existing = remote
            .get(name)
            .or_else(|| renamed.get(name).map(|(_, old)| old));
        if existing.and_then(|existing| existing["source"].as_str()) != Some(recipe.source.as_str())
        {
            apply_one(&client, name, &recipe.source, existing).await?;
        }
    }
    if prune {
        for name in gone {
            let id = remote[name]["id"].as_str().unwrap_or_default();
            client
                .call(Method::DELETE, &format!("/recipes/{id}"), None)
                .await?;
            println!("removed   {name}");
        }
    }
    Ok(())
}
