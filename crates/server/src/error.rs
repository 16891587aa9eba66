//! API errors: a stable code, a message for people, and for invalid recipes every problem with
//! its line and column. Database errors never reach the caller as text.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use weft_recipe::Problems;
use weft_store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    problems: Option<Problems>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            problems: None,
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no {what}"))
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// The store failed; what it said is logged, not shown.
    pub fn store_unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the store could not answer; try again",
        )
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this route needs `Authorization: Bearer TOKEN` with a valid API token, or a signed-in session",
        )
    }

    pub fn invalid_recipe(problems: Problems) -> ApiError {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_recipe",
            message: format!("the recipe has {} problem(s)", problems.0.len()),
            problems: Some(problems),
        }
    }
}

/// A request body as text, with refusals (too large, not UTF-8) as JSON errors.
pub struct TextBody(pub String);

impl<S: Send + Sync> axum::extract::FromRequest<S> for TextBody {
    type Rejection = ApiError;

    async fn from_request(
        request: axum::extract::Request,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match String::from_request(request, state).await {
            Ok(text) => Ok(TextBody(text)),
            Err(rejection) => Err(ApiError::new(
                rejection.status(),
                "bad_body",
                rejection.body_text(),
            )),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::Conflict(what) => ApiError::new(StatusCode::CONFLICT, "conflict", what),
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::store_unavailable()
            }
        }
    }
}

/// A JSON request body as `T`, or a `400` saying the shape it must have (such as
/// `{"email", "password"}`) and what was wrong.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(
    body: &str,
    shape: &str,
) -> Result<T, ApiError> {
    serde_json::from_str(body)
        .map_err(|error| ApiError::bad_request(format!("the body must be {shape}: {error}")))
}

/// A recipe's problems as the API gives them: line, column and message each.
pub fn problems_json(problems: &Problems) -> Value {
    problems
        .0
        .iter()
        .map(|problem| json!({ "line": problem.span.line, "column": problem.span.col, "message": problem.message }))
        .collect()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(problems) = self.problems {
            error["problems"] = problems_json(&problems);
        }
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED && self.code == "unauthorized" {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
