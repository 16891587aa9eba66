//! Links mailed to people (or printed once) that let them do one thing: reset a password,
//! confirm an email address, join a workspace, or make the first owner. A link's secret is
//! never stored, only its SHA-256; a link is taken once and ends when it expires.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::access::{Role, role_from};
use crate::db::{Backend, Result, StoreError, on_pool};
use crate::{Store, User};

/// What a link lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    PasswordReset,
    EmailCheck,
    Invitation,
    Setup,
}

impl LinkPurpose {
    fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::PasswordReset => "password_reset",
            LinkPurpose::EmailCheck => "email_check",
            LinkPurpose::Invitation => "invitation",
            LinkPurpose::Setup => "setup",
        }
    }
}

/// A link as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountLink {
    pub purpose: LinkPurpose,
    pub email: String,
    /// An invitation's workspace and role.
    pub workspace_id: Option<String>,
    pub role: Option<Role>,
    /// Who made it (a person's id), when a person did.
    pub created_by: Option<String>,
    pub expires_at: DateTime<Utc>,
}

impl Store {
    /// Keeps a link by the hash of its secret.
    pub async fn save_account_link(&self, token_hash: &str, link: &AccountLink) -> Result<()> {
        let sql = "INSERT INTO account_links (token_hash, purpose, email, workspace_id, role, created_by, created_at, expires_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(token_hash).bind(link.purpose.as_str()).bind(&link.email)
                .bind(&link.workspace_id).bind(link.role.map(Role::as_str)).bind(&link.created_by)
                .bind(Utc::now()).bind(link.expires_at)
                .execute(pool).await?;
            Ok(())
        })
    }

    /// Takes a link of `purpose` out of the store, once: `None` when it is unknown, of
    /// another purpose, taken already or expired.
    pub async fn take_account_link(
        &self,
        token_hash: &str,
        purpose: LinkPurpose,
    ) -> Result<Option<AccountLink>> {
        let sql = "DELETE FROM account_links WHERE token_hash = $1 AND purpose = $2 \
                   RETURNING email, workspace_id, role, created_by, expires_at";
        on_pool!(self, pool => {
            let Some(row) = sqlx::query(sql).bind(token_hash).bind(purpose.as_str()).fetch_optional(pool).await? else {
                return Ok(None);
            };
            let expires_at: DateTime<Utc> = row.try_get(4)?;
            if expires_at <= Utc::now() {
                return Ok(None);
            }
            let role: Option<String> = row.try_get(2)?;
            Ok(Some(AccountLink {
                purpose,
                email: row.try_get(0)?,
                workspace_id: row.try_get(1)?,
                role: role.as_deref().map(role_from).transpose()?,
                created_by: row.try_get(3)?,
                expires_at,
            }))
        })
    }

    /// Deletes the links that expired.
    pub async fn forget_expired_links(&self) -> Result<u64> {
        let sql = "DELETE FROM account_links WHERE expires_at <= $1";
        on_pool!(self, pool => Ok(sqlx::query(sql).bind(Utc::now()).execute(pool).await?.rows_affected()))
    }

    /// How many people there are: none before the first owner is made.
    pub async fn user_count(&self) -> Result<i64> {
        on_pool!(self, pool => Ok(sqlx::query("SELECT COUNT(*) FROM users").fetch_one(pool).await?.try_get(0)?))
    }

    /// Notes that a person's email address was confirmed now.
    pub async fn email_verified(&self, user_id: &str) -> Result<()> {
        let sql =
            "UPDATE users SET email_verified_at = $2 WHERE id = $1 AND email_verified_at IS NULL";
        on_pool!(self, pool => {
            sqlx::query(sql).bind(user_id).bind(Utc::now()).execute(pool).await?;
            Ok(())
        })
    }

    /// When a person's email address was confirmed, if it was.
    pub async fn email_verified_at(&self, user: &User) -> Result<Option<DateTime<Utc>>> {
        let sql = "SELECT email_verified_at FROM users WHERE id = $1";
        on_pool!(self, pool => {
            let row = sqlx::query(sql).bind(&user.id).fetch_optional(pool).await?
                .ok_or_else(|| StoreError::Corrupt(format!("no user {}", user.id)))?;
            Ok(row.try_get(0)?)
        })
    }
}
