//! Who is asking: passwords hashed with Argon2id, API tokens shown once and stored as hashes.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use weft_store::{Caller, Credential};

use crate::sessions::{CSRF_HEADER, SESSION_COOKIE};

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

/// A new random secret (a session's cookie, a CSRF token): 32 random bytes, hex.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

/// Who is behind a request: its bearer token, or else its session cookie. Refused (401)
/// when there is neither, or it is unknown, expired, revoked or idle too long, or its person
/// left its workspace.
pub async fn caller_of(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty());
    let store = state.runtime.store();
    let caller = match (bearer, cookie(headers, SESSION_COOKIE)) {
        (Some(token), _) => store.caller_by_token_hash(&token_hash(token)).await?,
        (None, Some(session)) => {
            let idle = chrono::Duration::from_std(state.settings.session_idle)
                .unwrap_or(chrono::Duration::hours(8));
            store
                .caller_by_session_hash(&token_hash(session), chrono::Utc::now() - idle)
                .await?
        }
        (None, None) => None,
    }
    .ok_or_else(ApiError::unauthorized)?;
    note_use(store, &caller);
    Ok(caller)
}

/// Notes when a token or session was last used, to the minute: not a write per request.
fn note_use(store: &weft_store::Store, caller: &Caller) {
    let last = match &caller.credential {
        Credential::Token { last_used_at, .. } => *last_used_at,
        Credential::Session { last_seen_at, .. } => Some(*last_seen_at),
    };
    if last.is_some_and(|at| chrono::Utc::now() - at < chrono::Duration::minutes(1)) {
        return;
    }
    let (store, credential) = (store.clone(), caller.credential.clone());
    tokio::spawn(async move {
        let noted = match &credential {
            Credential::Token { id, .. } => store.token_used(id).await,
            Credential::Session { id, .. } => store.session_seen(id).await,
        };
        if let Err(error) = noted {
            tracing::debug!(%error, "cannot note a token's or session's use");
        }
    });
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// True when a request signed in with a session may change things: it carries the
/// session's CSRF token (compared in constant time). Tokens need none: a browser does not
/// send them by itself.
pub fn csrf_holds(caller: &Caller, headers: &HeaderMap) -> bool {
    let Credential::Session { csrf_token, .. } = &caller.credential else {
        return true;
    };
    let given = headers
        .get(CSRF_HEADER)
        .map(|value| value.as_bytes())
        .unwrap_or_default();
    given.ct_eq(csrf_token.as_bytes()).into()
}

/// The reverse proxies whose `X-Forwarded-For` is believed, set once at start.
static TRUSTED_PROXIES: std::sync::OnceLock<Vec<std::net::IpAddr>> = std::sync::OnceLock::new();

/// Believes the `X-Forwarded-For` of requests from these addresses (the reverse proxies in
/// front of the server): their clients' addresses are then the ones limited and audited.
pub fn trust_proxies(proxies: Vec<std::net::IpAddr>) {
    let _ = TRUSTED_PROXIES.set(proxies);
}

/// The client's address: the peer's, or, when the peer is a trusted proxy, the nearest
/// address in `X-Forwarded-For` that is not a trusted proxy (the ones further left are
/// whatever the client wrote).
fn client_address(peer: std::net::IpAddr, headers: &HeaderMap) -> std::net::IpAddr {
    let trusted = TRUSTED_PROXIES.get().map(Vec::as_slice).unwrap_or_default();
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<std::net::IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|address| address.trim().parse().ok())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|address| !trusted.contains(address))
        .unwrap_or(peer)
}

/// Where a request came from: the client's address (behind a trusted proxy, the one it
/// forwarded for) and user agent.
#[derive(Debug, Clone, Default)]
pub struct ClientMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl ClientMeta {
    pub fn of(extensions: &axum::http::Extensions, headers: &HeaderMap) -> ClientMeta {
        ClientMeta {
            ip: extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|axum::extract::ConnectInfo(peer)| {
                    client_address(peer.ip(), headers).to_string()
                }),
            user_agent: headers
                .get(axum::http::header::USER_AGENT)
                .and_then(|agent| agent.to_str().ok())
                .map(|agent| agent.chars().take(300).collect()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientMeta::of(&parts.extensions, &parts.headers))
    }
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
