//! Notices of failed jobs waiting to be mailed, and who an owner's notices go to.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::Store;
use crate::db::{Backend, Result, on_pool};

/// A failed job whose notice is still to be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureNotice {
    pub job_id: String,
    pub workspace_id: String,
    pub recipe_id: String,
    pub recipe_name: String,
    pub failed_at: DateTime<Utc>,
}

impl Store {
    /// The notices to send, oldest first, at most `limit`.
    pub async fn pending_failure_notices(&self, limit: i64) -> Result<Vec<FailureNotice>> {
        let sql = "SELECT job_id, workspace_id, recipe_id, recipe_name, failed_at FROM failure_notices \
                   ORDER BY failed_at, job_id LIMIT $1";
        on_pool!(self, pool => sqlx::query(sql).bind(limit).fetch_all(pool).await?.iter().map(|row| Ok(FailureNotice {
            job_id: row.try_get(0)?,
            workspace_id: row.try_get(1)?,
            recipe_id: row.try_get(2)?,
            recipe_name: row.try_get(3)?,
            failed_at: row.try_get::<crate::job_time::JobTime, _>(4)?.0,
        })).collect())
    }

    /// Forgets notices once sent.
    pub async fn forget_failure_notices(&self, job_ids: &[String]) -> Result<()> {
        let sql = "DELETE FROM failure_notices WHERE job_id = $1";
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for id in job_ids {
                sqlx::query(sql).bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Where a workspace's owners get notices: each owner's notification addresses, or their
    /// email when they have none.
    pub async fn owner_notice_addresses(&self, workspace_id: &str) -> Result<Vec<String>> {
        let sql = "SELECT u.email, u.notification_emails FROM memberships m JOIN users u ON u.id = m.user_id \
                   WHERE m.workspace_id = $1 AND m.role = 'owner' ORDER BY u.email";
        on_pool!(self, pool => {
            let mut addresses = Vec::new();
            for row in sqlx::query(sql).bind(workspace_id).fetch_all(pool).await? {
                let email: String = row.try_get(0)?;
                let extra: Option<String> = row.try_get(1)?;
                let extra: Vec<String> = extra
                    .and_then(|text| serde_json::from_str(&text).ok())
                    .unwrap_or_default();
                if extra.is_empty() {
                    addresses.push(email);
                } else {
                    addresses.extend(extra);
                }
            }
            Ok(addresses)
        })
    }
}
