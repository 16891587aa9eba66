//! Who is asking: passwords hashed with Argon2id, API tokens shown once and stored as hashes.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use rand::Rng;
use sha2::{Digest, Sha256};
use weft_store::Caller;

use crate::AppState;
use crate::error::ApiError;

/// Token prefix: makes a leaked token recognisable to secret scanners.
const TOKEN_PREFIX: &str = "weft_";

/// Hashes a password with Argon2id and a random salt (a PHC string).
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|error| format!("cannot hash the password: {error}"))
}

pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A new API token: 32 random bytes, hex, with a prefix.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// What the store keeps of a token. Tokens are long and random, so a fast hash is enough.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Who is behind a request's bearer token: refused (401) when there is none, or it is
/// unknown, expired or revoked, or its owner left its workspace.
pub async fn caller_of(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or_else(ApiError::unauthorized)?;
    let store = state.runtime.store();
    let caller = store
        .caller_by_token_hash(&token_hash(token))
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    // When a token was last used, to the minute: not a write for every request.
    let stale = caller
        .last_used_at
        .is_none_or(|at| chrono::Utc::now() - at > chrono::Duration::minutes(1));
    if stale {
        let (store, id) = (store.clone(), caller.token_id.clone());
        tokio::spawn(async move {
            if let Err(error) = store.token_used(&id).await {
                tracing::debug!(%error, "cannot note a token's use");
            }
        });
    }
    Ok(caller)
}

/// The caller of a request, as the authorization layer found it.
pub struct CurrentUser(pub Caller);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Caller>() {
            Some(caller) => Ok(CurrentUser(caller.clone())),
            // Outside the API's routes (the metrics): any member's token.
            None => caller_of(state, &parts.headers).await.map(CurrentUser),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("correct horse battery staple").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery staple", &hash));
        assert!(!verify_password("wrong", &hash));
    }

    #[test]
    fn tokens_are_random_and_stored_as_hashes() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with("weft_") && a.len() == 5 + 64);
        assert_ne!(token_hash(&a), a);
        assert_eq!(token_hash(&a), token_hash(&a));
    }
}
