//! How an HTTP connection authenticates: the fields of an `http` connection and what they add
//! to a request.

use base64::Engine as _;

use crate::connection::Connection;
use crate::error::ConnectorError;

/// Credentials an HTTP request carries.
#[derive(Clone, PartialEq, Eq)]
pub enum HttpAuth {
    None,
    Bearer(String),
    Basic {
        username: String,
        password: String,
    },
    ApiKeyHeader {
        name: String,
        value: String,
    },
    ApiKeyQuery {
        name: String,
        value: String,
    },
    /// An OAuth 2 access token, sent as a bearer token; a refusal of it asks for a refresh.
    OAuth2Token(String),
    /// A token of the client credentials grant, fetched and kept in memory by the connector.
    OAuth2Client,
}

impl HttpAuth {
    /// Reads the auth fields of a connection; the message names the missing field.
    pub fn from_connection(connection: &Connection) -> Result<HttpAuth, ConnectorError> {
        let required = |field: &str| {
            connection.text(field).map(str::to_owned).ok_or_else(|| {
                ConnectorError::validation(format!(
                    "connection `{}` uses auth `{}` but its field `{field}` is empty",
                    connection.name,
                    connection.text("auth").unwrap_or_default()
                ))
            })
        };
        match connection.text("auth").unwrap_or("none") {
            "none" => Ok(HttpAuth::None),
            "bearer" => Ok(HttpAuth::Bearer(required("token")?)),
            "basic" => Ok(HttpAuth::Basic {
                username: required("username")?,
                password: connection.text("password").unwrap_or_default().to_owned(),
            }),
            "api_key" => {
                let name = required("key_name")?;
                let value = required("key_value")?;
                match connection.text("key_in").unwrap_or("header") {
                    "header" => Ok(HttpAuth::ApiKeyHeader { name, value }),
                    "query" => Ok(HttpAuth::ApiKeyQuery { name, value }),
                    other => Err(ConnectorError::validation(format!(
                        "connection `{}`: key_in must be `header` or `query`, not `{other}`",
                        connection.name
                    ))),
                }
            }
            "oauth2_code" => {
                for needed in ["authorize_url", "token_url", "client_id"] {
                    required(needed)?;
                }
                // Until the account is connected, there is no token: calls fail with a reason.
                Ok(HttpAuth::OAuth2Token(
                    connection
                        .text("access_token")
                        .unwrap_or_default()
                        .to_owned(),
                ))
            }
            "oauth2_client_credentials" => {
                for needed in ["token_url", "client_id"] {
                    required(needed)?;
                }
                Ok(HttpAuth::OAuth2Client)
            }
            other => Err(ConnectorError::validation(format!(
                "connection `{}`: unknown auth `{other}` (use none, bearer, basic, api_key, \
                 oauth2_code or oauth2_client_credentials)",
                connection.name
            ))),
        }
    }

    /// Adds the credentials to a request.
    pub fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            HttpAuth::None => request,
            HttpAuth::Bearer(token) | HttpAuth::OAuth2Token(token) => {
                request.header("authorization", format!("Bearer {token}"))
            }
            // The connector puts the fetched token in as a bearer token.
            HttpAuth::OAuth2Client => request,
            HttpAuth::Basic { username, password } => {
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}"));
                request.header("authorization", format!("Basic {encoded}"))
            }
            HttpAuth::ApiKeyHeader { name, value } => request.header(name.as_str(), value.as_str()),
            HttpAuth::ApiKeyQuery { name, value } => request.query(&[(name, value)]),
        }
    }

    /// A credential in a custom header is not one reqwest knows to drop on a redirect to
    /// another host, so such requests follow redirects only within their origin.
    pub fn is_custom_header(&self) -> bool {
        matches!(self, HttpAuth::ApiKeyHeader { .. })
    }
}
