//! Weft's HTTP server: webhooks, the REST API and health checks, over the runtime.

mod access;
pub mod accounts;
mod audit;
pub mod auth;
mod billing;
mod connections;
mod dashboard;
mod error;
mod flow;
mod hooks;
mod jobs;
mod library;
mod members;
pub mod notices;
mod openapi;
mod privacy;
mod recipes;
mod rights;
pub mod sessions;
mod sso;
mod tables;
mod tokens;
pub mod usage;
mod web;
mod workspaces;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{any, get};
use std::time::Duration;
use weft_runtime::Runtime;

pub use access::{ApiRoute, api_routes};
pub use error::ApiError;
pub use hooks::SYNC_WAIT;

/// Settings of the HTTP side.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Largest webhook body accepted.
    pub max_payload_bytes: usize,
    /// How long a sync webhook waits for its job before it answers 202.
    pub sync_wait: Duration,
    /// Where people reach this server, without a trailing slash: the OAuth 2 callback is
    /// under it, and session cookies are `Secure` when it is `https`.
    pub public_url: String,
    /// A browser session ends when unused this long.
    pub session_idle: Duration,
    /// The stored `email` connection Weft sends its own mail through (invitations, password
    /// resets, email checks); none: such mail is not sent.
    pub mail_connection: Option<String>,
    /// A browser session ends this long after sign-in, used or not.
    pub session_max: Duration,
    /// Anyone may sign up, with a workspace of their own (off: people join by invitation).
    pub sign_up: bool,
    /// How long job history is kept when neither its recipe nor its workspace says.
    pub history_keep: Duration,
    /// How long an account whose deletion was asked for stays, so that its person can cancel.
    pub account_deletion_grace: Duration,
    /// How long a closed workspace stays, so that its owners can reopen it or take its data out.
    pub workspace_close_grace: Duration,
    /// The secret the billing provider signs its webhook events with; none: billing is off.
    pub billing_webhook_secret: Option<SigningSecret>,
}

/// A signing secret: shown nowhere, not even in debug output.
#[derive(Clone)]
pub struct SigningSecret(String);

impl SigningSecret {
    pub fn new(secret: String) -> SigningSecret {
        SigningSecret(secret)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret([hidden])")
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_payload_bytes: 1024 * 1024,
            sync_wait: SYNC_WAIT,
            public_url: "http://127.0.0.1:8080".to_owned(),
            session_idle: Duration::from_secs(8 * 3600),
            mail_connection: None,
            session_max: Duration::from_secs(7 * 24 * 3600),
            sign_up: false,
            history_keep: Duration::from_secs(30 * 86_400),
            account_deletion_grace: Duration::from_secs(30 * 86_400),
            workspace_close_grace: Duration::from_secs(30 * 86_400),
            billing_webhook_secret: None,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub runtime: Runtime,
    /// Stored connections, their secrets sealed.
    pub connections: std::sync::Arc<weft_runtime::ConnectionBook>,
    /// Lookup tables, kept in memory.
    pub tables: std::sync::Arc<weft_runtime::tables::TableBook>,
    pub settings: Settings,
    /// Renders the process's metrics; `None` when no recorder is installed.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Seals and opens the secrets the server keeps itself (single sign-on's client secret).
    pub vault: std::sync::Arc<weft_store::vault::Vault>,
    /// Failed sign-ins of the last while, by account and by address.
    pub sign_in_failures: std::sync::Arc<sessions::FailureCounter>,
}

impl AppState {
    /// The compiled current version of a stored recipe.
    pub(crate) async fn compiled(
        &self,
        stored: &weft_store::StoredRecipe,
    ) -> Result<std::sync::Arc<weft_recipe::Recipe>, ApiError> {
        self.runtime
            .recipes()
            .version(&stored.id, stored.version)
            .await
            .map_err(|message| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "recipe_unavailable",
                    message,
                )
            })
    }
}

/// Installs the process-wide metrics recorder and returns the handle that renders it.
pub fn install_metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    const SECONDS: &[f64] = &[0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("weft_step_duration_seconds".to_owned()),
            SECONDS,
        )
        .ok()?
        .install_recorder()
        .ok()
}

pub fn router(state: AppState) -> Router {
    let api = access::api_router(&state)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            forget_webhooks_after,
        ))
        .layer(DefaultBodyLimit::max(2 * 1024 * 1024));
    let hooks = Router::new()
        .route("/hooks/{*path}", any(hooks::receive))
        .route(
            "/w/{workspace}/hooks/{*path}",
            any(hooks::receive_in_workspace),
        )
        .layer(DefaultBodyLimit::max(state.settings.max_payload_bytes));
    Router::new()
        .nest("/api/v1", api)
        .merge(hooks)
        .route(
            "/billing/stripe",
            axum::routing::post(billing::receive).layer(DefaultBodyLimit::max(1024 * 1024)),
        )
        .route("/oauth/callback", get(connections::oauth_callback))
        .route("/sso/callback", get(sso::callback))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_text))
        .route("/assets/{*file}", get(web::asset))
        .fallback(
            |method: axum::http::Method, uri: axum::http::Uri, headers: axum::http::HeaderMap| async move {
                use axum::response::IntoResponse as _;
                web::page_for(&method, uri.path(), &headers)
                    .unwrap_or_else(|| ApiError::not_found("route here").into_response())
            },
        )
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .with_state(state)
        .layer(axum::middleware::from_fn(privacy_headers))
}

/// The routes of a process that serves no API (`--role worker` or `--role scheduler`): health,
/// readiness and metrics, for its supervisor and monitoring. Anything else is a JSON `404`
/// that says where the API is.
pub fn health_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_text))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "this process serves only /healthz, /readyz and /metrics: its role runs no API; ask a web process",
            )
        })
        .with_state(state)
        .layer(axum::middleware::from_fn(privacy_headers))
}

/// What every answer tells the browser, for the privacy of whoever uses it: send no
/// `Referer` (URLs may name jobs and people) to anyone, let no page of Weft load anything from
/// another site or be framed by one, and take part in no interest tracking. A route that sets
/// its own policy (a photo) keeps it.
async fn privacy_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let defaults = [
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
        (
            header::HeaderName::from_static("permissions-policy"),
            "browsing-topics=(), interest-cohort=()",
        ),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

/// After a recipe changes, its webhook path (old or new) is looked up afresh.
async fn forget_webhooks_after(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    // Inside `/api/v1` the path comes without that prefix.
    let path = request.uri().path();
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let changes_recipes = request.method() != axum::http::Method::GET
        && path.starts_with("/recipes")
        && !path.ends_with("/run")
        && path != "/recipes/check";
    let response = next.run(request).await;
    if changes_recipes {
        state.runtime.recipes().forget_webhooks();
    }
    response
}

/// Prometheus text: counters kept as events happen, queue figures read at each scrape. Needs
/// an API token, like the rest of the API (Prometheus sends one with `authorization`).
async fn metrics_text(
    State(state): State<AppState>,
    _user: auth::CurrentUser,
) -> Result<([(axum::http::HeaderName, &'static str); 1], String), ApiError> {
    let Some(handle) = &state.metrics else {
        return Err(ApiError::not_found("metrics in this process"));
    };
    let unfinished = state.runtime.store().unfinished_jobs().await?;
    let age = unfinished.oldest_queued.map_or(0.0, |oldest| {
        (chrono::Utc::now() - oldest).num_milliseconds().max(0) as f64 / 1000.0
    });
    metrics::gauge!("weft_queue_depth").set(unfinished.queued as f64);
    metrics::gauge!("weft_queue_oldest_age_seconds").set(age);
    for (status, count) in [
        ("queued", unfinished.queued),
        ("running", unfinished.running),
        ("waiting", unfinished.waiting),
        ("held", unfinished.held),
    ] {
        metrics::gauge!("weft_jobs_unfinished", "status" => status).set(count as f64);
    }
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        handle.render(),
    ))
}

/// How long a readiness check waits for the store.
const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Ready when the store answers, within [`READY_WAIT`]: a load balancer's check must not hang
/// while the store does.
async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match tokio::time::timeout(READY_WAIT, state.runtime.store().ping()).await {
        Ok(true) => (StatusCode::OK, "ready"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "the store does not answer"),
    }
}
