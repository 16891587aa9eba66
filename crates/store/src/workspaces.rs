//! Workspaces: each holds its own recipes, connections, lookup tables, jobs and tokens, and
//! the people in it with a role each.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::Store;
use crate::access::{Role, role_from};
use crate::db::{Backend, Result, StoreError, on_pool};

/// A workspace as one of its members sees it in the list of theirs.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceOf {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// Makes a workspace with `owner` as its first owner, in one transaction; a conflict when
    /// the id is taken.
    pub async fn create_workspace(&self, id: &str, name: &str, owner: &str) -> Result<()> {
        let workspace = "INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3)";
        let member = "INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, 'owner', $3)";
        let now = Utc::now();
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(workspace).bind(id).bind(name).bind(now).execute(&mut *tx).await
                .map_err(|error| StoreError::or_conflict(error, || format!("the workspace id `{id}` is taken")))?;
            sqlx::query(member).bind(id).bind(owner).bind(now).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// A workspace's name, if it exists.
    pub async fn workspace_name(&self, id: &str) -> Result<Option<String>> {
        let sql = "SELECT name FROM workspaces WHERE id = $1";
        on_pool!(self, pool => sqlx::query(sql).bind(id).fetch_optional(pool).await?
            .map(|row| row.try_get(0).map_err(StoreError::from)).transpose())
    }

    /// The workspaces a person belongs to, with their role in each, by name.
    pub async fn workspaces_of(&self, user_id: &str) -> Result<Vec<WorkspaceOf>> {
        let sql = "SELECT w.id, w.name, m.role, w.created_at FROM memberships m \
                   JOIN workspaces w ON w.id = m.workspace_id WHERE m.user_id = $1 ORDER BY w.name, w.id";
        on_pool!(self, pool => sqlx::query(sql).bind(user_id).fetch_all(pool).await?.iter().map(|row| {
            Ok(WorkspaceOf {
                id: row.try_get(0)?,
                name: row.try_get(1)?,
                role: role_from(&row.try_get::<String, _>(2)?)?,
                created_at: row.try_get(3)?,
            })
        }).collect())
    }

    /// Moves a browser session to another workspace of its person; false when the session
    /// is gone or the person is not a member there.
    pub async fn switch_session(&self, session_id: &str, workspace_id: &str) -> Result<bool> {
        let sql = "UPDATE sessions SET workspace_id = $2 WHERE id = $1 AND EXISTS \
                   (SELECT 1 FROM memberships m WHERE m.workspace_id = $2 AND m.user_id = sessions.user_id)";
        let done = on_pool!(self, pool => sqlx::query(sql).bind(session_id).bind(workspace_id)
            .execute(pool).await?.rows_affected());
        Ok(done > 0)
    }
}
