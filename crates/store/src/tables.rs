//! Lookup tables: reference data kept by Weft, each table's rows one JSON array.

use chrono::Utc;
use serde_json::Value;
use sqlx::Row;

use crate::db::{Backend, Result, StoreError, on_pool};
use crate::{Store, new_id};

/// A lookup table as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTable {
    pub workspace_id: String,
    pub name: String,
    pub columns: Vec<String>,
    pub rows: Vec<Value>,
    pub version: i64,
}

impl Store {
    pub async fn create_table(
        &self,
        workspace_id: &str,
        name: &str,
        columns: &[String],
    ) -> Result<()> {
        let sql = "INSERT INTO lookup_tables (id, name, columns, rows, version, created_at, updated_at, workspace_id) \
                   VALUES ($1, $2, $3, '[]', 1, $4, $4, $5)";
        let columns = serde_json::to_string(columns)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        on_pool!(self, pool => sqlx::query(sql).bind(new_id()).bind(name).bind(&columns).bind(Utc::now()).bind(workspace_id)
            .execute(pool).await.map(|_| ()))
        .map_err(|error| StoreError::or_conflict(error, || format!("a table named `{name}` exists already")))
    }

    pub async fn table(&self, workspace_id: &str, name: &str) -> Result<Option<StoredTable>> {
        let sql = "SELECT name, columns, rows, version, workspace_id FROM lookup_tables WHERE workspace_id = $1 AND name = $2";
        on_pool!(self, pool => sqlx::query(sql).bind(workspace_id).bind(name).fetch_optional(pool).await?
            .map(|row| table_from(&row)).transpose())
    }

    /// Every workspace's tables.
    pub async fn tables(&self) -> Result<Vec<StoredTable>> {
        let sql = "SELECT name, columns, rows, version, workspace_id FROM lookup_tables ORDER BY workspace_id, name";
        on_pool!(self, pool => sqlx::query(sql).fetch_all(pool).await?.iter().map(table_from).collect())
    }

    /// The version of every workspace's every table (workspace, name, version), to tell which
    /// copies in memory are old.
    pub async fn table_versions(&self) -> Result<Vec<(String, String, i64)>> {
        let sql = "SELECT workspace_id, name, version FROM lookup_tables";
        on_pool!(self, pool => sqlx::query(sql).fetch_all(pool).await?.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))).collect())
    }

    /// Replaces a table's rows, when its version is still `version`; the new version, or
    /// `None` when another writer came first (or there is no such table).
    pub async fn save_table_rows(
        &self,
        workspace_id: &str,
        name: &str,
        version: i64,
        rows: &[Value],
    ) -> Result<Option<i64>> {
        let sql = "UPDATE lookup_tables SET rows = $3, version = version + 1, updated_at = $4 \
                   WHERE name = $1 AND version = $2 AND workspace_id = $5";
        let text =
            serde_json::to_string(rows).map_err(|error| StoreError::Corrupt(error.to_string()))?;
        let changed = on_pool!(self, pool => sqlx::query(sql).bind(name).bind(version).bind(&text).bind(Utc::now()).bind(workspace_id)
            .execute(pool).await?.rows_affected());
        Ok((changed > 0).then_some(version + 1))
    }

    pub async fn delete_table(&self, workspace_id: &str, name: &str) -> Result<bool> {
        let sql = "DELETE FROM lookup_tables WHERE workspace_id = $1 AND name = $2";
        let deleted = on_pool!(self, pool => sqlx::query(sql).bind(workspace_id).bind(name).execute(pool).await?.rows_affected());
        Ok(deleted > 0)
    }
}

fn table_from<R: Row>(row: &R) -> Result<StoredTable>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let corrupt = |error: serde_json::Error| StoreError::Corrupt(format!("lookup table: {error}"));
    let columns: String = row.try_get(1)?;
    let rows: String = row.try_get(2)?;
    Ok(StoredTable {
        name: row.try_get(0)?,
        columns: serde_json::from_str(&columns).map_err(corrupt)?,
        rows: serde_json::from_str(&rows).map_err(corrupt)?,
        version: row.try_get(3)?,
        workspace_id: row.try_get(4)?,
    })
}
