//! Connections as stored objects: checked against their connector's fields, secret fields
//! sealed by the vault, shown back with secrets as `"********"`, and opened for the jobs that
//! use them.

use chrono::Utc;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

use weft_connectors::http::oauth;
use weft_connectors::{Connection, Connector, RateLimits, Registry, field_problems};
use weft_store::vault::{Vault, VaultError};
use weft_store::{PendingSignIn, Store, StoreError, StoredConnection, sign_in_row};

/// What the API and the stored `fields` show in place of a secret value.
pub const HIDDEN: &str = "********";
/// Longest a connection test may take.
const TEST_TIME: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("{0}")]
    Invalid(String),
    #[error("no connection with this id or name")]
    NotFound,
    /// The remote end refused to renew the connection's credentials.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// A connection as a caller writes it.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionInput {
    pub name: String,
    pub connector: String,
    #[serde(default)]
    pub fields: Map<String, Value>,
    /// The budget of calls: `{ requests, per, concurrent }`; absent or null for none.
    #[serde(default)]
    pub limits: Option<Value>,
}

/// How long a person has to finish connecting an account after starting.
const OAUTH_PENDING: Duration = Duration::from_secs(600);

/// The connections of one store, with the vault that seals their secrets.
pub struct ConnectionBook {
    store: Store,
    vault: Arc<Vault>,
    registry: Registry,
    /// Calls OAuth 2 token endpoints.
    token_client: reqwest::Client,
    /// One token refresh at a time, so that jobs that find a token expiring together use
    /// one new token.
    refreshing: tokio::sync::Mutex<()>,
}

impl ConnectionBook {
    pub fn new(
        store: Store,
        vault: Arc<Vault>,
        registry: Registry,
        token_client: reqwest::Client,
    ) -> ConnectionBook {
        ConnectionBook {
            store,
            vault,
            registry,
            token_client,
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// Starts connecting an `oauth2_code` connection to its account: the URL to send the
    /// person to. The provider sends them back to `redirect_uri` with a code and the state.
    pub async fn oauth_start(
        &self,
        workspace: &str,
        id: &str,
        redirect_uri: &str,
    ) -> Result<String, ConnectionError> {
        let stored = self.stored(workspace, id).await?;
        let connection = self.open(stored.clone()).await?;
        if connection.text("auth") != Some("oauth2_code") {
            return Err(ConnectionError::Invalid(format!(
                "connection `{}` does not use auth oauth2_code",
                stored.name
            )));
        }
        let state = oauth::random_text(24);
        let (verifier, challenge) = oauth::pkce_pair();
        let url = oauth::authorize_url(&connection, &state, &challenge, redirect_uri)
            .map_err(|error| ConnectionError::Invalid(error.message))?;
        // Kept in the store, so that whichever process takes the callback can finish it.
        let sign_in = PendingSignIn {
            connection_id: stored.id,
            verifier: self
                .vault
                .seal(&sign_in_row(&state), verifier.as_bytes())
                .await?,
            redirect_uri: redirect_uri.to_owned(),
        };
        self.store
            .save_sign_in(&state, &sign_in, OAUTH_PENDING)
            .await?;
        Ok(url)
    }

    /// Finishes connecting an account: trades the code for tokens, kept sealed. The state is
    /// single use and expires. Returns the connection's name.
    pub async fn oauth_callback(&self, state: &str, code: &str) -> Result<String, ConnectionError> {
        let waiting = self.store.take_sign_in(state).await?.ok_or_else(|| {
            ConnectionError::Invalid(
                "this sign-in is unknown or expired: start connecting the account again".to_owned(),
            )
        })?;
        let verifier = self
            .vault
            .open_sealed(&sign_in_row(state), &waiting.verifier)
            .await?;
        let verifier = Zeroizing::new(String::from_utf8_lossy(&verifier).into_owned());
        let stored = self
            .store
            .connection_by_id(&waiting.connection_id)
            .await?
            .ok_or(ConnectionError::NotFound)?;
        let connection = self.open(stored.clone()).await?;
        let tokens = oauth::exchange_code(
            &self.token_client,
            &connection,
            code,
            &verifier,
            &waiting.redirect_uri,
        )
        .await
        .map_err(|error| ConnectionError::Invalid(error.message))?;
        let name = stored.name.clone();
        self.keep_tokens(stored, &tokens).await?;
        tracing::info!(connection = %name, "an OAuth 2 account was connected");
        Ok(name)
    }

    /// Seals new tokens into a stored connection.
    async fn keep_tokens(
        &self,
        mut stored: StoredConnection,
        tokens: &oauth::Tokens,
    ) -> Result<(), ConnectionError> {
        let mut secrets = self.secrets_of(&stored).await?;
        secrets.insert("access_token".to_owned(), json!(tokens.access_token));
        if let Some(refresh_token) = &tokens.refresh_token {
            secrets.insert("refresh_token".to_owned(), json!(refresh_token));
        }
        for name in secrets.keys() {
            stored.fields.insert(name.clone(), json!(HIDDEN));
        }
        match tokens.expires_at {
            Some(at) => stored.fields.insert(
                "expires_at".to_owned(),
                json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            ),
            None => stored.fields.remove("expires_at"),
        };
        let text = Zeroizing::new(serde_json::to_vec(&secrets).unwrap_or_default());
        stored.secrets = Some(self.vault.seal(&row_of(&stored.id), &text).await?);
        stored.updated_at = Utc::now();
        if !self.store.update_connection(&stored).await? {
            return Err(ConnectionError::NotFound);
        }
        Ok(())
    }

    /// A connection with a usable access token: refreshed first when it is about to expire
    /// (or, with `force`, whatever its expiry), the new token kept sealed.
    async fn with_fresh_token(
        &self,
        workspace: &str,
        name: &str,
        force: bool,
    ) -> Result<Connection, ConnectionError> {
        let connection = self.open(self.stored(workspace, name).await?).await?;
        let needs = |connection: &Connection| {
            connection.text("auth") == Some("oauth2_code")
                && connection.text("refresh_token").is_some()
                && (force
                    || oauth::stored_tokens(connection).is_some_and(|tokens| tokens.expiring()))
        };
        if !needs(&connection) {
            return Ok(connection);
        }
        let _one_at_a_time = self.refreshing.lock().await;
        // Another job may have refreshed it while this one waited.
        let stored = self.stored(workspace, name).await?;
        let current = self.open(stored.clone()).await?;
        if current.text("access_token") != connection.text("access_token") {
            return Ok(current);
        }
        let tokens = match oauth::refresh(&self.token_client, &current).await {
            Ok(tokens) => tokens,
            // Ahead of expiry the current token still works: use it, and try again next time.
            Err(error) if !force => {
                tracing::warn!(connection = name, error = %error.message, "cannot refresh an OAuth 2 token ahead of its expiry; using the current one");
                return Ok(current);
            }
            Err(error) => return Err(ConnectionError::Refused(error.message)),
        };
        self.keep_tokens(stored, &tokens).await?;
        tracing::info!(connection = name, "an OAuth 2 access token was refreshed");
        self.open(self.stored(workspace, name).await?).await
    }

    /// Makes a connection in a workspace.
    pub async fn create(
        &self,
        workspace: &str,
        input: ConnectionInput,
    ) -> Result<Value, ConnectionError> {
        let now = Utc::now();
        let connection = StoredConnection {
            id: weft_store::new_id(),
            workspace_id: workspace.to_owned(),
            name: String::new(),
            connector: input.connector.clone(),
            fields: Map::new(),
            secrets: None,
            limits: None,
            created_at: now,
            updated_at: now,
        };
        let connection = self.fill(connection, input, Map::new()).await?;
        self.store.create_connection(&connection).await?;
        Ok(view(&connection))
    }

    /// Replaces a connection's name and fields. A secret field that is left out or sent as
    /// `"********"` keeps its stored value (secrets cannot be read back, so a caller cannot
    /// send them again); `null` or `""` clears it.
    pub async fn update(
        &self,
        workspace: &str,
        id: &str,
        input: ConnectionInput,
    ) -> Result<Value, ConnectionError> {
        let stored = self.stored(workspace, id).await?;
        if input.connector != stored.connector {
            return Err(ConnectionError::Invalid(format!(
                "a connection keeps its connector: this one is `{}`",
                stored.connector
            )));
        }
        let kept = self.secrets_of(&stored).await?;
        let mut input = input;
        // The expiry of a connected account's token is set by connecting it, not by a form:
        // a save that leaves it out keeps it.
        if let Some(expires_at) = stored.fields.get("expires_at")
            && !input.fields.contains_key("expires_at")
        {
            input
                .fields
                .insert("expires_at".to_owned(), expires_at.clone());
        }
        let connection = StoredConnection {
            updated_at: Utc::now(),
            ..stored
        };
        let connection = self.fill(connection, input, kept).await?;
        if !self.store.update_connection(&connection).await? {
            return Err(ConnectionError::NotFound);
        }
        Ok(view(&connection))
    }

    pub async fn show(&self, workspace: &str, id: &str) -> Result<Value, ConnectionError> {
        Ok(view(&self.stored(workspace, id).await?))
    }

    pub async fn list(&self, workspace: &str) -> Result<Vec<Value>, ConnectionError> {
        Ok(self
            .store
            .connections(workspace)
            .await?
            .iter()
            .map(view)
            .collect())
    }

    pub async fn delete(&self, workspace: &str, id: &str) -> Result<(), ConnectionError> {
        let stored = self.stored(workspace, id).await?;
        match self.store.delete_connection(&stored.id).await? {
            true => Ok(()),
            false => Err(ConnectionError::NotFound),
        }
    }

    /// Runs the connector's connection test. The error message has every secret value of
    /// the connection replaced by `"********"`.
    pub async fn test(
        &self,
        workspace: &str,
        id: &str,
    ) -> Result<Result<(), String>, ConnectionError> {
        let stored = self.stored(workspace, id).await?;
        let connector = self.connector(&stored.connector)?;
        let connection = self.open(stored).await?;
        let outcome = tokio::time::timeout(TEST_TIME, connector.test_connection(&connection)).await;
        Ok(match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(hide_secrets(&error.message, &connection, connector)),
            Err(_) => Err(format!(
                "the test took longer than {} s",
                TEST_TIME.as_secs()
            )),
        })
    }

    /// A workspace's connection by id or name.
    async fn stored(&self, workspace: &str, id: &str) -> Result<StoredConnection, ConnectionError> {
        self.store
            .connection(workspace, id)
            .await?
            .ok_or(ConnectionError::NotFound)
    }

    fn connector(&self, name: &str) -> Result<&Arc<dyn Connector>, ConnectionError> {
        self.registry.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.registry.iter().map(|found| found.name()).collect();
            ConnectionError::Invalid(format!(
                "no connector named `{name}` (known: {})",
                known.join(", ")
            ))
        })
    }

    /// Checks `input` against its connector and puts it in `connection`: plain fields as they
    /// are, secret ones sealed (with `kept`, the stored secrets, for those not sent again).
    async fn fill(
        &self,
        mut connection: StoredConnection,
        input: ConnectionInput,
        mut kept: Map<String, Value>,
    ) -> Result<StoredConnection, ConnectionError> {
        check_name(&input.name)?;
        let connector = self.connector(&input.connector)?;
        let known = connector.connection_fields();
        let mut plain = Map::new();
        let mut secrets = Map::new();
        for (name, value) in input.fields {
            let secret = known.iter().any(|field| field.name == name && field.secret);
            match value {
                _ if !secret => {
                    if !value.is_null() {
                        plain.insert(name, value);
                    }
                }
                Value::String(text) if text == HIDDEN => {
                    if let Some(old) = kept.remove(&name) {
                        secrets.insert(name, old);
                    }
                }
                Value::Null => {
                    kept.remove(&name);
                }
                Value::String(text) if text.is_empty() => {
                    kept.remove(&name);
                }
                other => {
                    kept.remove(&name);
                    secrets.insert(name, other);
                }
            }
        }
        // Secrets left out of the input keep their stored values.
        for (name, value) in kept {
            let still_known = known.iter().any(|field| field.name == name && field.secret);
            if still_known {
                secrets.entry(name).or_insert(value);
            }
        }
        let mut all = plain.clone();
        all.extend(
            secrets
                .iter()
                .map(|(name, value)| (name.clone(), value.clone())),
        );
        let problems = field_problems(&all, &known);
        if !problems.is_empty() {
            return Err(ConnectionError::Invalid(problems.join("; ")));
        }
        let whole = Connection::new(input.name.clone(), input.connector.clone(), all);
        connector.check_connection(&whole).map_err(|error| {
            ConnectionError::Invalid(hide_secrets(&error.message, &whole, connector))
        })?;
        connection.secrets = if secrets.is_empty() {
            None
        } else {
            let text = Zeroizing::new(serde_json::to_vec(&secrets).unwrap_or_default());
            Some(self.vault.seal(&row_of(&connection.id), &text).await?)
        };
        for name in secrets.keys() {
            plain.insert(name.clone(), Value::String(HIDDEN.to_owned()));
        }
        connection.limits = match input.limits {
            None | Some(Value::Null) => None,
            Some(value) => Some(
                RateLimits::parse(&value)
                    .map_err(ConnectionError::Invalid)?
                    .to_json(),
            ),
        };
        connection.name = input.name;
        connection.fields = plain;
        Ok(connection)
    }

    /// The secret fields of a stored connection, opened.
    async fn secrets_of(
        &self,
        stored: &StoredConnection,
    ) -> Result<Map<String, Value>, ConnectionError> {
        let Some(sealed) = &stored.secrets else {
            return Ok(Map::new());
        };
        let text = self.vault.open_sealed(&row_of(&stored.id), sealed).await?;
        serde_json::from_slice(&text).map_err(|_| {
            ConnectionError::Vault(VaultError::Unopenable(format!(
                "connection {}: its secrets are not a JSON object",
                stored.id
            )))
        })
    }

    /// A stored connection with its secrets in place, ready for its connector.
    async fn open(&self, stored: StoredConnection) -> Result<Connection, ConnectionError> {
        let secrets = self.secrets_of(&stored).await?;
        // Each secret's placeholder in `fields` gives way to its value.
        let mut fields = stored.fields;
        fields.extend(secrets);
        let limits = stored
            .limits
            .as_ref()
            .map(RateLimits::parse)
            .transpose()
            .map_err(|message| {
                ConnectionError::Invalid(format!("stored limits of `{}`: {message}", stored.name))
            })?;
        Ok(Connection::new(stored.name, stored.connector, fields).with_limits(limits))
    }
}

/// Jobs find their connections here.
#[async_trait::async_trait]
impl weft_engine::Connections for ConnectionBook {
    async fn get(&self, workspace: &str, name: &str) -> Result<Connection, String> {
        self.with_fresh_token(workspace, name, false)
            .await
            .map_err(|error| unusable(name, error))
    }

    async fn refreshed(&self, workspace: &str, name: &str) -> Result<Connection, String> {
        self.with_fresh_token(workspace, name, true)
            .await
            .map_err(|error| unusable(name, error))
    }
}

/// Why a job cannot use a connection, for its record; store details go to the log.
fn unusable(name: &str, error: ConnectionError) -> String {
    match error {
        ConnectionError::NotFound => format!("no connection named `{name}`"),
        ConnectionError::Invalid(message) | ConnectionError::Refused(message) => {
            format!("connection `{name}`: {message}")
        }
        other => {
            tracing::error!(error = %other, connection = name, "cannot open a connection");
            format!("connection `{name}` cannot be opened: {other}")
        }
    }
}

/// The row a connection's sealed secrets are bound to.
fn row_of(id: &str) -> String {
    format!("connection {id}")
}

fn check_name(name: &str) -> Result<(), ConnectionError> {
    let fits = !name.trim().is_empty()
        && name.len() <= 200
        && name.trim() == name
        && !name.chars().any(char::is_control);
    if fits {
        Ok(())
    } else {
        Err(ConnectionError::Invalid(
            "`name` must be 1 to 200 characters, without control characters or blanks at its ends"
                .to_owned(),
        ))
    }
}

/// A connection as the API shows it: secret fields as `"********"`.
pub fn view(connection: &StoredConnection) -> Value {
    json!({
        "id": connection.id,
        "name": connection.name,
        "connector": connection.connector,
        "fields": connection.fields,
        "limits": connection.limits,
        "created_at": connection.created_at,
        "updated_at": connection.updated_at,
    })
}

fn hide_secrets(message: &str, connection: &Connection, connector: &Arc<dyn Connector>) -> String {
    let secret_fields: Vec<&str> = connector
        .connection_fields()
        .iter()
        .filter(|field| field.secret)
        .map(|field| field.name)
        .collect();
    connection
        .secret_values(&secret_fields)
        .fold(message.to_owned(), |text, secret| {
            text.replace(secret, HIDDEN)
        })
}
