//! Closing a workspace: its owner asks, its recipes stop, and after a grace period everything
//! of it is deleted (jobs in batches, then the rest in one transaction), leaving only a final
//! report of what went.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::Row;

use crate::Store;
use crate::db::{Backend, Result, on_pool};

/// Jobs deleted in one statement while a workspace is deleted.
const JOB_BATCH: i64 = 500;

/// What went with a closed workspace, in the order it went.
const DELETED_WITH_THE_WORKSPACE: &[(&str, &str)] = &[
    (
        "audit_events",
        "DELETE FROM audit_events WHERE workspace_id = $1",
    ),
    ("sessions", "DELETE FROM sessions WHERE workspace_id = $1"),
    (
        "invitations",
        "DELETE FROM account_links WHERE workspace_id = $1",
    ),
    (
        "api_tokens",
        "DELETE FROM api_tokens WHERE workspace_id = $1",
    ),
    (
        "lookup_tables",
        "DELETE FROM lookup_tables WHERE workspace_id = $1",
    ),
    (
        "connections",
        "DELETE FROM connections WHERE workspace_id = $1",
    ),
    ("recipes", "DELETE FROM recipes WHERE workspace_id = $1"),
    (
        "library_recipes",
        "DELETE FROM recipe_library WHERE workspace_id = $1",
    ),
    ("members", "DELETE FROM memberships WHERE workspace_id = $1"),
    (
        "settings",
        "DELETE FROM retention_settings WHERE workspace_id = $1",
    ),
    (
        "settings",
        "DELETE FROM mask_settings WHERE workspace_id = $1",
    ),
    (
        "settings",
        "DELETE FROM sso_settings WHERE workspace_id = $1",
    ),
    ("usage", "DELETE FROM usage_months WHERE workspace_id = $1"),
    ("usage", "DELETE FROM usage_entries WHERE workspace_id = $1"),
    ("usage", "DELETE FROM usage_notices WHERE workspace_id = $1"),
    ("usage", "DELETE FROM quota_holds WHERE workspace_id = $1"),
    (
        "settings",
        "DELETE FROM workspace_plans WHERE workspace_id = $1",
    ),
    (
        "billing",
        "DELETE FROM billing_subscriptions WHERE workspace_id = $1",
    ),
    (
        "billing",
        "DELETE FROM billing_invoices WHERE workspace_id = $1",
    ),
    (
        "billing",
        "DELETE FROM billing_payments WHERE workspace_id = $1",
    ),
    ("workspace", "DELETE FROM workspaces WHERE id = $1"),
];

impl Store {
    /// When a workspace is to be deleted, if its owner closed it.
    pub async fn workspace_close_due(&self, workspace_id: &str) -> Result<Option<DateTime<Utc>>> {
        let sql = "SELECT close_due_at FROM workspaces WHERE id = $1";
        on_pool!(self, pool => {
            let row = sqlx::query(sql).bind(workspace_id).fetch_optional(pool).await?;
            Ok(match row { Some(row) => row.try_get(0)?, None => None })
        })
    }

    /// Closes a workspace to be deleted at `due` (or, with `None`, opens it again), and
    /// disables its recipes when it closes; how many recipes were disabled.
    pub async fn set_workspace_close(
        &self,
        workspace_id: &str,
        due: Option<DateTime<Utc>>,
    ) -> Result<u64> {
        let close = "UPDATE workspaces SET close_due_at = $2 WHERE id = $1";
        let disable = "UPDATE recipes SET enabled = FALSE WHERE workspace_id = $1 AND enabled";
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(close).bind(workspace_id).bind(due).execute(&mut *tx).await?;
            let disabled = if due.is_some() {
                sqlx::query(disable).bind(workspace_id).execute(&mut *tx).await?.rows_affected()
            } else {
                0
            };
            tx.commit().await?;
            Ok(disabled)
        })
    }

    /// The workspaces whose deletion is due at `now`.
    pub async fn workspaces_due_to_close(&self, now: DateTime<Utc>) -> Result<Vec<String>> {
        let sql = "SELECT id FROM workspaces WHERE close_due_at IS NOT NULL AND close_due_at <= $1 ORDER BY id";
        on_pool!(self, pool => sqlx::query(sql).bind(now).fetch_all(pool).await?.iter()
            .map(|row| Ok(row.try_get(0)?)).collect())
    }

    /// Deletes a workspace and everything of it, and keeps the final report, which it returns
    /// (`None` when there is no such workspace).
    pub async fn delete_workspace(&self, workspace_id: &str) -> Result<Option<Value>> {
        let Some(name) = self.workspace_name(workspace_id).await? else {
            return Ok(None);
        };
        let jobs =
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE workspace_id = $1 LIMIT $2)";
        let mut jobs_deleted = 0;
        loop {
            let deleted = on_pool!(self, pool => sqlx::query(jobs).bind(workspace_id).bind(JOB_BATCH)
                .execute(pool).await?.rows_affected());
            jobs_deleted += deleted;
            if deleted == 0 {
                break;
            }
        }
        let mut counts = serde_json::Map::new();
        counts.insert("jobs".to_owned(), json!(jobs_deleted));
        let closed_at = Utc::now();
        let keep =
            "INSERT INTO closed_workspaces (id, name, closed_at, report) VALUES ($1, $2, $3, $4)";
        let report = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for (what, sql) in DELETED_WITH_THE_WORKSPACE {
                let deleted = sqlx::query(*sql).bind(workspace_id).execute(&mut *tx).await?.rows_affected();
                let count = counts.entry((*what).to_owned()).or_insert(json!(0));
                *count = json!(count.as_u64().unwrap_or(0) + deleted);
            }
            let report = json!({
                "workspace_id": workspace_id,
                "name": name,
                "closed_at": closed_at,
                "deleted": counts,
            });
            sqlx::query(keep).bind(workspace_id).bind(&name).bind(closed_at).bind(report.to_string())
                .execute(&mut *tx).await?;
            tx.commit().await?;
            report
        });
        self.reclaim_space().await?;
        Ok(Some(report))
    }

    /// The final reports of the workspaces deleted, newest first.
    pub async fn closed_workspaces(&self) -> Result<Vec<Value>> {
        let sql = "SELECT report FROM closed_workspaces ORDER BY closed_at DESC";
        on_pool!(self, pool => sqlx::query(sql).fetch_all(pool).await?.iter().map(|row| {
            let text: String = row.try_get(0)?;
            Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
        }).collect())
    }
}
