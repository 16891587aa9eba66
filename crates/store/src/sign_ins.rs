//! OAuth 2 sign-ins in progress: what the provider's callback needs to finish connecting an
//! account, kept in the store so that whichever process takes the callback can finish it.

use chrono::Utc;
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::time::Duration;

use crate::Store;
use crate::db::{Backend, Result, on_pool};
use crate::vault::Sealed;

/// A sign-in waiting for the provider's callback.
#[derive(Debug, Clone)]
pub struct PendingSignIn {
    pub connection_id: String,
    /// The PKCE verifier, sealed under the row name [`sign_in_row`] gives.
    pub verifier: Sealed,
    pub redirect_uri: String,
}

/// The name a sign-in's verifier is sealed under: a sealed value opens only under its row.
pub fn sign_in_row(state: &str) -> String {
    format!("oauth sign-in {}", state_hash(state))
}

fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

impl Store {
    /// Keeps a sign-in for `keep`, found later by its `state`; forgets those that expired.
    pub async fn save_sign_in(
        &self,
        state: &str,
        sign_in: &PendingSignIn,
        keep: Duration,
    ) -> Result<()> {
        let now = Utc::now().timestamp_millis();
        let until = now.saturating_add(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
        let forget = "DELETE FROM oauth_sign_ins WHERE until_ms < $1";
        let save = "INSERT INTO oauth_sign_ins (state_hash, connection_id, data_key_id, verifier, redirect_uri, until_ms) \
                    VALUES ($1, $2, $3, $4, $5, $6)";
        on_pool!(self, pool => {
            sqlx::query(forget).bind(now).execute(pool).await?;
            sqlx::query(save)
                .bind(state_hash(state)).bind(&sign_in.connection_id)
                .bind(&sign_in.verifier.data_key_id).bind(&sign_in.verifier.text)
                .bind(&sign_in.redirect_uri).bind(until)
                .execute(pool).await?;
            Ok(())
        })
    }

    /// Takes the sign-in of `state` out of the store, once: `None` when it is unknown, was
    /// taken already or expired.
    pub async fn take_sign_in(&self, state: &str) -> Result<Option<PendingSignIn>> {
        let now = Utc::now().timestamp_millis();
        let take = "DELETE FROM oauth_sign_ins WHERE state_hash = $1 \
                    RETURNING connection_id, data_key_id, verifier, redirect_uri, until_ms";
        on_pool!(self, pool => {
            let Some(row) = sqlx::query(take).bind(state_hash(state)).fetch_optional(pool).await? else {
                return Ok(None);
            };
            let until: i64 = row.try_get(4)?;
            if until < now {
                return Ok(None);
            }
            Ok(Some(PendingSignIn {
                connection_id: row.try_get(0)?,
                verifier: Sealed { data_key_id: row.try_get(1)?, text: row.try_get(2)? },
                redirect_uri: row.try_get(3)?,
            }))
        })
    }
}
