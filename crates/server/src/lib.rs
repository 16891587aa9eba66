//! Weft's HTTP server: webhooks, the REST API and health checks, over the runtime.

pub mod auth;
mod error;
mod hooks;
mod jobs;
mod recipes;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{any, get, post};
use std::time::Duration;
use weft_runtime::Runtime;

pub use error::ApiError;
pub use hooks::SYNC_WAIT;

/// Settings of the HTTP side.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Largest webhook body accepted.
    pub max_payload_bytes: usize,
    /// How long a sync webhook waits for its job before it answers 202.
    pub sync_wait: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_payload_bytes: 1024 * 1024,
            sync_wait: SYNC_WAIT,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub runtime: Runtime,
    pub settings: Settings,
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/recipes", post(recipes::create).get(recipes::list))
        .route(
            "/recipes/{id}",
            get(recipes::show)
                .put(recipes::replace)
                .delete(recipes::delete),
        )
        .route("/recipes/{id}/enable", post(recipes::enable))
        .route("/recipes/{id}/disable", post(recipes::disable))
        .route("/recipes/{id}/versions", get(recipes::versions))
        .route("/recipes/{id}/run", post(recipes::run))
        .route("/jobs", get(jobs::list))
        .route("/jobs/rerun", post(jobs::rerun_many))
        .route("/jobs/{id}", get(jobs::show))
        .route("/jobs/{id}/rerun", post(jobs::rerun))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .layer(DefaultBodyLimit::max(2 * 1024 * 1024));
    let hooks = Router::new()
        .route("/hooks/{*path}", any(hooks::receive))
        .layer(DefaultBodyLimit::max(state.settings.max_payload_bytes));
    Router::new()
        .nest("/api/v1", api)
        .merge(hooks)
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .fallback(|| async { ApiError::not_found("route here") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .with_state(state)
}

/// Ready when the store answers.
async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.runtime.store().ping().await {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "the store does not answer")
    }
}
