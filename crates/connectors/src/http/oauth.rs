//! OAuth 2 for `http` connections: the client credentials grant, and the authorization code
//! grant with PKCE (RFC 7636) and refresh tokens. The browser side (the redirect and the
//! callback) and keeping the tokens sealed are the server's; this module speaks to the
//! provider's endpoints.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::Duration;

use crate::connection::Connection;
use crate::error::ConnectorError;

/// A token is refreshed this long before it expires, so that no call carries a token about
/// to expire.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(60);
/// Longest a token endpoint may take to answer.
const TOKEN_TIME: Duration = Duration::from_secs(30);

/// What a token endpoint gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Tokens {
    pub access_token: String,
    /// Kept when the provider sends none with a refreshed token.
    pub refresh_token: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Tokens {
    /// True when the token expires within [`REFRESH_AHEAD`].
    pub fn expiring(&self) -> bool {
        self.expires_at.is_some_and(|at| {
            at - chrono::Duration::from_std(REFRESH_AHEAD).unwrap_or_default() <= Utc::now()
        })
    }
}

/// A random PKCE verifier and its S256 challenge.
pub fn pkce_pair() -> (String, String) {
    let verifier = random_text(48);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// URL-safe random text from `bytes` random bytes: states and verifiers.
pub fn random_text(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn field<'a>(connection: &'a Connection, name: &str) -> Result<&'a str, ConnectorError> {
    connection.text(name).ok_or_else(|| {
        ConnectorError::validation(format!(
            "connection `{}` uses OAuth 2 but its field `{name}` is empty",
            connection.name
        ))
    })
}

/// Where to send the person who connects the account.
pub fn authorize_url(
    connection: &Connection,
    state: &str,
    challenge: &str,
    redirect_uri: &str,
) -> Result<String, ConnectorError> {
    let mut url = url::Url::parse(field(connection, "authorize_url")?).map_err(|error| {
        ConnectorError::validation(format!("`authorize_url` is not a URL: {error}"))
    })?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", field(connection, "client_id")?)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("state", state)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    if let Some(scopes) = connection.text("scopes") {
        url.query_pairs_mut().append_pair("scope", scopes);
    }
    Ok(url.into())
}

/// Trades an authorization code for tokens.
pub async fn exchange_code(
    client: &reqwest::Client,
    connection: &Connection,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
) -> Result<Tokens, ConnectorError> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("code_verifier", verifier),
        ("redirect_uri", redirect_uri),
    ];
    token_request(client, connection, &form, None).await
}

/// A new access token from the connection's refresh token.
pub async fn refresh(
    client: &reqwest::Client,
    connection: &Connection,
) -> Result<Tokens, ConnectorError> {
    let refresh_token = field(connection, "refresh_token")?.to_owned();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
    ];
    token_request(client, connection, &form, Some(refresh_token.clone())).await
}

/// A token for the client itself (no person involved).
pub async fn client_credentials(
    client: &reqwest::Client,
    connection: &Connection,
) -> Result<Tokens, ConnectorError> {
    let scopes = connection.text("scopes").unwrap_or_default().to_owned();
    let mut form = vec![("grant_type", "client_credentials")];
    if !scopes.is_empty() {
        form.push(("scope", scopes.as_str()));
    }
    token_request(client, connection, &form, None).await
}

/// Posts a grant to the token endpoint, with the client's id and secret in the form (the way
/// most providers take them) and in HTTP basic auth (the way the RFC prefers).
async fn token_request(
    client: &reqwest::Client,
    connection: &Connection,
    grant: &[(&str, &str)],
    refresh_token: Option<String>,
) -> Result<Tokens, ConnectorError> {
    let client_id = field(connection, "client_id")?;
    let secret = connection.text("client_secret").unwrap_or_default();
    let mut form: Vec<(&str, &str)> = grant.to_vec();
    form.push(("client_id", client_id));
    if !secret.is_empty() {
        form.push(("client_secret", secret));
    }
    let response = client
        .post(field(connection, "token_url")?)
        .basic_auth(client_id, Some(secret))
        .form(&form)
        .timeout(TOKEN_TIME)
        .send()
        .await
        .map_err(|error| {
            ConnectorError::remote(format!("the token endpoint cannot be reached: {error}"))
        })?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        // OAuth errors carry a code and a description, never a secret.
        let code = body["error"].as_str().unwrap_or("no error code");
        let said = body["error_description"].as_str().unwrap_or_default();
        return Err(ConnectorError::remote(format!(
            "the token endpoint of connection `{}` refused: HTTP {} {code} {said}",
            connection.name,
            status.as_u16()
        )));
    }
    let access_token = body["access_token"]
        .as_str()
        .filter(|token| !token.is_empty())
        .ok_or_else(|| ConnectorError::remote("the token endpoint gave no access_token"))?
        .to_owned();
    let expires_at = body["expires_in"]
        .as_i64()
        .map(|seconds| Utc::now() + chrono::Duration::seconds(seconds));
    Ok(Tokens {
        access_token,
        refresh_token: body["refresh_token"]
            .as_str()
            .map(str::to_owned)
            .or(refresh_token),
        expires_at,
    })
}

/// The tokens kept in a connection (authorization code grant), if it has any.
pub fn stored_tokens(connection: &Connection) -> Option<Tokens> {
    Some(Tokens {
        access_token: connection.text("access_token")?.to_owned(),
        refresh_token: connection.text("refresh_token").map(str::to_owned),
        expires_at: connection
            .text("expires_at")
            .and_then(|text| text.parse().ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_the_hash_of_the_verifier() {
        let (verifier, challenge) = pkce_pair();
        assert!(
            verifier.len() >= 43,
            "RFC 7636 asks for 43 to 128 characters"
        );
        let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(verifier.as_bytes()));
        assert_eq!(challenge, expected);
        assert_ne!(pkce_pair().0, verifier);
    }
}
