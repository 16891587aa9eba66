//! Who may do what: workspaces, the people in each with a role, and API tokens scoped to one
//! workspace and a role. A token acts with the lesser of its own role and its owner's role in
//! the workspace now, so that a person's demotion or removal reaches their tokens at once.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::db::{Backend, Result, StoreError, on_pool, user_from};
use crate::{Store, User, new_id};

/// The workspace everything belonged to before there were several.
pub const DEFAULT_WORKSPACE: &str = "default";

/// A person's or a token's role in a workspace, from the least to the most powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Sees recipes, connections (without secrets), lookup tables and the job list.
    Viewer,
    /// Also reads job records and runs, reruns and cancels jobs.
    Operator,
    /// Also edits recipes, connections and lookup tables.
    Builder,
    /// Also manages tokens and members, and reads the audit log.
    Admin,
    /// Also closes the workspace and hands ownership on.
    Owner,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Operator,
        Role::Builder,
        Role::Admin,
        Role::Owner,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Builder => "builder",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == text)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(crate) fn role_from(text: &str) -> Result<Role> {
    Role::parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown role `{text}`")))
}

/// What a new token may do.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub user_id: &'a str,
    pub workspace_id: &'a str,
    pub role: Role,
    pub name: &'a str,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A token as it is listed: never the token itself, which is not kept.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub user_id: String,
    pub user_email: String,
    pub workspace_id: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Who is behind a request, and what they may do.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub user: User,
    pub workspace_id: String,
    /// A token's: the lesser of the token's role and its owner's role in the workspace. A
    /// session's: the person's role there.
    pub role: Role,
    pub credential: Credential,
}

impl Caller {
    /// The id of the token or session the request came with.
    pub fn credential_id(&self) -> &str {
        match &self.credential {
            Credential::Token { id, .. } | Credential::Session { id, .. } => id,
        }
    }
}

/// What a request proved who it is with.
#[derive(Debug, Clone, PartialEq)]
pub enum Credential {
    /// An API token (`Authorization: Bearer`).
    Token {
        id: String,
        last_used_at: Option<DateTime<Utc>>,
    },
    /// A browser session (its cookie), whose changes must carry its CSRF token.
    Session {
        id: String,
        csrf_token: String,
        last_seen_at: DateTime<Utc>,
    },
}

impl Store {
    /// Adds a person to a workspace with a role, or changes their role there.
    pub async fn set_membership(
        &self,
        workspace_id: &str,
        user_id: &str,
        role: Role,
    ) -> Result<()> {
        let sql = "INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role";
        on_pool!(self, pool => {
            sqlx::query(sql).bind(workspace_id).bind(user_id).bind(role.as_str()).bind(Utc::now())
                .execute(pool).await?;
            Ok(())
        })
    }

    /// How many owners a workspace has.
    pub async fn owner_count(&self, workspace_id: &str) -> Result<i64> {
        let sql = "SELECT COUNT(*) FROM memberships WHERE workspace_id = $1 AND role = 'owner'";
        on_pool!(self, pool => Ok(sqlx::query(sql).bind(workspace_id).fetch_one(pool).await?.try_get(0)?))
    }

    /// A person's role in a workspace, if they belong to it.
    pub async fn membership(&self, workspace_id: &str, user_id: &str) -> Result<Option<Role>> {
        let sql = "SELECT role FROM memberships WHERE workspace_id = $1 AND user_id = $2";
        on_pool!(self, pool => {
            let row = sqlx::query(sql).bind(workspace_id).bind(user_id).fetch_optional(pool).await?;
            row.map(|row| role_from(&row.try_get::<String, _>(0)?)).transpose()
        })
    }

    /// Stores a new token by its hash (the token itself is never stored); its id.
    pub async fn create_scoped_token(
        &self,
        token_hash: &str,
        token: &NewToken<'_>,
    ) -> Result<String> {
        let id = new_id();
        let sql = "INSERT INTO api_tokens (id, user_id, token_hash, created_at, workspace_id, role, name, expires_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(&id).bind(token.user_id).bind(token_hash).bind(Utc::now())
                .bind(token.workspace_id).bind(token.role.as_str()).bind(token.name).bind(token.expires_at)
                .execute(pool).await?;
            Ok(id)
        })
    }

    /// The caller behind a token's hash: `None` for an unknown or expired token, or one whose
    /// owner no longer belongs to its workspace.
    pub async fn caller_by_token_hash(&self, token_hash: &str) -> Result<Option<Caller>> {
        let sql = "SELECT u.id, u.email, u.name, u.password_hash, u.created_at, t.id, t.workspace_id, t.role, m.role, t.expires_at, t.last_used_at \
                   FROM api_tokens t JOIN users u ON u.id = t.user_id \
                   JOIN memberships m ON m.workspace_id = t.workspace_id AND m.user_id = t.user_id \
                   WHERE t.token_hash = $1";
        on_pool!(self, pool => {
            let Some(row) = sqlx::query(sql).bind(token_hash).fetch_optional(pool).await? else {
                return Ok(None);
            };
            let expires_at: Option<DateTime<Utc>> = row.try_get(9)?;
            if expires_at.is_some_and(|at| at <= Utc::now()) {
                return Ok(None);
            }
            let token_role = role_from(&row.try_get::<String, _>(7)?)?;
            let member_role = role_from(&row.try_get::<String, _>(8)?)?;
            Ok(Some(Caller {
                user: user_from(&row)?,
                workspace_id: row.try_get(6)?,
                role: token_role.min(member_role),
                credential: Credential::Token { id: row.try_get(5)?, last_used_at: row.try_get(10)? },
            }))
        })
    }

    /// Notes that a token was used now.
    pub async fn token_used(&self, token_id: &str) -> Result<()> {
        let sql = "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1";
        on_pool!(self, pool => {
            sqlx::query(sql).bind(token_id).bind(Utc::now()).execute(pool).await?;
            Ok(())
        })
    }

    /// The tokens of a workspace, newest first; only `user_id`'s when given.
    pub async fn tokens(
        &self,
        workspace_id: &str,
        user_id: Option<&str>,
    ) -> Result<Vec<TokenInfo>> {
        self.tokens_where(Some(workspace_id), user_id).await
    }

    /// Every token of a person, in every workspace, newest first.
    pub async fn tokens_of(&self, user_id: &str) -> Result<Vec<TokenInfo>> {
        self.tokens_where(None, Some(user_id)).await
    }

    async fn tokens_where(
        &self,
        workspace_id: Option<&str>,
        user_id: Option<&str>,
    ) -> Result<Vec<TokenInfo>> {
        let sql = "SELECT t.id, t.name, t.user_id, u.email, t.workspace_id, t.role, t.created_at, t.expires_at, t.last_used_at \
                   FROM api_tokens t JOIN users u ON u.id = t.user_id \
                   WHERE ($1 IS NULL OR t.workspace_id = $1) AND ($2 IS NULL OR t.user_id = $2) ORDER BY t.created_at DESC, t.id DESC";
        on_pool!(self, pool => {
            let rows = sqlx::query(sql).bind(workspace_id).bind(user_id).fetch_all(pool).await?;
            rows.iter().map(|row| Ok(TokenInfo {
                id: row.try_get(0)?,
                name: row.try_get(1)?,
                user_id: row.try_get(2)?,
                user_email: row.try_get(3)?,
                workspace_id: row.try_get(4)?,
                role: role_from(&row.try_get::<String, _>(5)?)?,
                created_at: row.try_get(6)?,
                expires_at: row.try_get(7)?,
                last_used_at: row.try_get(8)?,
            })).collect()
        })
    }

    /// Deletes a token of a workspace; false when there is no such token there.
    pub async fn revoke_token(&self, workspace_id: &str, token_id: &str) -> Result<bool> {
        let sql = "DELETE FROM api_tokens WHERE id = $1 AND workspace_id = $2";
        on_pool!(self, pool => {
            Ok(sqlx::query(sql).bind(token_id).bind(workspace_id).execute(pool).await?.rows_affected() > 0)
        })
    }
}
