//! A local HTTP server standing in for the remote APIs that `http.request` calls.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running server; it stops when the test process ends.
pub struct TestServer {
    pub base: String,
}

/// The calls made to each key of `/flaky`: the `Idempotency-Key` header each one carried.
#[derive(Clone, Default)]
struct Counters {
    calls: Arc<Mutex<HashMap<String, Vec<String>>>>,
    tracks: Arc<Mutex<HashMap<String, Track>>>,
}

/// What `/track/{key}` saw: when each call arrived, and how many were in flight at most.
#[derive(Default)]
struct Track {
    arrivals_ms: Vec<u128>,
    in_flight: usize,
    most_in_flight: usize,
}

/// Milliseconds since the test process started, for arrival times.
fn now_ms() -> u128 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis()
}

impl TestServer {
    pub fn start() -> TestServer {
        let base = super::serve_routes(routes());
        TestServer { base }
    }
}

fn routes() -> Router {
    Router::new()
        .route(
            "/json",
            get(|| async { axum::Json(json!({ "hello": "world", "n": 3 })) }),
        )
        .route("/text", get(|| async { "plain words" }))
        .route("/status/{code}", any(status))
        .route("/private", any(private))
        .route("/private/{*rest}", any(private))
        .route("/echo", any(echo))
        .route("/refuse", any(refuse))
        .route("/echo/{*rest}", any(echo))
        .route("/slow", get(slow))
        .route("/flaky/{key}/{failures}", any(flaky))
        .route("/calls/{key}", get(calls))
        .route("/track/{key}", any(track))
        .route("/tracked/{key}", get(tracked))
        .route("/busy/{key}", any(busy))
        .route("/redirect", get(redirect))
        .route("/big", get(|| async { "x".repeat(11 * 1024 * 1024) }))
        .with_state(Counters::default())
}

async fn status(Path(code): Path<u16>) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    (status, axum::Json(json!({ "status": code }))).into_response()
}

/// The bearer token `/private` lets in.
pub const PRIVATE_TOKEN: &str = "let-me-in-7f3a9c2b";

/// An API behind a bearer token: 200 with the path for [`PRIVATE_TOKEN`], 401 for anyone else.
/// Each call is counted under the path's last segment (`/calls/{segment}` tells how many).
async fn private(State(counters): State<Counters>, uri: Uri, headers: HeaderMap) -> Response {
    let segment = uri.path().rsplit('/').next().unwrap_or_default().to_owned();
    counters
        .calls
        .lock()
        .expect("the counter lock")
        .entry(segment)
        .or_default()
        .push(String::new());
    let expected = format!("Bearer {PRIVATE_TOKEN}");
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if given == Some(expected.as_str()) {
        axum::Json(json!({ "path": uri.path(), "welcome": true })).into_response()
    } else {
        (StatusCode::UNAUTHORIZED, "who are you?").into_response()
    }
}

/// Answers with what it received.
async fn echo(
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    // Who a `Basic` credential names, so that a test can tell it arrived though the record
    // masks the header.
    let basic_user = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()
        })
        .and_then(|decoded| {
            let text = String::from_utf8_lossy(&decoded).into_owned();
            text.split_once(':').map(|(user, _)| user.to_owned())
        });
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                json!(value.to_str().unwrap_or_default()),
            )
        })
        .collect();
    let text = String::from_utf8_lossy(&body).into_owned();
    let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    axum::Json(json!({
        "method": method.as_str(),
        "path": uri.path(),
        "headers": headers,
        "query": query,
        "body": parsed,
        "basic_user": basic_user,
    }))
    .into_response()
}

/// Refuses with 400, quoting the `card` it was sent, as some APIs quote bad input.
async fn refuse(Query(query): Query<HashMap<String, String>>) -> Response {
    let card = query.get("card").cloned().unwrap_or_default();
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": format!("cannot charge card {card}") })),
    )
        .into_response()
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(3)).await;
    "late"
}

/// Fails with 503 the first `failures` times a key is called, then succeeds.
async fn flaky(
    State(counters): State<Counters>,
    Path((key, failures)): Path<(String, u32)>,
    headers: HeaderMap,
) -> Response {
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let call = {
        let mut calls = counters.calls.lock().expect("the counter lock");
        let keys = calls.entry(key).or_default();
        keys.push(idempotency_key);
        keys.len() as u32
    };
    if call <= failures {
        (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/json")],
            json!({ "call": call }).to_string(),
        )
            .into_response()
    }
}

/// How many times a key of `/flaky` was called, and the idempotency key of each call,
/// without calling it.
async fn calls(State(counters): State<Counters>, Path(key): Path<String>) -> Response {
    let keys = counters
        .calls
        .lock()
        .expect("the counter lock")
        .get(&key)
        .cloned()
        .unwrap_or_default();
    axum::Json(json!({ "calls": keys.len(), "idempotency_keys": keys })).into_response()
}

/// Takes 100 ms to answer, noting when each call arrived and how many overlapped.
async fn track(State(counters): State<Counters>, Path(key): Path<String>) -> Response {
    {
        let mut tracks = counters.tracks.lock().expect("the track lock");
        let track = tracks.entry(key.clone()).or_default();
        track.arrivals_ms.push(now_ms());
        track.in_flight += 1;
        track.most_in_flight = track.most_in_flight.max(track.in_flight);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut tracks = counters.tracks.lock().expect("the track lock");
    if let Some(track) = tracks.get_mut(&key) {
        track.in_flight -= 1;
    }
    axum::Json(json!({ "ok": true })).into_response()
}

/// What `/track/{key}` saw, without calling it.
async fn tracked(State(counters): State<Counters>, Path(key): Path<String>) -> Response {
    let tracks = counters.tracks.lock().expect("the track lock");
    let (arrivals, most) = tracks
        .get(&key)
        .map(|track| (track.arrivals_ms.clone(), track.most_in_flight))
        .unwrap_or_default();
    axum::Json(json!({ "arrivals_ms": arrivals, "most_in_flight": most })).into_response()
}

/// The first call of a key is answered 429 with `Retry-After: 1`; later ones 200. Arrivals
/// are noted as `/track` notes them.
async fn busy(State(counters): State<Counters>, Path(key): Path<String>) -> Response {
    let first = {
        let mut tracks = counters.tracks.lock().expect("the track lock");
        let track = tracks.entry(key).or_default();
        track.arrivals_ms.push(now_ms());
        track.arrivals_ms.len() == 1
    };
    if first {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            "slow down",
        )
            .into_response()
    } else {
        axum::Json(json!({ "ok": true })).into_response()
    }
}

async fn redirect(Query(query): Query<HashMap<String, String>>) -> Response {
    Redirect::temporary(query.get("to").map(String::as_str).unwrap_or("/json")).into_response()
}
