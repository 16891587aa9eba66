//! Single sign-on settings of each workspace, and the sign-ins through an identity provider
//! in progress (so that any process can take the provider's callback, once).

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::time::Duration;

use crate::Store;
use crate::db::{Backend, Result, on_pool};
use crate::vault::Sealed;

/// A workspace's identity provider.
#[derive(Debug, Clone, PartialEq)]
pub struct SsoSettings {
    pub workspace_id: String,
    /// `google`, `microsoft`, `slack`, `salesforce` or `custom`.
    pub provider: String,
    pub issuer: String,
    pub client_id: String,
    /// Sealed under the row name [`sso_row`] gives.
    pub client_secret: Sealed,
    /// Members sign in through the provider only (owners keep their password).
    pub required: bool,
    pub updated_at: DateTime<Utc>,
}

/// The name a workspace's client secret is sealed under.
pub fn sso_row(workspace_id: &str) -> String {
    format!("sso {workspace_id}")
}

/// The name a sign-in's sealed values are sealed under.
pub fn sso_sign_in_row(state: &str) -> String {
    format!("sso sign-in {}", state_hash(state))
}

fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

impl Store {
    pub async fn save_sso(&self, settings: &SsoSettings) -> Result<()> {
        let sql = "INSERT INTO sso_settings (workspace_id, provider, issuer, client_id, data_key_id, client_secret, required, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (workspace_id) DO UPDATE SET \
                   provider = excluded.provider, issuer = excluded.issuer, client_id = excluded.client_id, \
                   data_key_id = excluded.data_key_id, client_secret = excluded.client_secret, \
                   required = excluded.required, updated_at = excluded.updated_at";
        on_pool!(self, pool => {
            sqlx::query(sql)
                .bind(&settings.workspace_id).bind(&settings.provider).bind(&settings.issuer)
                .bind(&settings.client_id).bind(&settings.client_secret.data_key_id)
                .bind(&settings.client_secret.text).bind(settings.required).bind(settings.updated_at)
                .execute(pool).await?;
            Ok(())
        })
    }

    pub async fn sso(&self, workspace_id: &str) -> Result<Option<SsoSettings>> {
        let sql = "SELECT provider, issuer, client_id, data_key_id, client_secret, required, updated_at \
                   FROM sso_settings WHERE workspace_id = $1";
        on_pool!(self, pool => {
            let Some(row) = sqlx::query(sql).bind(workspace_id).fetch_optional(pool).await? else {
                return Ok(None);
            };
            Ok(Some(SsoSettings {
                workspace_id: workspace_id.to_owned(),
                provider: row.try_get(0)?,
                issuer: row.try_get(1)?,
                client_id: row.try_get(2)?,
                client_secret: Sealed { data_key_id: row.try_get(3)?, text: row.try_get(4)? },
                required: row.try_get(5)?,
                updated_at: row.try_get(6)?,
            }))
        })
    }

    pub async fn delete_sso(&self, workspace_id: &str) -> Result<bool> {
        let sql = "DELETE FROM sso_settings WHERE workspace_id = $1";
        on_pool!(self, pool => Ok(sqlx::query(sql).bind(workspace_id).execute(pool).await?.rows_affected() > 0))
    }

    /// Keeps a sign-in in progress for `keep`; forgets the expired ones.
    pub async fn save_sso_sign_in(
        &self,
        state: &str,
        workspace_id: &str,
        sealed: &Sealed,
        keep: Duration,
    ) -> Result<()> {
        let now = Utc::now().timestamp_millis();
        let until = now.saturating_add(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
        let forget = "DELETE FROM sso_sign_ins WHERE until_ms < $1";
        let save = "INSERT INTO sso_sign_ins (state_hash, workspace_id, data_key_id, sealed, until_ms) VALUES ($1, $2, $3, $4, $5)";
        on_pool!(self, pool => {
            sqlx::query(forget).bind(now).execute(pool).await?;
            sqlx::query(save).bind(state_hash(state)).bind(workspace_id)
                .bind(&sealed.data_key_id).bind(&sealed.text).bind(until)
                .execute(pool).await?;
            Ok(())
        })
    }

    /// Takes a sign-in in progress, once: its workspace and sealed values, unless unknown,
    /// taken or expired.
    pub async fn take_sso_sign_in(&self, state: &str) -> Result<Option<(String, Sealed)>> {
        let take = "DELETE FROM sso_sign_ins WHERE state_hash = $1 RETURNING workspace_id, data_key_id, sealed, until_ms";
        on_pool!(self, pool => {
            let Some(row) = sqlx::query(take).bind(state_hash(state)).fetch_optional(pool).await? else {
                return Ok(None);
            };
            let until: i64 = row.try_get(3)?;
            if until < Utc::now().timestamp_millis() {
                return Ok(None);
            }
            Ok(Some((row.try_get(0)?, Sealed { data_key_id: row.try_get(1)?, text: row.try_get(2)? })))
        })
    }
}
