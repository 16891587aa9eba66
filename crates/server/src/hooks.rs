//! Webhooks: `/hooks/{path}` turns a request into a queued job. Async webhooks answer 202 with
//! the job id once the job is committed; sync webhooks wait for the job and answer with its
//! `respond` step or its output.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, extract::rejection::BytesRejection};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use std::time::Duration;
use weft_recipe::model::{SignatureScheme, SignatureSecret, Trigger, WebhookMode};
use weft_runtime::{Acceptance, Accepted};

use crate::AppState;
use crate::error::ApiError;

/// A webhook of the default workspace: `/hooks/{path}`.
pub async fn receive(
    State(state): State<AppState>,
    method: Method,
    Path(path): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let hook = Hook {
        workspace: weft_store::DEFAULT_WORKSPACE.to_owned(),
        path,
    };
    receive_at(state, hook, method, query, headers, body).await
}

/// A webhook of any workspace: `/w/{workspace}/hooks/{path}`, so that two workspaces'
/// paths never collide.
pub async fn receive_in_workspace(
    State(state): State<AppState>,
    method: Method,
    Path((workspace, path)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    receive_at(
        state,
        Hook { workspace, path },
        method,
        query,
        headers,
        body,
    )
    .await
}

/// Where a webhook request came in.
struct Hook {
    workspace: String,
    path: String,
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.workspace.as_str() {
            weft_store::DEFAULT_WORKSPACE => write!(f, "/hooks/{}", self.path),
            workspace => write!(f, "/w/{workspace}/hooks/{}", self.path),
        }
    }
}

async fn receive_at(
    state: AppState,
    hook: Hook,
    method: Method,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let path = &hook.path;
    let body = body.map_err(|rejection| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the request body could not be read: {rejection} (the limit is {} bytes)",
                state.settings.max_payload_bytes
            ),
        )
    })?;
    let runtime = &state.runtime;
    let stored = runtime
        .recipes()
        .webhook(&hook.workspace, path)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("enabled recipe listens on {hook}")))?;
    let recipe = state.compiled(&stored).await?;
    let Trigger::Webhook(webhook) = &recipe.trigger else {
        return Err(ApiError::not_found("webhook trigger on this path"));
    };
    if method.as_str() != webhook.method {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{hook} takes {}, not {method}", webhook.method),
        ));
    }
    if let Some(signature) = &webhook.signature {
        let secret = signing_secret(&state, &hook.workspace, &signature.secret).await?;
        verify_signature(&signature.scheme, secret.as_bytes(), &headers, &body)?;
        if let Some(challenge) = slack_url_verification(&signature.scheme, &body) {
            // Slack checks a new events URL with a challenge it expects back, not a job.
            return Ok(Json(json!({ "challenge": challenge })).into_response());
        }
    }
    let trigger = trigger_value(&method, path, &headers, query, &body)?;
    weft_runtime::event_accepted("webhook");
    let job_id = weft_store::new_id();
    match webhook.mode {
        WebhookMode::Async => {
            let accepted = runtime
                .accept(&job_id, &stored, &recipe, trigger, Acceptance::Committed)
                .await?;
            if accepted == Accepted::Held {
                return Ok(held_answer(&job_id));
            }
            Ok((StatusCode::ACCEPTED, Json(json!({ "job_id": job_id }))).into_response())
        }
        WebhookMode::Sync => {
            let finished = runtime.wait_for(&job_id);
            // A caller that hangs up stops the wait: nothing keeps looking for its answer.
            let _waiting = StopWaiting {
                runtime: runtime.clone(),
                job_id: job_id.clone(),
            };
            match runtime
                .accept(
                    &job_id,
                    &stored,
                    &recipe,
                    trigger,
                    Acceptance::BeforeEffects,
                )
                .await
            {
                Ok(Accepted::Held) => {
                    runtime.stop_waiting(&job_id);
                    return Ok(held_answer(&job_id));
                }
                Ok(_) => {}
                Err(error) => {
                    runtime.stop_waiting(&job_id);
                    return Err(error.into());
                }
            }
            match tokio::time::timeout(state.settings.sync_wait, finished).await {
                Ok(Ok(reply)) => Ok(respond(&reply)),
                _ => {
                    runtime.stop_waiting(&job_id);
                    // "Accepted" means committed, for this answer as for an async webhook's.
                    if let Err(error) = runtime.write_before_answering(&job_id).await {
                        tracing::error!(%error, job = %job_id, "cannot write a sync webhook's job");
                        return Err(ApiError::store_unavailable());
                    }
                    Ok((
                        StatusCode::ACCEPTED,
                        Json(json!({ "job_id": job_id, "message": "the job did not answer in time; it goes on, and its record will be in the job history" })),
                    )
                        .into_response())
                }
            }
        }
    }
}

/// Ends a sync caller's wait for its job's answer when its request ends, however it ends.
struct StopWaiting {
    runtime: weft_runtime::Runtime,
    job_id: String,
}

impl Drop for StopWaiting {
    fn drop(&mut self) {
        self.runtime.stop_waiting(&self.job_id);
    }
}

/// The event a webhook job gets as `trigger`.
fn trigger_value(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    query: Vec<(String, String)>,
    body: &[u8],
) -> Result<Value, ApiError> {
    let mut header_map = Map::new();
    for (name, value) in headers {
        let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match header_map.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&text);
            }
            _ => {
                header_map.insert(name.as_str().to_owned(), Value::String(text));
            }
        }
    }
    let mut query_map = Map::new();
    for (name, value) in query {
        match query_map.get_mut(&name) {
            Some(Value::Array(values)) => values.push(Value::String(value)),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(value)]);
            }
            None => {
                query_map.insert(name, Value::String(value));
            }
        }
    }
    let is_json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|kind| kind.contains("json"));
    let body = if body.is_empty() {
        Value::Null
    } else if is_json {
        serde_json::from_slice(body).map_err(|error| {
            ApiError::bad_request(format!("the body says it is JSON but is not: {error}"))
        })?
    } else {
        Value::String(String::from_utf8_lossy(body).into_owned())
    };
    Ok(json!({
        "method": method.as_str(),
        "path": path,
        "headers": header_map,
        "query": query_map,
        "body": body,
    }))
}

/// The answer to an event whose job is kept but held over the workspace's task limit: it is
/// accepted all the same, and runs once released.
pub(crate) fn held_answer(job_id: &str) -> Response {
    let message = "accepted and held: the workspace used its plan's tasks for this month; the job runs when the month turns, the plan is raised or an operator releases it";
    (
        StatusCode::ACCEPTED,
        Json(json!({ "job_id": job_id, "held": "quota", "message": message })),
    )
        .into_response()
}

/// Longest age of a signed Slack or Stripe request: older ones may be replays.
const SIGNATURE_TOLERANCE_SECONDS: i64 = 300;

/// The signing secret of a webhook: written in the recipe, or the `signing_secret` field of
/// a connection (sealed at rest).
async fn signing_secret(
    state: &AppState,
    workspace: &str,
    secret: &SignatureSecret,
) -> Result<String, ApiError> {
    let name = match secret {
        SignatureSecret::Literal(secret) => return Ok(secret.clone()),
        SignatureSecret::Connection(name) => name,
    };
    let unavailable = |why: String| {
        tracing::error!(connection = %name, %why, "a webhook's signing secret is unavailable");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "signature_unavailable",
            "the webhook's signing secret is unavailable; see the server's log",
        )
    };
    let connection = weft_engine::Connections::get(state.connections.as_ref(), workspace, name)
        .await
        .map_err(unavailable)?;
    connection
        .text("signing_secret")
        .map(str::to_owned)
        .ok_or_else(|| unavailable("the connection has no `signing_secret`".to_owned()))
}

/// Checks a request's signature of its raw body, in constant time.
pub(crate) fn verify_signature(
    scheme: &SignatureScheme,
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), ApiError> {
    let refuse =
        |why: &str| ApiError::new(StatusCode::UNAUTHORIZED, "bad_signature", why.to_owned());
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| refuse(&format!("the request has no `{name}` header")))
    };
    let mac = || {
        Hmac::<Sha256>::new_from_slice(secret).map_err(|_| refuse("the signature key is unusable"))
    };
    let fresh = |timestamp: &str| {
        let at: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| refuse("the signature's timestamp is not a number"))?;
        if (chrono::Utc::now().timestamp() - at).abs() > SIGNATURE_TOLERANCE_SECONDS {
            return Err(refuse("the signature is more than five minutes old"));
        }
        Ok(())
    };
    let matches = |mut mac: Hmac<Sha256>, hex_digest: &str| {
        let digest = hex::decode(hex_digest.trim())
            .map_err(|_| refuse("the signature is not hexadecimal"))?;
        mac.update(body);
        mac.verify_slice(&digest)
            .map_err(|_| refuse("the signature does not match the body"))
    };
    match scheme {
        SignatureScheme::Hmac {
            header: name,
            prefix,
        } => {
            let given = header(name)?
                .strip_prefix(prefix.as_str())
                .ok_or_else(|| refuse("the signature does not start with the expected prefix"))?;
            matches(mac()?, given)
        }
        SignatureScheme::Slack => {
            let timestamp = header("x-slack-request-timestamp")?;
            fresh(timestamp)?;
            let given = header("x-slack-signature")?
                .strip_prefix("v0=")
                .ok_or_else(|| refuse("the signature does not start with v0="))?;
            let mut signed = mac()?;
            signed.update(format!("v0:{timestamp}:").as_bytes());
            matches(signed, given)
        }
        SignatureScheme::Stripe => {
            let given = header("stripe-signature")?;
            let mut timestamp = None;
            let mut candidates = Vec::new();
            for part in given.split(',') {
                match part.trim().split_once('=') {
                    Some(("t", value)) => timestamp = Some(value),
                    Some(("v1", value)) => candidates.push(value),
                    _ => {}
                }
            }
            let timestamp = timestamp.ok_or_else(|| refuse("the signature has no timestamp"))?;
            fresh(timestamp)?;
            let mut signed = mac()?;
            signed.update(format!("{timestamp}.").as_bytes());
            // Stripe sends one v1 per active secret while a secret is being rolled.
            if candidates
                .iter()
                .any(|candidate| matches(signed.clone(), candidate).is_ok())
            {
                Ok(())
            } else {
                Err(refuse("the signature does not match the body"))
            }
        }
    }
}

/// The challenge of Slack's `url_verification` request, when this is one.
fn slack_url_verification(scheme: &SignatureScheme, body: &[u8]) -> Option<String> {
    if *scheme != SignatureScheme::Slack {
        return None;
    }
    let event: Value = serde_json::from_slice(body).ok()?;
    (event["type"] == "url_verification")
        .then(|| event["challenge"].as_str().map(str::to_owned))
        .flatten()
}

/// The answer of a sync webhook: its job's first `respond` step, else how the job ended (see
/// [`weft_runtime::finished_reply`]).
fn respond(response: &Value) -> Response {
    let status = response
        .get("status")
        .and_then(Value::as_u64)
        .and_then(|status| StatusCode::from_u16(status as u16).ok())
        .unwrap_or(StatusCode::OK);
    let body = response.get("body").cloned().unwrap_or(Value::Null);
    let as_json = response.get("body_is_json") == Some(&Value::Bool(true));
    let mut answer = match body {
        // A job's output (no `respond` step) is JSON, whatever its type.
        body if as_json => (status, Json(body)).into_response(),
        Value::String(text) => (status, text).into_response(),
        Value::Null => status.into_response(),
        other => (status, Json(other)).into_response(),
    };
    if let Some(Value::Object(headers)) = response.get("headers") {
        for (name, value) in headers {
            let text = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(text),
            ) {
                answer.headers_mut().insert(name, value);
            }
        }
    }
    answer
}

/// How long a sync webhook waits for its job by default.
pub const SYNC_WAIT: Duration = Duration::from_secs(30);
