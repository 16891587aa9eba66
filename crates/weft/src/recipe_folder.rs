//! Recipes found by name among the files of a folder, for `call` steps of `weft run`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use weft_connectors::Registry;
use weft_engine::RecipeLibrary;
use weft_recipe::{Recipe, compile_recipe};

pub struct RecipeFolder {
    folder: PathBuf,
    registry: Registry,
    /// Read on the first `call`, not before: most runs call nothing.
    recipes: OnceLock<Scan>,
}

#[derive(Default)]
struct Scan {
    by_name: HashMap<String, Arc<Recipe>>,
    /// Files that did not compile; a called recipe may be among them.
    invalid: Vec<String>,
}

impl RecipeFolder {
    pub fn new(folder: PathBuf, registry: Registry) -> Self {
        RecipeFolder {
            folder,
            registry,
            recipes: OnceLock::new(),
        }
    }

    fn scan(&self) -> Scan {
        let mut scan = Scan::default();
        let Ok(paths) = crate::commands::recipe_files(&self.folder) else {
            return scan;
        };
        for path in paths {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            match compile_recipe(&text, &self.registry) {
                Ok(recipe) => {
                    scan.by_name
                        .entry(recipe.name.clone())
                        .or_insert_with(|| Arc::new(recipe));
                }
                Err(_) => scan.invalid.push(path.display().to_string()),
            }
        }
        scan
    }
}

#[async_trait::async_trait]
impl RecipeLibrary for RecipeFolder {
    async fn find(&self, _workspace: &str, name: &str) -> Result<Arc<Recipe>, String> {
        let scan = self.recipes.get_or_init(|| self.scan());
        if let Some(recipe) = scan.by_name.get(name) {
            return Ok(Arc::clone(recipe));
        }
        let mut message = format!("no recipe named `{name}` in {}", self.folder.display());
        if !scan.invalid.is_empty() {
            message.push_str(&format!(
                " (these files have problems: {})",
                scan.invalid.join(", ")
            ));
        }
        Err(message)
    }
}
