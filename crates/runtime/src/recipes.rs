//! Compiled recipes, cached per version: a version never changes, so a compiled one is good
//! for as long as the process lives.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weft_connectors::Registry;
use weft_engine::RecipeLibrary;
use weft_recipe::{Recipe, compile_recipe};
use weft_store::{Store, StoredRecipe};

/// How long the recipe of a webhook path is taken from memory before the store is asked
/// again: a change made through another process is seen after at most this long (changes
/// made through this one, at once).
const WEBHOOK_FRESH: Duration = Duration::from_secs(1);
/// Most webhook paths remembered; past this the memory is emptied and refilled.
const MAX_WEBHOOKS: usize = 10_000;

/// Each workspace's webhook paths (nested, so that a lookup builds no key).
type WebhookRoutes = HashMap<String, HashMap<String, (Instant, Arc<StoredRecipe>)>>;

/// A recipe version: its id and number.
type VersionKey = (String, i64);

#[derive(Clone)]
pub struct RecipeCache {
    store: Store,
    registry: Registry,
    compiled: Arc<Mutex<HashMap<VersionKey, Arc<Recipe>>>>,
    webhooks: Arc<Mutex<WebhookRoutes>>,
}

impl RecipeCache {
    pub fn new(store: Store, registry: Registry) -> RecipeCache {
        RecipeCache {
            store,
            registry,
            compiled: Arc::new(Mutex::new(HashMap::new())),
            webhooks: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The enabled recipe of a workspace that listens on a webhook path, if one does: from
    /// memory when it was looked up in the last second, so that a burst of events costs one
    /// query.
    pub async fn webhook(
        &self,
        workspace: &str,
        path: &str,
    ) -> weft_store::Result<Option<Arc<StoredRecipe>>> {
        let remembered = self.webhooks.lock().ok().and_then(|routes| {
            routes
                .get(workspace)?
                .get(path)
                .filter(|(at, _)| at.elapsed() < WEBHOOK_FRESH)
                .map(|(_, recipe)| Arc::clone(recipe))
        });
        if remembered.is_some() {
            return Ok(remembered);
        }
        let Some(found) = self.store.recipe_for_webhook(workspace, path).await? else {
            return Ok(None);
        };
        let found = Arc::new(found);
        if let Ok(mut routes) = self.webhooks.lock() {
            if routes.values().map(HashMap::len).sum::<usize>() >= MAX_WEBHOOKS {
                routes.clear();
            }
            routes
                .entry(workspace.to_owned())
                .or_default()
                .insert(path.to_owned(), (Instant::now(), Arc::clone(&found)));
        }
        Ok(Some(found))
    }

    /// Which recipe version a compiled recipe is, when it came from this cache.
    pub fn origin_of(&self, recipe: &Arc<Recipe>) -> Option<(String, i64)> {
        let compiled = self.compiled.lock().ok()?;
        compiled
            .iter()
            .find(|(_, cached)| Arc::ptr_eq(cached, recipe))
            .map(|((id, version), _)| (id.clone(), *version))
    }

    /// Forgets the webhook paths looked up so far: call after a recipe changes.
    pub fn forget_webhooks(&self) {
        if let Ok(mut routes) = self.webhooks.lock() {
            routes.clear();
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A version of a recipe, compiled; the error says why it cannot run.
    pub async fn version(&self, recipe_id: &str, version: i64) -> Result<Arc<Recipe>, String> {
        let key = (recipe_id.to_owned(), version);
        if let Some(found) = self
            .compiled
            .lock()
            .ok()
            .and_then(|compiled| compiled.get(&key).cloned())
        {
            return Ok(found);
        }
        let stored = self
            .store
            .recipe_version(recipe_id, version)
            .await
            .map_err(|error| error.to_string())?
            .ok_or_else(|| format!("version {version} of recipe {recipe_id} is not stored"))?;
        let registry = self.registry.clone();
        let source = stored.source;
        let mut compiled = tokio::task::spawn_blocking(move || compile_recipe(&source, &registry))
            .await
            .map_err(|_| "the recipe compiler failed".to_owned())?
            .map_err(|problems| {
                let first = problems
                    .0
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                format!("the stored recipe no longer compiles: {first}")
            })?;
        compiled.workspace = stored.workspace_id;
        let compiled = Arc::new(compiled);
        if let Ok(mut cache) = self.compiled.lock() {
            cache.insert(key, Arc::clone(&compiled));
        }
        Ok(compiled)
    }
}

/// Recipes for `call` steps: the current version of the recipe with that name.
pub struct StoreLibrary {
    pub recipes: RecipeCache,
}

#[async_trait::async_trait]
impl RecipeLibrary for StoreLibrary {
    async fn find(&self, workspace: &str, name: &str) -> Result<Arc<Recipe>, String> {
        let stored = self
            .recipes
            .store
            .recipe_by_name(workspace, name)
            .await
            .map_err(|error| error.to_string())?
            .ok_or_else(|| format!("no recipe named `{name}`"))?;
        self.recipes.version(&stored.id, stored.version).await
    }
}
