//! A person's rights over what Weft holds about them: what they agreed to be mailed about, an
//! export of everything about them, and the deletion of their account after a grace period,
//! which erases their personal data and leaves a pseudonym in the audit log.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::Store;
use crate::db::{Backend, Result, on_pool};

/// What a person agreed to be mailed about besides service notices, and since when; `None`:
/// not agreed (the default).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Consent {
    pub marketing: Option<DateTime<Utc>>,
    pub product_news: Option<DateTime<Utc>>,
}

/// A session as its person may see it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionInfo {
    pub id: String,
    pub workspace_id: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Store {
    pub async fn consent(&self, user_id: &str) -> Result<Consent> {
        let sql = "SELECT marketing_consent_at, product_news_consent_at FROM users WHERE id = $1";
        on_pool!(self, pool => {
            let row = sqlx::query(sql).bind(user_id).fetch_optional(pool).await?;
            Ok(match row {
                Some(row) => Consent { marketing: row.try_get(0)?, product_news: row.try_get(1)? },
                None => Consent::default(),
            })
        })
    }

    /// Records what a person agrees to now; an agreement kept keeps its first time.
    pub async fn set_consent(
        &self,
        user_id: &str,
        marketing: bool,
        product_news: bool,
    ) -> Result<Consent> {
        let sql = "UPDATE users SET \
                   marketing_consent_at = CASE WHEN $2 THEN COALESCE(marketing_consent_at, $4) ELSE NULL END, \
                   product_news_consent_at = CASE WHEN $3 THEN COALESCE(product_news_consent_at, $4) ELSE NULL END \
                   WHERE id = $1";
        on_pool!(self, pool => sqlx::query(sql).bind(user_id).bind(marketing).bind(product_news).bind(Utc::now())
            .execute(pool).await.map(|_| ()))?;
        self.consent(user_id).await
    }

    /// A person's sessions, newest first.
    pub async fn sessions_of(&self, user_id: &str) -> Result<Vec<SessionInfo>> {
        let sql = "SELECT id, workspace_id, created_at, last_seen_at, ip, user_agent FROM sessions \
                   WHERE user_id = $1 ORDER BY created_at DESC";
        on_pool!(self, pool => sqlx::query(sql).bind(user_id).fetch_all(pool).await?.iter().map(|row| Ok(SessionInfo {
            id: row.try_get(0)?,
            workspace_id: row.try_get(1)?,
            created_at: row.try_get(2)?,
            last_seen_at: row.try_get(3)?,
            ip: row.try_get(4)?,
            user_agent: row.try_get(5)?,
        })).collect())
    }

    /// When the person's account is to be deleted, if they asked.
    pub async fn deletion_due(&self, user_id: &str) -> Result<Option<DateTime<Utc>>> {
        let sql = "SELECT deletion_due_at FROM users WHERE id = $1";
        on_pool!(self, pool => {
            let row = sqlx::query(sql).bind(user_id).fetch_optional(pool).await?;
            Ok(match row { Some(row) => row.try_get(0)?, None => None })
        })
    }

    /// Sets (or, with `None`, cancels) the time the account is deleted.
    pub async fn schedule_deletion(&self, user_id: &str, due: Option<DateTime<Utc>>) -> Result<()> {
        let sql = "UPDATE users SET deletion_due_at = $2 WHERE id = $1";
        on_pool!(self, pool => sqlx::query(sql).bind(user_id).bind(due).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// The accounts whose deletion is due at `now`.
    pub async fn deletions_due(&self, now: DateTime<Utc>) -> Result<Vec<String>> {
        let sql = "SELECT id FROM users WHERE deletion_due_at IS NOT NULL AND deletion_due_at <= $1 ORDER BY id";
        on_pool!(self, pool => sqlx::query(sql).bind(now).fetch_all(pool).await?.iter()
            .map(|row| Ok(row.try_get(0)?)).collect())
    }

    /// Erases an account: the person's row, sessions, tokens, memberships and links go; in the
    /// audit log, their email becomes `pseudonym` wherever it appears and the addresses and
    /// user agents of what they did are forgotten. The events keep the account's id, which
    /// names nobody once the account is gone.
    pub async fn erase_account(&self, user_id: &str, pseudonym: &str) -> Result<bool> {
        let find =
            "SELECT email, name, phone, username, notification_emails FROM users WHERE id = $1";
        let actor = "UPDATE audit_events SET actor = $2, ip = NULL, user_agent = NULL \
                     WHERE actor_id = $1 OR lower(actor) = lower($3)";
        // Emails name one person wherever they appear; a name or a phone number is replaced
        // only in the events by or about the person.
        let anywhere = "UPDATE audit_events SET details = REPLACE(details, $2, $1) \
                        WHERE details LIKE '%' || $2 || '%'";
        let about = "UPDATE audit_events SET details = REPLACE(details, $2, $1) \
                     WHERE (actor_id = $3 OR target_id = $3) AND details LIKE '%' || $2 || '%'";
        let links = "DELETE FROM account_links WHERE lower(email) = lower($1) OR created_by = $2";
        let owned = [
            "DELETE FROM sessions WHERE user_id = $1",
            "DELETE FROM api_tokens WHERE user_id = $1",
            "DELETE FROM memberships WHERE user_id = $1",
            "DELETE FROM users WHERE id = $1",
        ];
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let Some(row) = sqlx::query(find).bind(user_id).fetch_optional(&mut *tx).await? else {
                return Ok(false);
            };
            let email: String = row.try_get(0)?;
            let addresses: Option<String> = row.try_get(4)?;
            let mut emails = vec![email.clone()];
            emails.extend(addresses.and_then(|text| serde_json::from_str::<Vec<String>>(&text).ok()).unwrap_or_default());
            let others: Vec<String> = [row.try_get::<String, _>(1).ok(), row.try_get(2)?, row.try_get(3)?]
                .into_iter().flatten().filter(|value| value.chars().count() >= 3).collect();
            sqlx::query(actor).bind(user_id).bind(pseudonym).bind(&email).execute(&mut *tx).await?;
            for value in &emails {
                sqlx::query(anywhere).bind(pseudonym).bind(value).execute(&mut *tx).await?;
            }
            for value in &others {
                sqlx::query(about).bind(pseudonym).bind(value).bind(user_id).execute(&mut *tx).await?;
            }
            sqlx::query(links).bind(&email).bind(user_id).execute(&mut *tx).await?;
            for sql in owned {
                sqlx::query(sql).bind(user_id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// The open workspaces (by name) of which the person is the only owner: their account
    /// cannot go before another owner is named or the workspace is closed.
    pub async fn workspaces_needing(&self, user_id: &str) -> Result<Vec<String>> {
        let sql = "SELECT w.name FROM memberships m JOIN workspaces w ON w.id = m.workspace_id \
                   WHERE m.user_id = $1 AND m.role = 'owner' AND w.close_due_at IS NULL AND NOT EXISTS ( \
                   SELECT 1 FROM memberships o WHERE o.workspace_id = m.workspace_id \
                   AND o.user_id <> $1 AND o.role = 'owner') ORDER BY w.name";
        on_pool!(self, pool => sqlx::query(sql).bind(user_id).fetch_all(pool).await?.iter()
            .map(|row| Ok(row.try_get(0)?)).collect())
    }

    /// Revokes every API token of a person; how many there were.
    pub async fn revoke_tokens_of(&self, user_id: &str) -> Result<u64> {
        let sql = "DELETE FROM api_tokens WHERE user_id = $1";
        on_pool!(self, pool => Ok(sqlx::query(sql).bind(user_id).execute(pool).await?.rows_affected()))
    }

    /// Erases the accounts whose deletion is due at `now`, except those still the only owner
    /// of a workspace (they wait, and are tried again); the ids of those erased.
    pub async fn erase_due_accounts(&self, now: DateTime<Utc>) -> Result<Vec<String>> {
        let mut erased = Vec::new();
        for user_id in self.deletions_due(now).await? {
            if !self.workspaces_needing(&user_id).await?.is_empty() {
                continue;
            }
            if self.erase_account(&user_id, &pseudonym(&user_id)).await? {
                erased.push(user_id);
            }
        }
        if !erased.is_empty() {
            self.reclaim_space().await?;
        }
        Ok(erased)
    }
}

/// What an erased person is called in the audit log: their account's random part, which
/// names nobody once the account is gone.
pub fn pseudonym(user_id: &str) -> String {
    let random = user_id.rsplit('-').next().unwrap_or(user_id);
    format!("deleted-user-{random}")
}
