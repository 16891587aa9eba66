//! Browser sessions: made at sign-in, found by the SHA-256 of their cookie, ended by signing
//! out (one, or every one of a person), by idling past a limit or at their absolute end.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::access::{Caller, Credential, role_from};
use crate::db::{Backend, Result, on_pool, user_from};
use crate::{Store, new_id};

/// A session to make.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub token_hash: &'a str,
    pub user_id: &'a str,
    pub workspace_id: &'a str,
    pub csrf_token: &'a str,
    pub expires_at: DateTime<Utc>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

impl Store {
    /// Stores a new session; its id.
    pub async fn create_session(&self, session: &NewSession<'_>) -> Result<String> {
        let id = new_id();
        let now = Utc::now();
        let sql = "INSERT INTO sessions (id, token_hash, user_id, workspace_id, csrf_token, created_at, last_seen_at, expires_at, ip, user_agent) \
                   VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9)";
        on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(&id).bind(session.token_hash).bind(session.user_id).bind(session.workspace_id)
                .bind(session.csrf_token).bind(now).bind(session.expires_at)
                .bind(session.ip).bind(session.user_agent)
                .execute(pool).await?;
            Ok(id)
        })
    }

    /// The caller behind a session cookie's hash: `None` when the session is unknown, past
    /// its end, idle since before `idle_since`, or its person left its workspace.
    pub async fn caller_by_session_hash(
        &self,
        token_hash: &str,
        idle_since: DateTime<Utc>,
    ) -> Result<Option<Caller>> {
        let sql = "SELECT u.id, u.email, u.name, u.password_hash, u.created_at, s.id, s.workspace_id, m.role, s.csrf_token, s.last_seen_at, s.expires_at \
                   FROM sessions s JOIN users u ON u.id = s.user_id \
                   JOIN memberships m ON m.workspace_id = s.workspace_id AND m.user_id = s.user_id \
                   WHERE s.token_hash = $1";
        on_pool!(self, pool => {
            let Some(row) = sqlx::query(sql).bind(token_hash).fetch_optional(pool).await? else {
                return Ok(None);
            };
            let last_seen_at: DateTime<Utc> = row.try_get(9)?;
            let expires_at: DateTime<Utc> = row.try_get(10)?;
            if expires_at <= Utc::now() || last_seen_at < idle_since {
                return Ok(None);
            }
            Ok(Some(Caller {
                user: user_from(&row)?,
                workspace_id: row.try_get(6)?,
                role: role_from(&row.try_get::<String, _>(7)?)?,
                credential: Credential::Session {
                    id: row.try_get(5)?,
                    csrf_token: row.try_get(8)?,
                    last_seen_at,
                },
            }))
        })
    }

    /// Notes that a session was used now (it is not idle).
    pub async fn session_seen(&self, session_id: &str) -> Result<()> {
        let sql = "UPDATE sessions SET last_seen_at = $2 WHERE id = $1";
        on_pool!(self, pool => {
            sqlx::query(sql).bind(session_id).bind(Utc::now()).execute(pool).await?;
            Ok(())
        })
    }

    /// Ends one session.
    pub async fn end_session(&self, session_id: &str) -> Result<bool> {
        let sql = "DELETE FROM sessions WHERE id = $1";
        on_pool!(self, pool => Ok(sqlx::query(sql).bind(session_id).execute(pool).await?.rows_affected() > 0))
    }

    /// Ends every session of a person; how many there were.
    pub async fn end_sessions_of(&self, user_id: &str) -> Result<u64> {
        let sql = "DELETE FROM sessions WHERE user_id = $1";
        on_pool!(self, pool => Ok(sqlx::query(sql).bind(user_id).execute(pool).await?.rows_affected()))
    }

    /// Ends every session of a person but `keep`; how many ended.
    pub async fn end_other_sessions(&self, user_id: &str, keep: Option<&str>) -> Result<u64> {
        let sql = "DELETE FROM sessions WHERE user_id = $1 AND ($2 IS NULL OR id <> $2)";
        on_pool!(self, pool => Ok(sqlx::query(sql).bind(user_id).bind(keep).execute(pool).await?.rows_affected()))
    }

    /// Deletes the sessions past their end or idle since before `idle_since`.
    pub async fn forget_old_sessions(&self, idle_since: DateTime<Utc>) -> Result<u64> {
        let sql = "DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at < $2";
        on_pool!(self, pool => Ok(sqlx::query(sql).bind(Utc::now()).bind(idle_since).execute(pool).await?.rows_affected()))
    }

    /// Changes a person's password hash.
    pub async fn set_password_hash(&self, user_id: &str, password_hash: &str) -> Result<bool> {
        let sql = "UPDATE users SET password_hash = $2 WHERE id = $1";
        on_pool!(self, pool => Ok(sqlx::query(sql).bind(user_id).bind(password_hash).execute(pool).await?.rows_affected() > 0))
    }
}
