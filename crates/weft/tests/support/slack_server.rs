//! A stand-in for Slack's Web API: the methods the slack connector calls, checking the bot
//! token, and a `/state` page with what was posted and uploaded.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const BOT_TOKEN: &str = "xoxb-test-8c1e";

#[derive(Default)]
struct Workspace {
    messages: Vec<Value>,
    files: HashMap<String, Value>,
}

type Shared = Arc<Mutex<Workspace>>;

pub struct SlackServer {
    pub base: String,
}

impl SlackServer {
    pub fn start() -> SlackServer {
        let routes = Router::new()
            .route("/api/auth.test", post(auth_test))
            .route("/api/chat.postMessage", post(post_message))
            .route("/api/chat.update", post(update))
            .route("/api/files.getUploadURLExternal", post(upload_url))
            .route("/upload/{id}", post(upload))
            .route("/api/files.completeUploadExternal", post(complete))
            .route("/state", get(state))
            .with_state(Shared::default());
        SlackServer {
            base: super::serve_routes(routes),
        }
    }
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {BOT_TOKEN}"))
}

fn refused(error: &str) -> Response {
    axum::Json(json!({ "ok": false, "error": error })).into_response()
}

async fn auth_test(headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return refused("invalid_auth");
    }
    axum::Json(json!({ "ok": true, "team": "Test" })).into_response()
}

async fn post_message(
    State(workspace): State<Shared>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if !authorized(&headers) {
        return refused("invalid_auth");
    }
    if body["channel"] == "C404" {
        return refused("channel_not_found");
    }
    let mut workspace = workspace.lock().expect("the workspace lock");
    let ts = format!("1700000000.{:06}", workspace.messages.len() + 1);
    let mut message = body.clone();
    message["ts"] = json!(ts);
    workspace.messages.push(message);
    axum::Json(json!({ "ok": true, "channel": body["channel"], "ts": ts, "message": { "text": body["text"] } })).into_response()
}

async fn update(
    State(workspace): State<Shared>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if !authorized(&headers) {
        return refused("invalid_auth");
    }
    let mut workspace = workspace.lock().expect("the workspace lock");
    let Some(message) = workspace
        .messages
        .iter_mut()
        .find(|message| message["ts"] == body["ts"])
    else {
        return refused("message_not_found");
    };
    message["text"] = body["text"].clone();
    axum::Json(
        json!({ "ok": true, "channel": body["channel"], "ts": body["ts"], "text": body["text"] }),
    )
    .into_response()
}

async fn upload_url(
    State(workspace): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !authorized(&headers) {
        return refused("invalid_auth");
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut workspace = workspace.lock().expect("the workspace lock");
    let id = format!("F{}", workspace.files.len() + 1);
    workspace.files.insert(
        id.clone(),
        json!({ "filename": form.get("filename"), "length": form.get("length") }),
    );
    axum::Json(
        json!({ "ok": true, "upload_url": format!("http://{host}/upload/{id}"), "file_id": id }),
    )
    .into_response()
}

async fn upload(State(workspace): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let mut workspace = workspace.lock().expect("the workspace lock");
    if let Some(file) = workspace.files.get_mut(&id) {
        file["content"] = json!(String::from_utf8_lossy(&body));
    }
    format!("OK - {}", body.len()).into_response()
}

async fn complete(
    State(workspace): State<Shared>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if !authorized(&headers) {
        return refused("invalid_auth");
    }
    let mut workspace = workspace.lock().expect("the workspace lock");
    let mut shared = Vec::new();
    for file in body["files"].as_array().cloned().unwrap_or_default() {
        let id = file["id"].as_str().unwrap_or_default().to_owned();
        let Some(known) = workspace.files.get_mut(&id) else {
            return refused("file_not_found");
        };
        known["title"] = file["title"].clone();
        known["channel"] = body["channel_id"].clone();
        known["comment"] = body["initial_comment"].clone();
        shared.push(json!({ "id": id, "title": file["title"] }));
    }
    axum::Json(json!({ "ok": true, "files": shared })).into_response()
}

async fn state(State(workspace): State<Shared>) -> Response {
    let workspace = workspace.lock().expect("the workspace lock");
    axum::Json(json!({ "messages": workspace.messages, "files": workspace.files })).into_response()
}
