//! The audit log: one row per thing done in a workspace (who, what, to what, from where, and
//! a change's before and after without secrets), read newest first and kept for a while.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;

use crate::db::{Backend, Result, StoreError, on_pool};
use crate::{Store, new_id};

/// One thing done.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub id: String,
    pub workspace_id: String,
    pub at: DateTime<Utc>,
    /// The person's id; `None` for the command line or the server itself.
    pub actor_id: Option<String>,
    /// The person's email, or what acted (`weft admin`).
    pub actor: String,
    /// Such as `recipe.update` or `token.revoke`.
    pub action: String,
    pub target_id: Option<String>,
    pub details: Option<Value>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl AuditEvent {
    /// An event of now, by `actor`, with a new id.
    pub fn new(
        workspace_id: &str,
        actor_id: Option<&str>,
        actor: &str,
        action: &str,
    ) -> AuditEvent {
        AuditEvent {
            id: new_id(),
            workspace_id: workspace_id.to_owned(),
            at: Utc::now(),
            actor_id: actor_id.map(str::to_owned),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target_id: None,
            details: None,
            ip: None,
            user_agent: None,
        }
    }
}

/// Which events to read: all filters are optional; `before` is the id the page starts after.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub target_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub before: Option<String>,
    pub limit: i64,
}

impl Store {
    pub async fn record_audit(&self, event: &AuditEvent) -> Result<()> {
        let sql = "INSERT INTO audit_events (id, workspace_id, at, actor_id, actor, action, target_id, details, ip, user_agent) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
        on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(&event.id).bind(&event.workspace_id).bind(event.at).bind(&event.actor_id)
                .bind(&event.actor).bind(&event.action).bind(&event.target_id)
                .bind(event.details.as_ref().map(Value::to_string))
                .bind(&event.ip).bind(&event.user_agent)
                .execute(pool).await?;
            Ok(())
        })
    }

    /// The actions a workspace's log holds, in order: what its filter can ask for.
    pub async fn audit_actions(&self, workspace_id: &str) -> Result<Vec<String>> {
        let sql =
            "SELECT DISTINCT action FROM audit_events WHERE workspace_id = $1 ORDER BY action";
        on_pool!(self, pool => Ok(sqlx::query_scalar(sql).bind(workspace_id).fetch_all(pool).await?))
    }

    /// A workspace's events, newest first.
    pub async fn audit_events(
        &self,
        workspace_id: &str,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEvent>> {
        let sql = "SELECT id, workspace_id, at, actor_id, actor, action, target_id, details, ip, user_agent FROM audit_events \
                   WHERE workspace_id = $1 AND ($2 IS NULL OR action = $2) AND ($3 IS NULL OR actor = $3) \
                   AND ($4 IS NULL OR target_id = $4) AND ($5 IS NULL OR at >= $5) AND ($6 IS NULL OR at < $6) \
                   AND ($7 IS NULL OR id < $7) ORDER BY id DESC LIMIT $8";
        on_pool!(self, pool => {
            let rows = sqlx::query(sql)
                .bind(workspace_id).bind(&filter.action).bind(&filter.actor).bind(&filter.target_id)
                .bind(filter.since).bind(filter.until).bind(&filter.before).bind(filter.limit)
                .fetch_all(pool).await?;
            rows.iter().map(event_from).collect()
        })
    }

    /// Every event a person did or was the target of, in every workspace (failed sign-ins
    /// with their email included), newest first, at most `limit`.
    pub async fn audit_events_about(
        &self,
        user_id: &str,
        email: &str,
        limit: i64,
    ) -> Result<Vec<AuditEvent>> {
        let sql = "SELECT id, workspace_id, at, actor_id, actor, action, target_id, details, ip, user_agent FROM audit_events \
                   WHERE actor_id = $1 OR target_id = $1 OR lower(actor) = lower($2) ORDER BY id DESC LIMIT $3";
        on_pool!(self, pool => sqlx::query(sql).bind(user_id).bind(email).bind(limit)
            .fetch_all(pool).await?.iter().map(event_from).collect())
    }

    /// Deletes the events older than `before`, of every workspace; how many went.
    pub async fn forget_audit_before(&self, before: DateTime<Utc>) -> Result<u64> {
        let sql = "DELETE FROM audit_events WHERE at < $1";
        on_pool!(self, pool => Ok(sqlx::query(sql).bind(before).execute(pool).await?.rows_affected()))
    }
}

fn event_from<R: Row>(row: &R) -> Result<AuditEvent>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> DateTime<Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let details: Option<String> = row.try_get(7)?;
    Ok(AuditEvent {
        id: row.try_get(0)?,
        workspace_id: row.try_get(1)?,
        at: row.try_get(2)?,
        actor_id: row.try_get(3)?,
        actor: row.try_get(4)?,
        action: row.try_get(5)?,
        target_id: row.try_get(6)?,
        details: details
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|error| StoreError::Corrupt(format!("audit details: {error}")))?,
        ip: row.try_get(8)?,
        user_agent: row.try_get(9)?,
    })
}
