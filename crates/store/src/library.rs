//! The recipe library: recipes published, in their shared form, for every workspace of the
//! platform to import.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;

use crate::Store;
use crate::db::{Backend, Result, on_pool};

/// A recipe of the library.
#[derive(Debug, Clone, PartialEq)]
pub struct LibraryEntry {
    pub id: String,
    /// The workspace that published it.
    pub workspace_id: String,
    pub name: String,
    pub description: String,
    /// The shared text: placeholders where the publisher's connections, secrets and personal
    /// data were.
    pub source: String,
    /// What each placeholder stands for, as `[{name, kind, hint}]`.
    pub placeholders: Value,
    pub published_at: DateTime<Utc>,
}

impl Store {
    pub async fn publish_recipe(&self, entry: &LibraryEntry, published_by: &str) -> Result<()> {
        let sql = "INSERT INTO recipe_library (id, workspace_id, name, description, source, placeholders, published_by, published_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        on_pool!(self, pool => sqlx::query(sql).bind(&entry.id).bind(&entry.workspace_id).bind(&entry.name)
            .bind(&entry.description).bind(&entry.source).bind(entry.placeholders.to_string())
            .bind(published_by).bind(entry.published_at).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Every recipe of the library, newest first.
    pub async fn library(&self) -> Result<Vec<LibraryEntry>> {
        self.library_where(None).await
    }

    pub async fn library_entry(&self, id: &str) -> Result<Option<LibraryEntry>> {
        Ok(self.library_where(Some(id)).await?.pop())
    }

    async fn library_where(&self, id: Option<&str>) -> Result<Vec<LibraryEntry>> {
        let sql = "SELECT id, workspace_id, name, description, source, placeholders, published_at \
                   FROM recipe_library WHERE ($1 IS NULL OR id = $1) ORDER BY published_at DESC, id DESC";
        on_pool!(self, pool => sqlx::query(sql).bind(id).fetch_all(pool).await?.iter().map(|row| {
            let placeholders: String = row.try_get(5)?;
            Ok(LibraryEntry {
                id: row.try_get(0)?,
                workspace_id: row.try_get(1)?,
                name: row.try_get(2)?,
                description: row.try_get(3)?,
                source: row.try_get(4)?,
                placeholders: serde_json::from_str(&placeholders).unwrap_or(Value::Null),
                published_at: row.try_get(6)?,
            })
        }).collect())
    }

    /// Takes a recipe out of the library, if the workspace published it.
    pub async fn unpublish_recipe(&self, workspace_id: &str, id: &str) -> Result<bool> {
        let sql = "DELETE FROM recipe_library WHERE id = $1 AND workspace_id = $2";
        on_pool!(self, pool => Ok(sqlx::query(sql).bind(id).bind(workspace_id).execute(pool).await?.rows_affected() > 0))
    }
}
