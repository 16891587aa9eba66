//! The built-in `http` connector: `http.request` calls any HTTP API, with a connection that
//! supplies a base URL and credentials.

mod auth;
pub mod network;
pub mod oauth;

use async_trait::async_trait;
use reqwest::{Method, Url, redirect};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;

pub use auth::HttpAuth;
pub use network::NetworkPolicy;

use crate::connection::Connection;
use crate::connector::{ActionSpec, CallContext, ConnectionField, Connector};
use crate::error::ConnectorError;
use weft_recipe::duration::{format_duration, parse_duration};
use weft_recipe::text::shorten;

/// Limits and policy of the `http` connector.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub network: NetworkPolicy,
    /// Responses larger than this fail the step instead of filling memory.
    pub max_response_bytes: usize,
    /// Applies when neither the input nor the step set a timeout.
    pub default_timeout: Duration,
    pub max_redirects: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            network: NetworkPolicy::default(),
            max_response_bytes: 10 * 1024 * 1024,
            default_timeout: Duration::from_secs(30),
            max_redirects: 10,
        }
    }
}

pub struct HttpConnector {
    options: HttpOptions,
    /// Follows redirects to any origin (reqwest drops `Authorization` on a change of host).
    client: reqwest::Client,
    /// Follows redirects within the first request's origin only, for credentials in custom headers.
    same_origin_client: reqwest::Client,
    /// Tokens of the client credentials grant, by connection.
    client_tokens: std::sync::Mutex<std::collections::HashMap<String, oauth::Tokens>>,
}

impl HttpConnector {
    pub fn new(options: HttpOptions) -> Result<Self, ConnectorError> {
        Ok(HttpConnector {
            client: build_client(&options, false)?,
            same_origin_client: build_client(&options, true)?,
            client_tokens: Default::default(),
            options,
        })
    }
}

/// An `http` connection that sends `token` as a bearer token to `base_url`: how the
/// connectors built on this one (slack, stripe) reach their APIs.
pub fn bearer_connection(name: &str, base_url: &str, token: &str) -> Connection {
    Connection::new(
        name,
        "http",
        Map::from_iter([
            ("base_url".to_owned(), json!(base_url)),
            ("auth".to_owned(), json!("bearer")),
            ("token".to_owned(), json!(token)),
        ]),
    )
}

/// A client for OAuth 2 token endpoints, under the same network policy as requests.
pub fn token_client(options: &HttpOptions) -> Result<reqwest::Client, ConnectorError> {
    build_client(options, false)
}

fn build_client(
    options: &HttpOptions,
    same_origin_only: bool,
) -> Result<reqwest::Client, ConnectorError> {
    let policy = options.network;
    let max_redirects = options.max_redirects;
    let redirects = redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > max_redirects {
            return attempt.error(format!("more than {max_redirects} redirects"));
        }
        if let Some(refusal) = literal_ip_refusal(attempt.url(), policy) {
            return attempt.error(refusal);
        }
        let leaves_origin = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() != attempt.url().origin());
        if same_origin_only && leaves_origin {
            return attempt.stop();
        }
        attempt.follow()
    });
    reqwest::Client::builder()
        .dns_resolver(Arc::new(network::CheckedResolver { policy }))
        .redirect(redirects)
        .user_agent(concat!("weft/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| ConnectorError::remote(format!("cannot start the HTTP client: {error}")))
}

/// The resolver sees host names only; an address written in the URL is checked here.
fn literal_ip_refusal(url: &Url, policy: NetworkPolicy) -> Option<String> {
    let ip = match url.host()? {
        url::Host::Ipv4(ip) => std::net::IpAddr::V4(ip),
        url::Host::Ipv6(ip) => std::net::IpAddr::V6(ip),
        url::Host::Domain(_) => return None,
    };
    let range = policy.refusal(ip)?;
    Some(network::refused_message(&ip.to_string(), ip, range))
}

/// The parsed input of `http.request`.
#[derive(Clone)]
struct RequestInput {
    method: Method,
    url: Url,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    body: Value,
    form: Vec<(String, String)>,
    timeout: Option<Duration>,
    fail_on_status: bool,
}

impl RequestInput {
    fn parse(input: &Value, connection: Option<&Connection>) -> Result<Self, ConnectorError> {
        let input = input
            .as_object()
            .ok_or_else(|| ConnectorError::validation("http.request input must be an object"))?;
        if let Some(unknown) = input.keys().find(|key| !INPUT_KEYS.contains(&key.as_str())) {
            return Err(ConnectorError::validation(format!(
                "http.request input has an unknown key `{unknown}` (known: {})",
                INPUT_KEYS.join(", ")
            )));
        }
        let method = match input.get("method") {
            None | Some(Value::Null) => Method::GET,
            Some(Value::String(text)) => Method::from_bytes(text.to_ascii_uppercase().as_bytes())
                .map_err(|_| {
                ConnectorError::validation(format!("`{text}` is not an HTTP method"))
            })?,
            Some(other) => {
                return Err(ConnectorError::validation(format!(
                    "method must be text, not {other}"
                )));
            }
        };
        let url_text = match input.get("url") {
            Some(Value::String(text)) if !text.is_empty() => text.as_str(),
            None | Some(Value::Null) => "",
            Some(Value::String(_)) => "",
            Some(other) => {
                return Err(ConnectorError::validation(format!(
                    "url must be text, not {other}"
                )));
            }
        };
        let url = resolve_url(url_text, connection)?;
        let fail_on_status = match input.get("fail_on_status") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(flag)) => *flag,
            Some(other) => {
                return Err(ConnectorError::validation(format!(
                    "fail_on_status must be true or false, not {other}"
                )));
            }
        };
        Ok(RequestInput {
            method,
            url,
            headers: string_pairs(input.get("headers"), "headers")?,
            query: string_pairs(input.get("query"), "query")?,
            body: input.get("body").cloned().unwrap_or(Value::Null),
            form: string_pairs(input.get("form"), "form")?,
            timeout: timeout_field(input.get("timeout"))?,
            fail_on_status,
        })
    }
}

const INPUT_KEYS: &[&str] = &[
    "method",
    "url",
    "headers",
    "query",
    "body",
    "form",
    "timeout",
    "fail_on_status",
];

/// Joins a relative URL to the connection's base URL. An absolute URL must stay within the base
/// URL's origin, so that a connection's credentials go nowhere else.
fn resolve_url(text: &str, connection: Option<&Connection>) -> Result<Url, ConnectorError> {
    let base = match connection.and_then(|c| c.text("base_url")) {
        Some(base) => Some(Url::parse(base).map_err(|error| {
            ConnectorError::validation(format!(
                "the connection's base_url `{base}` is not a URL: {error}"
            ))
        })?),
        None => None,
    };
    let url = match (Url::parse(text), &base) {
        (Ok(url), Some(base)) if url.origin() != base.origin() => {
            return Err(ConnectorError::validation(format!(
                "url `{}` is outside the connection's base_url {}: a connection's credentials are only sent to its own host",
                redact_query(&url),
                base.origin().ascii_serialization()
            )));
        }
        (Ok(url), _) => url,
        (Err(url::ParseError::RelativeUrlWithoutBase), Some(base)) => join_relative(base, text)?,
        (Err(url::ParseError::RelativeUrlWithoutBase), None) if text.is_empty() => {
            return Err(ConnectorError::validation("http.request needs a url"));
        }
        (Err(error), _) => {
            return Err(ConnectorError::validation(format!(
                "`{text}` is not a URL: {error}"
            )));
        }
    };
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(ConnectorError::validation(format!(
            "url scheme `{other}` is not http or https"
        ))),
    }
}

/// `base_url: https://api.example.com/v2` with `url: /users` gives `…/v2/users`: a base URL is
/// a prefix, as users of integration tools expect, not a document to resolve against.
fn join_relative(base: &Url, path: &str) -> Result<Url, ConnectorError> {
    let joined = format!(
        "{}/{}",
        base.as_str().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    Url::parse(&joined).map_err(|error| {
        ConnectorError::validation(format!(
            "`{path}` does not make a URL with the base URL: {error}"
        ))
    })
}

/// A URL for messages: its query may hold an API key, so it is shown as `?…`.
fn redact_query(url: &Url) -> String {
    let mut shown = url.clone();
    let had_query = shown.query().is_some();
    shown.set_query(None);
    if had_query {
        format!("{shown}?…")
    } else {
        shown.to_string()
    }
}

fn string_pairs(
    value: Option<&Value>,
    what: &str,
) -> Result<Vec<(String, String)>, ConnectorError> {
    let map = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(ConnectorError::validation(format!(
                "{what} must be an object, not {other}"
            )));
        }
    };
    let mut pairs = Vec::with_capacity(map.len());
    for (name, value) in map {
        match value {
            Value::Null => {}
            Value::Array(items) => {
                pairs.extend(items.iter().map(|item| (name.clone(), scalar_text(item))))
            }
            other => pairs.push((name.clone(), scalar_text(other))),
        }
    }
    Ok(pairs)
}

fn timeout_field(value: Option<&Value>) -> Result<Option<Duration>, ConnectorError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => parse_duration(text)
            .map(Some)
            .map_err(ConnectorError::validation),
        Some(Value::Number(number)) => match number.as_u64() {
            Some(ms) => Ok(Some(Duration::from_millis(ms))),
            None => Err(ConnectorError::validation(format!(
                "timeout must be a duration such as 10s, not {number}"
            ))),
        },
        Some(other) => Err(ConnectorError::validation(format!(
            "timeout must be a duration such as 10s, not {other}"
        ))),
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[async_trait]
impl Connector for HttpConnector {
    fn name(&self) -> &'static str {
        "http"
    }

    fn description(&self) -> &'static str {
        "Calls any HTTP API."
    }

    fn needs_connection(&self) -> bool {
        false
    }

    fn connection_fields(&self) -> Vec<ConnectionField> {
        let field = ConnectionField::new;
        vec![
            field(
                "base_url",
                "Prefix of relative request URLs; credentials go to this origin only.",
                false,
                false,
            ),
            field(
                "auth",
                "none, bearer, basic, api_key, oauth2_code or oauth2_client_credentials.",
                false,
                false,
            ),
            field("token", "Bearer token (auth: bearer).", false, true),
            field("username", "User name (auth: basic).", false, false),
            field("password", "Password (auth: basic).", false, true),
            field(
                "key_name",
                "Header or query parameter name (auth: api_key).",
                false,
                false,
            ),
            field("key_value", "The API key (auth: api_key).", false, true),
            field(
                "token_url",
                "Token endpoint (auth: oauth2_code, oauth2_client_credentials).",
                false,
                false,
            ),
            field(
                "authorize_url",
                "Authorization endpoint the person signs in at (auth: oauth2_code).",
                false,
                false,
            ),
            field("client_id", "OAuth 2 client id.", false, false),
            field("client_secret", "OAuth 2 client secret.", false, true),
            field(
                "scopes",
                "OAuth 2 scopes, separated by spaces.",
                false,
                false,
            ),
            field(
                "access_token",
                "Set by connecting the account (auth: oauth2_code).",
                false,
                true,
            ),
            field(
                "refresh_token",
                "Set by connecting the account (auth: oauth2_code).",
                false,
                true,
            ),
            field(
                "signing_secret",
                "Secret that signs the webhooks this service sends (a recipe's webhook `signature` names the connection).",
                false,
                true,
            ),
            field(
                "expires_at",
                "When the access token expires; set by connecting the account.",
                false,
                false,
            ),
            field(
                "key_in",
                "header (default) or query (auth: api_key).",
                false,
                false,
            ),
        ]
    }

    fn actions(&self) -> Vec<ActionSpec> {
        vec![ActionSpec {
            name: "request",
            description: "Sends one HTTP request and returns the response.",
            input_schema: request_input_schema(),
            output_schema: json!({
                "type": "object",
                "properties": {
                    "status": { "type": "integer" },
                    "headers": { "type": "object", "additionalProperties": { "type": "string" } },
                    "body": { "description": "Parsed JSON when the response says JSON, else text." }
                },
                "required": ["status", "headers", "body"]
            }),
        }]
    }

    fn check_connection(&self, connection: &Connection) -> Result<(), ConnectorError> {
        HttpAuth::from_connection(connection).map(|_| ())
    }

    async fn test_connection(&self, connection: &Connection) -> Result<(), ConnectorError> {
        self.check_connection(connection)?;
        let Some(base) = connection.text("base_url") else {
            return Ok(());
        };
        let input = json!({ "method": "HEAD", "url": base, "fail_on_status": false });
        let context = CallContext::outside_jobs(Duration::from_secs(10));
        let response = self
            .call("request", Some(connection), input, &context)
            .await?;
        // The base URL need not be a resource (a 404 is fine); a refusal of the credentials is
        // what the test is for.
        match response["status"].as_u64() {
            Some(status @ (401 | 403)) => Err(ConnectorError::remote(format!(
                "{base} refused the credentials (HTTP {status})"
            ))),
            _ => Ok(()),
        }
    }

    async fn call(
        &self,
        action: &str,
        connection: Option<&Connection>,
        input: Value,
        context: &CallContext,
    ) -> Result<Value, ConnectorError> {
        if action != "request" {
            return Err(ConnectorError::validation(format!(
                "the http connector has no action `{action}`"
            )));
        }
        let auth = match connection {
            Some(connection) => HttpAuth::from_connection(connection)?,
            None => HttpAuth::None,
        };
        let request = RequestInput::parse(&input, connection)?;
        match (&auth, connection) {
            (HttpAuth::OAuth2Client, Some(connection)) => {
                self.send_with_client_token(request, connection, context)
                    .await
            }
            (HttpAuth::OAuth2Token(token), Some(connection)) if token.is_empty() => {
                Err(ConnectorError::validation(format!(
                    "connection `{}` is not connected to its account yet: connect it (POST \
                     /api/v1/connections/{{id}}/oauth/start) and sign in",
                    connection.name
                )))
            }
            _ => self.send(request, &auth, context).await,
        }
    }
}

impl HttpConnector {
    /// Sends with a token of the client credentials grant: fetched when there is none or it
    /// is about to expire, and fetched again once when the remote end refuses it.
    async fn send_with_client_token(
        &self,
        request: RequestInput,
        connection: &Connection,
        context: &CallContext,
    ) -> Result<Value, ConnectorError> {
        let key = format!(
            "{}\0{}",
            connection.name,
            Value::Object(connection.fields.clone())
        );
        let cached = self
            .client_tokens
            .lock()
            .ok()
            .and_then(|tokens| tokens.get(&key).cloned())
            .filter(|tokens| !tokens.expiring());
        let fresh = cached.is_none();
        let tokens = match cached {
            Some(tokens) => tokens,
            None => self.fetch_client_token(&key, connection).await?,
        };
        let auth = HttpAuth::OAuth2Token(tokens.access_token);
        let outcome = match self.send(request.clone(), &auth, context).await {
            Err(error) if error.credentials_rejected && !fresh => {
                let tokens = self.fetch_client_token(&key, connection).await?;
                self.send(
                    request,
                    &HttpAuth::OAuth2Token(tokens.access_token),
                    context,
                )
                .await
            }
            outcome => outcome,
        };
        // The token was fetched again here already: the engine has nothing to refresh.
        outcome.map_err(|mut error| {
            error.credentials_rejected = false;
            error
        })
    }

    async fn fetch_client_token(
        &self,
        key: &str,
        connection: &Connection,
    ) -> Result<oauth::Tokens, ConnectorError> {
        let tokens = oauth::client_credentials(&self.client, connection).await?;
        if let Ok(mut cache) = self.client_tokens.lock() {
            cache.insert(key.to_owned(), tokens.clone());
        }
        Ok(tokens)
    }

    async fn send(
        &self,
        input: RequestInput,
        auth: &HttpAuth,
        context: &CallContext,
    ) -> Result<Value, ConnectorError> {
        if let Some(refusal) = literal_ip_refusal(&input.url, self.options.network) {
            return Err(ConnectorError::validation(refusal));
        }
        let timeout = [input.timeout, context.timeout]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(self.options.default_timeout);
        let client = if auth.is_custom_header() {
            &self.same_origin_client
        } else {
            &self.client
        };
        let host = input.url.host_str().unwrap_or_default().to_owned();
        let mut request = client
            .request(input.method.clone(), input.url.clone())
            .timeout(timeout);
        for (name, value) in &input.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if !context.idempotency_key.is_empty() && !has_header(&input.headers, IDEMPOTENCY_KEY) {
            request = request.header(IDEMPOTENCY_KEY, context.idempotency_key.as_str());
        }
        if !input.query.is_empty() {
            request = request.query(&input.query);
        }
        request = auth.apply(request);
        if !input.form.is_empty() && !input.body.is_null() {
            return Err(ConnectorError::validation(
                "give `body` or `form`, not both",
            ));
        }
        if !input.form.is_empty() {
            request = request.form(&input.form);
        }
        request = match &input.body {
            Value::Null => request,
            Value::String(text) => {
                let request = request.body(text.clone());
                if has_header(&input.headers, "content-type") {
                    request
                } else {
                    request.header("content-type", "text/plain; charset=utf-8")
                }
            }
            other => request.json(other),
        };
        let described = |error: reqwest::Error| describe_error(error, &host, timeout);
        let mut response = request.send().await.map_err(described)?;
        let status = response.status();
        let headers = response_headers(response.headers());
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(described)? {
            if bytes.len() + chunk.len() > self.options.max_response_bytes {
                return Err(ConnectorError::remote(format!(
                    "the response from {host} is larger than the limit of {} bytes",
                    self.options.max_response_bytes
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        let body = parse_body(&headers, &bytes);
        if input.fail_on_status && status.as_u16() >= 400 {
            // The start of the body usually says why; a person fixing the recipe needs it.
            let said = match &body {
                Value::Null => String::new(),
                Value::String(text) if text.trim().is_empty() => String::new(),
                Value::String(text) => format!(": {}", shorten(text, 300)),
                other => format!(": {}", shorten(&other.to_string(), 300)),
            };
            let error = ConnectorError::remote(format!(
                "{} {} answered HTTP {}{}{said}",
                input.method,
                redact_query(&input.url),
                status.as_u16(),
                status
                    .canonical_reason()
                    .map(|reason| format!(" {reason}"))
                    .unwrap_or_default()
            ));
            // Only a token that can be refreshed is worth a second try; other credentials
            // would be refused again, and the request (perhaps not idempotent) sent twice.
            if status.as_u16() == 401 && matches!(auth, HttpAuth::OAuth2Token(_)) {
                let mut error = error;
                error.credentials_rejected = true;
                return Err(error);
            }
            let pause = matches!(status.as_u16(), 429 | 503)
                .then(|| {
                    headers
                        .get("retry-after")
                        .and_then(Value::as_str)
                        .and_then(retry_after)
                })
                .flatten();
            return Err(match pause {
                Some(pause) => error.with_retry_after(pause),
                None => error,
            });
        }
        Ok(json!({ "status": status.as_u16(), "headers": headers, "body": body }))
    }
}

/// A `Retry-After` value: seconds, or an HTTP date (a date in the past means now).
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// The header that carries a call's idempotency key: the same for every attempt of one step
/// of one job, so that an API that honours it (Stripe's convention, adopted widely) applies a
/// call repeated after a crash or a retry only once.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

fn has_header(headers: &[(String, String)], name: &str) -> bool {
    headers
        .iter()
        .any(|(header, _)| header.eq_ignore_ascii_case(name))
}

fn response_headers(headers: &reqwest::header::HeaderMap) -> Map<String, Value> {
    let mut map = Map::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match map.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                map.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    map
}

fn parse_body(headers: &Map<String, Value>, bytes: &[u8]) -> Value {
    let is_json = headers
        .get("content-type")
        .and_then(Value::as_str)
        .is_some_and(|kind| kind.contains("json"));
    if is_json {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Value::Null;
        }
        if let Ok(parsed) = serde_json::from_slice(bytes) {
            return parsed;
        }
    }
    Value::String(String::from_utf8_lossy(bytes).into_owned())
}

/// Turns a client error into a message without the URL, which may carry an API key.
fn describe_error(error: reqwest::Error, host: &str, timeout: Duration) -> ConnectorError {
    if error.is_timeout() {
        return ConnectorError::timeout(format!(
            "the request to {host} timed out after {}",
            format_duration(timeout)
        ));
    }
    let mut message = format!("the request to {host} failed");
    let mut refused_by_policy = false;
    let mut source: Option<&dyn std::error::Error> = Some(&error);
    let mut seen = Vec::new();
    while let Some(cause) = source {
        let text = cause.to_string();
        refused_by_policy |= text.starts_with(network::REFUSED);
        if !text.contains("://") && !seen.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
            seen.push(text);
        }
        source = cause.source();
    }
    // A refused address is the recipe's doing: retrying cannot help.
    if refused_by_policy {
        ConnectorError::validation(message)
    } else {
        ConnectorError::remote(message)
    }
}

fn request_input_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "method": { "type": "string", "default": "GET" },
            "url": { "type": "string", "description": "Absolute, or relative to the connection's base_url." },
            "headers": { "type": "object" },
            "query": { "type": "object" },
            "body": { "description": "An object or list is sent as JSON, a string as text." },
            "form": { "type": "object", "description": "Fields sent as an HTML form (application/x-www-form-urlencoded), instead of a body." },
            "timeout": { "type": "string", "description": "A duration such as 10s." },
            "fail_on_status": { "type": "boolean", "default": true }
        },
        "required": ["url"]
    })
}
