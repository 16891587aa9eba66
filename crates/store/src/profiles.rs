//! People's optional profile fields and photos, and the members of a workspace.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::Store;
use crate::access::{Role, role_from};
use crate::db::{Backend, Result, StoreError, on_pool};

/// The optional fields of a person's profile.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    pub phone: Option<String>,
    pub title: Option<String>,
    pub company: Option<String>,
    pub company_size: Option<String>,
    pub username: Option<String>,
    #[serde(default)]
    pub notification_emails: Vec<String>,
}

/// A member of a workspace, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub since: DateTime<Utc>,
}

impl Store {
    pub async fn profile(&self, user_id: &str) -> Result<Profile> {
        let sql = "SELECT phone, title, company, company_size, username, notification_emails FROM users WHERE id = $1";
        on_pool!(self, pool => {
            let row = sqlx::query(sql).bind(user_id).fetch_optional(pool).await?
                .ok_or_else(|| StoreError::Corrupt(format!("no user {user_id}")))?;
            let emails: Option<String> = row.try_get(5)?;
            Ok(Profile {
                phone: row.try_get(0)?,
                title: row.try_get(1)?,
                company: row.try_get(2)?,
                company_size: row.try_get(3)?,
                username: row.try_get(4)?,
                notification_emails: emails
                    .map(|text| serde_json::from_str(&text))
                    .transpose()
                    .map_err(|error| StoreError::Corrupt(format!("notification emails: {error}")))?
                    .unwrap_or_default(),
            })
        })
    }

    /// Saves a person's name and profile; false when the username is someone else's.
    pub async fn save_profile(&self, user_id: &str, name: &str, profile: &Profile) -> Result<bool> {
        // One statement, guarded by the unique index on usernames: a read before the write
        // could see a username free that another save takes in between (and, on SQLite, a
        // read-then-write transaction fails outright when another write comes in between).
        let sql = "UPDATE users SET name = $2, phone = $3, title = $4, company = $5, company_size = $6, \
                   username = $7, notification_emails = $8 WHERE id = $1";
        let emails = serde_json::to_string(&profile.notification_emails)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        let saved = on_pool!(self, pool => sqlx::query(sql)
            .bind(user_id).bind(name).bind(&profile.phone).bind(&profile.title).bind(&profile.company)
            .bind(&profile.company_size).bind(&profile.username).bind(emails)
            .execute(pool).await.map(|_| ()));
        match saved.map_err(|error| StoreError::or_conflict(error, String::new)) {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// Sets (or, with `None`, removes) a person's photo and its media type.
    pub async fn set_photo(&self, user_id: &str, photo: Option<(&[u8], &str)>) -> Result<()> {
        let sql = "UPDATE users SET photo = $2, photo_type = $3 WHERE id = $1";
        on_pool!(self, pool => {
            sqlx::query(sql).bind(user_id).bind(photo.map(|(bytes, _)| bytes)).bind(photo.map(|(_, kind)| kind))
                .execute(pool).await?;
            Ok(())
        })
    }

    /// A person's photo and its media type, if they have one.
    pub async fn photo(&self, user_id: &str) -> Result<Option<(Vec<u8>, String)>> {
        let sql = "SELECT photo, photo_type FROM users WHERE id = $1";
        on_pool!(self, pool => {
            let Some(row) = sqlx::query(sql).bind(user_id).fetch_optional(pool).await? else {
                return Ok(None);
            };
            let bytes: Option<Vec<u8>> = row.try_get(0)?;
            let kind: Option<String> = row.try_get(1)?;
            Ok(bytes.zip(kind))
        })
    }

    /// The members of a workspace, by email.
    pub async fn members(&self, workspace_id: &str) -> Result<Vec<Member>> {
        let sql = "SELECT u.id, u.email, u.name, m.role, m.created_at FROM memberships m JOIN users u ON u.id = m.user_id \
                   WHERE m.workspace_id = $1 ORDER BY u.email";
        on_pool!(self, pool => {
            let rows = sqlx::query(sql).bind(workspace_id).fetch_all(pool).await?;
            rows.iter().map(|row| Ok(Member {
                user_id: row.try_get(0)?,
                email: row.try_get(1)?,
                name: row.try_get(2)?,
                role: role_from(&row.try_get::<String, _>(3)?)?,
                since: row.try_get(4)?,
            })).collect()
        })
    }

    /// Gives a member another role (`Some`) or takes them out (`None`: their sessions in the
    /// workspace end, and their tokens stop working with the membership), leaving the
    /// workspace at least one owner. The workspace's row is locked first, so that changes to
    /// one workspace's people are made one at a time: two owners demoting each other at once
    /// cannot leave it none.
    pub async fn change_membership(
        &self,
        workspace_id: &str,
        user_id: &str,
        role: Option<Role>,
    ) -> Result<MembershipChange> {
        let lock = "UPDATE workspaces SET name = name WHERE id = $1";
        let current = "SELECT role FROM memberships WHERE workspace_id = $1 AND user_id = $2";
        let other_owners = "SELECT COUNT(*) FROM memberships WHERE workspace_id = $1 AND role = 'owner' AND user_id <> $2";
        let change = "UPDATE memberships SET role = $3 WHERE workspace_id = $1 AND user_id = $2";
        let remove = "DELETE FROM memberships WHERE workspace_id = $1 AND user_id = $2";
        let sessions = "DELETE FROM sessions WHERE workspace_id = $1 AND user_id = $2";
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(lock).bind(workspace_id).execute(&mut *tx).await?;
            let Some(row) = sqlx::query(current).bind(workspace_id).bind(user_id).fetch_optional(&mut *tx).await? else {
                return Ok(MembershipChange::NotMember);
            };
            let was = role_from(&row.try_get::<String, _>(0)?)?;
            if was == Role::Owner && role != Some(Role::Owner) {
                let others: i64 = sqlx::query(other_owners).bind(workspace_id).bind(user_id)
                    .fetch_one(&mut *tx).await?.try_get(0)?;
                if others == 0 {
                    return Ok(MembershipChange::LastOwner);
                }
            }
            match role {
                Some(role) => {
                    sqlx::query(change).bind(workspace_id).bind(user_id).bind(role.as_str()).execute(&mut *tx).await?;
                }
                None => {
                    sqlx::query(remove).bind(workspace_id).bind(user_id).execute(&mut *tx).await?;
                    sqlx::query(sessions).bind(workspace_id).bind(user_id).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            Ok(MembershipChange::Done)
        })
    }
}

/// What became of a [`Store::change_membership`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipChange {
    Done,
    /// The person is not in the workspace.
    NotMember,
    /// The person is the workspace's last owner, who stays one.
    LastOwner,
}
