//! Stored connections and the data keys that seal their secrets.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::Row;

use crate::Store;
use crate::db::{Backend, Result, StoreError, on_pool};
use crate::vault::{Sealed, StoredDataKey};

/// A connection as stored: its secret fields sealed, never in the clear.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredConnection {
    pub id: String,
    /// The workspace whose recipes may use the connection.
    pub workspace_id: String,
    pub name: String,
    pub connector: String,
    /// The fields that are not secret.
    pub fields: Map<String, Value>,
    /// The secret fields, as one sealed JSON object; `None` when there are none.
    pub secrets: Option<Sealed>,
    /// The budget of calls, as the API writes it; `None` for no limit.
    pub limits: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A connection's columns; queries add their own `WHERE`.
macro_rules! connection_select {
    ($rest:literal) => {
        concat!(
            "SELECT id, name, connector, fields, data_key_id, secrets, created_at, updated_at, limits, workspace_id \
             FROM connections ",
            $rest
        )
    };
}

impl Store {
    pub async fn create_connection(&self, connection: &StoredConnection) -> Result<()> {
        let sql = "INSERT INTO connections (id, name, connector, fields, data_key_id, secrets, created_at, updated_at, limits, workspace_id) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
        let fields = fields_text(&connection.fields)?;
        let (data_key_id, secrets) = sealed_parts(connection);
        on_pool!(self, pool => sqlx::query(sql)
            .bind(&connection.id).bind(&connection.name).bind(&connection.connector).bind(&fields)
            .bind(data_key_id).bind(secrets).bind(connection.created_at).bind(connection.updated_at)
            .bind(limits_text(connection)).bind(&connection.workspace_id)
            .execute(pool).await.map(|_| ()))
        .map_err(|error| name_taken(error, &connection.name))
    }

    /// Replaces a connection's name and fields; false when there is no such connection.
    pub async fn update_connection(&self, connection: &StoredConnection) -> Result<bool> {
        let sql = "UPDATE connections SET name = $2, fields = $3, data_key_id = $4, secrets = $5, updated_at = $6, limits = $7 \
                   WHERE id = $1";
        let fields = fields_text(&connection.fields)?;
        let (data_key_id, secrets) = sealed_parts(connection);
        let changed = on_pool!(self, pool => sqlx::query(sql)
            .bind(&connection.id).bind(&connection.name).bind(&fields)
            .bind(data_key_id).bind(secrets).bind(connection.updated_at).bind(limits_text(connection))
            .execute(pool).await.map(|done| done.rows_affected()))
        .map_err(|error| name_taken(error, &connection.name))?;
        Ok(changed > 0)
    }

    /// The connection of a workspace with this id, or else with this name.
    pub async fn connection(
        &self,
        workspace_id: &str,
        id_or_name: &str,
    ) -> Result<Option<StoredConnection>> {
        let sql = connection_select!(
            "WHERE workspace_id = $1 AND (id = $2 OR name = $2) ORDER BY id = $2 DESC LIMIT 1"
        );
        on_pool!(self, pool => sqlx::query(sql).bind(workspace_id).bind(id_or_name).fetch_optional(pool).await?
            .map(|row| connection_from(&row)).transpose())
    }

    /// The connection with this id, whichever workspace it belongs to.
    pub async fn connection_by_id(&self, id: &str) -> Result<Option<StoredConnection>> {
        let sql = connection_select!("WHERE id = $1");
        on_pool!(self, pool => sqlx::query(sql).bind(id).fetch_optional(pool).await?
            .map(|row| connection_from(&row)).transpose())
    }

    /// The connections of a workspace, by name.
    pub async fn connections(&self, workspace_id: &str) -> Result<Vec<StoredConnection>> {
        let sql = connection_select!("WHERE workspace_id = $1 ORDER BY name");
        on_pool!(self, pool => sqlx::query(sql).bind(workspace_id).fetch_all(pool).await?
            .iter().map(connection_from).collect())
    }

    pub async fn delete_connection(&self, id: &str) -> Result<bool> {
        let sql = "DELETE FROM connections WHERE id = $1";
        let deleted =
            on_pool!(self, pool => sqlx::query(sql).bind(id).execute(pool).await?.rows_affected());
        Ok(deleted > 0)
    }

    pub async fn data_keys(&self) -> Result<Vec<StoredDataKey>> {
        let sql = "SELECT id, workspace, master_key_id, sealed FROM data_keys ORDER BY created_at";
        on_pool!(self, pool => sqlx::query(sql).fetch_all(pool).await?
            .iter().map(data_key_from).collect())
    }

    pub async fn data_key(&self, id: &str) -> Result<Option<StoredDataKey>> {
        let sql = "SELECT id, workspace, master_key_id, sealed FROM data_keys WHERE id = $1";
        on_pool!(self, pool => sqlx::query(sql).bind(id).fetch_optional(pool).await?
            .map(|row| data_key_from(&row)).transpose())
    }

    pub async fn data_key_of_workspace(&self, workspace: &str) -> Result<Option<StoredDataKey>> {
        let sql = "SELECT id, workspace, master_key_id, sealed FROM data_keys WHERE workspace = $1";
        on_pool!(self, pool => sqlx::query(sql).bind(workspace).fetch_optional(pool).await?
            .map(|row| data_key_from(&row)).transpose())
    }

    /// Adds a workspace's data key; a conflict when the workspace has one already.
    pub async fn create_data_key(&self, key: &StoredDataKey) -> Result<()> {
        let sql = "INSERT INTO data_keys (id, workspace, master_key_id, sealed, created_at) \
                   VALUES ($1, $2, $3, $4, $5)";
        on_pool!(self, pool => sqlx::query(sql)
            .bind(&key.id).bind(&key.workspace).bind(&key.master_key_id).bind(&key.sealed).bind(Utc::now())
            .execute(pool).await.map(|_| ()))
        .map_err(|error| {
            StoreError::or_conflict(error, || {
                format!("workspace {} has a data key already", key.workspace)
            })
        })
    }

    /// Writes re-sealed data keys, all or none.
    pub async fn reseal_data_keys(&self, keys: &[StoredDataKey]) -> Result<()> {
        let sql = "UPDATE data_keys SET master_key_id = $2, sealed = $3 WHERE id = $1";
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for key in keys {
                sqlx::query(sql).bind(&key.id).bind(&key.master_key_id).bind(&key.sealed)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}

fn fields_text(fields: &Map<String, Value>) -> Result<String> {
    serde_json::to_string(fields).map_err(|error| StoreError::Corrupt(error.to_string()))
}

fn limits_text(connection: &StoredConnection) -> Option<String> {
    connection.limits.as_ref().map(Value::to_string)
}

fn sealed_parts(connection: &StoredConnection) -> (Option<&str>, Option<&str>) {
    match &connection.secrets {
        Some(sealed) => (Some(&sealed.data_key_id), Some(&sealed.text)),
        None => (None, None),
    }
}

fn name_taken(error: sqlx::Error, name: &str) -> StoreError {
    StoreError::or_conflict(error, || {
        format!("a connection named `{name}` exists already")
    })
}

fn connection_from<R: Row>(row: &R) -> Result<StoredConnection>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> DateTime<Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let fields: String = row.try_get(3)?;
    let fields = serde_json::from_str(&fields)
        .map_err(|error| StoreError::Corrupt(format!("connection fields: {error}")))?;
    let data_key_id: Option<String> = row.try_get(4)?;
    let secrets: Option<String> = row.try_get(5)?;
    Ok(StoredConnection {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        connector: row.try_get(2)?,
        fields,
        secrets: data_key_id
            .zip(secrets)
            .map(|(data_key_id, text)| Sealed { data_key_id, text }),
        created_at: row.try_get(6)?,
        updated_at: row.try_get(7)?,
        limits: row
            .try_get::<Option<String>, _>(8)?
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|error| StoreError::Corrupt(format!("connection limits: {error}")))?,
        workspace_id: row.try_get(9)?,
    })
}

fn data_key_from<R: Row>(row: &R) -> Result<StoredDataKey>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    Ok(StoredDataKey {
        id: row.try_get(0)?,
        workspace: row.try_get(1)?,
        master_key_id: row.try_get(2)?,
        sealed: row.try_get(3)?,
    })
}
