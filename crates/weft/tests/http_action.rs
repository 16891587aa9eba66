//! The built-in `http.request` action against a local server standing in for remote APIs.

use serde_json::{Value, json};
use std::sync::OnceLock;

use crate::support::http_server::TestServer;
use crate::support::{Ran, recipe, run, run_with, weft};

fn server() -> &'static str {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    &SERVER.get_or_init(TestServer::start).base
}

fn get(path: &str, extra: Value) -> Ran {
    let mut event = json!({"base": server(), "path": path});
    if let (Value::Object(event), Value::Object(extra)) = (&mut event, extra) {
        event.extend(extra);
    }
    run(&recipe("http-get.yaml"), &event)
}

/// Runs `http-connection.yaml` with one connection named `api`.
fn with_connection(connection: &str, path: &str, env: &[(&str, &str)]) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("connections.yaml");
    std::fs::write(&file, format!("api:\n{connection}")).unwrap();
    let output = weft()
        .arg("run")
        .arg(recipe("http-connection.yaml"))
        .arg("--event")
        .arg(json!({"path": path}).to_string())
        .arg("--connections")
        .arg(&file)
        .arg("--allow-private-network")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    crate::support::ran(output)
}

#[test]
fn a_json_response_is_parsed_and_headers_are_lower_case() {
    let ran = get("/json", json!({}));
    assert_eq!(ran.code, 0, "{:#}\n{}", ran.record, ran.stderr);
    let output = &ran.record["output"];
    assert_eq!(output["status"], 200);
    assert_eq!(output["body"], json!({"hello": "world", "n": 3}));
    assert_eq!(output["headers"]["content-type"], "application/json");
}

#[test]
fn a_text_response_stays_text() {
    let ran = get("/text", json!({}));
    assert_eq!(ran.record["output"]["body"], "plain words");
}

#[test]
fn method_headers_query_and_json_body_are_sent() {
    let ran = get(
        "/echo",
        json!({"method": "post", "body": {"order": 7, "items": ["x"]}}),
    );
    assert_eq!(ran.code, 0, "{:#}", ran.record);
    let echo = &ran.record["output"]["body"];
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["headers"]["x-request"], "weft-test");
    assert_eq!(echo["headers"]["content-type"], "application/json");
    assert_eq!(
        echo["query"],
        json!([["page", "2"], ["tags", "a"], ["tags", "b"]])
    );
    assert_eq!(echo["body"], json!({"order": 7, "items": ["x"]}));
    assert_eq!(ran.step("fetch")["input"]["method"], "post");
}

#[test]
fn a_string_body_is_sent_as_text() {
    let ran = get("/echo", json!({"method": "PUT", "body": "hello there"}));
    let echo = &ran.record["output"]["body"];
    assert_eq!(echo["body"], "hello there");
    assert!(
        echo["headers"]["content-type"]
            .as_str()
            .unwrap()
            .starts_with("text/plain")
    );
}

#[test]
fn an_error_status_fails_the_step_unless_told_otherwise() {
    let ran = get("/status/404", json!({}));
    assert_eq!(ran.code, 1);
    let error = &ran.record["error"];
    assert_eq!(error["kind"], "connector");
    assert_eq!(error["step"], "fetch");
    assert!(
        error["message"].as_str().unwrap().contains("404"),
        "{error}"
    );

    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains(r#"{"status":404}"#),
        "the body says why: {error}"
    );

    let tolerated = get("/status/404", json!({"fail_on_status": false}));
    assert_eq!(tolerated.code, 0, "{:#}", tolerated.record);
    assert_eq!(tolerated.record["output"]["status"], 404);
    assert_eq!(tolerated.record["output"]["body"], json!({"status": 404}));
}

#[test]
fn redirects_are_followed() {
    let ran = get("/redirect?to=/json", json!({}));
    assert_eq!(ran.code, 0, "{:#}", ran.record);
    assert_eq!(ran.record["output"]["body"]["hello"], "world");
}

#[test]
fn bearer_auth_is_sent_and_the_token_never_reaches_the_record() {
    let token = "tok-8f1d2c0ffee";
    let ran = with_connection(
        &format!(
            "  connector: http\n  base_url: {}/echo\n  auth: bearer\n  token: ${{API_TOKEN}}\n",
            server()
        ),
        "/customers",
        &[("API_TOKEN", token)],
    );
    assert_eq!(ran.code, 0, "{:#}\n{}", ran.record, ran.stderr);
    let echo = &ran.record["output"];
    assert_eq!(echo["path"], "/echo/customers");
    assert_eq!(echo["headers"]["authorization"], "[masked]");
    assert!(!ran.record.to_string().contains(token));
}

/// A refused bearer token cannot be refreshed: the request is sent once, not repeated.
#[test]
fn a_refused_bearer_token_sends_the_request_once() {
    let key = format!("once-{}", std::process::id());
    let ran = with_connection(
        &format!(
            "  connector: http\n  base_url: {}/private\n  auth: bearer\n  token: not-it\n",
            server()
        ),
        &format!("/{key}"),
        &[],
    );
    assert_eq!(ran.record["error"]["kind"], "connector", "{:#}", ran.record);
    let calls: Value = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            reqwest::get(format!("{}/calls/{key}", server()))
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        });
    assert_eq!(calls["calls"], 1, "{calls}");
}

#[test]
fn basic_auth_is_sent() {
    let ran = with_connection(
        &format!(
            "  connector: http\n  base_url: {}/echo\n  auth: basic\n  username: ann\n  password: pa55word\n",
            server()
        ),
        "/basic",
        &[],
    );
    assert_eq!(ran.code, 0, "{:#}", ran.record);
    // The remote end saw base64("ann:pa55word"); the record, which would give the password
    // away with it, holds neither.
    assert_eq!(ran.record["output"]["headers"]["authorization"], "[masked]");
    assert_eq!(
        ran.record["output"]["basic_user"], "ann",
        "{:#}",
        ran.record
    );
    let record = ran.record.to_string();
    assert!(!record.contains("pa55word") && !record.contains("YW5uOnBhNTV3b3Jk"));
}

#[test]
fn api_keys_go_in_a_header_or_the_query() {
    let in_header = with_connection(
        &format!(
            "  connector: http\n  base_url: {}/echo\n  auth: api_key\n  key_name: x-api-key\n  key_value: k3y-in-header\n",
            server()
        ),
        "/h",
        &[],
    );
    assert_eq!(in_header.code, 0, "{:#}", in_header.record);
    assert_eq!(
        in_header.record["output"]["headers"]["x-api-key"],
        "[masked]"
    );
    let in_query = with_connection(
        &format!(
            "  connector: http\n  base_url: {}/echo\n  auth: api_key\n  key_name: apikey\n  key_value: k3y-in-query\n  key_in: query\n",
            server()
        ),
        "/q",
        &[],
    );
    assert_eq!(in_query.code, 0, "{:#}", in_query.record);
    assert_eq!(
        in_query.record["output"]["query"],
        json!([["apikey", "[masked]"]])
    );
    assert!(!in_query.record.to_string().contains("k3y-in-query"));
}

#[test]
fn credentials_go_only_to_the_connections_own_host() {
    let ran = with_connection(
        &format!(
            "  connector: http\n  base_url: {}/echo\n  auth: bearer\n  token: secret-token-1\n",
            server()
        ),
        "http://example.com/steal",
        &[],
    );
    assert_eq!(ran.code, 1);
    assert_eq!(ran.record["error"]["kind"], "validation");
    assert!(
        ran.record["error"]["message"]
            .as_str()
            .unwrap()
            .contains("outside the connection's base_url")
    );
}

#[test]
fn private_addresses_are_refused_unless_allowed() {
    let output = weft()
        .arg("run")
        .arg(recipe("http-get.yaml"))
        .arg("--event")
        .arg(json!({"base": server(), "path": "/json"}).to_string())
        .output()
        .unwrap();
    let ran = crate::support::ran(output);
    assert_eq!(ran.code, 1);
    assert_eq!(ran.record["error"]["kind"], "validation");
    let message = ran.record["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("loopback") && message.contains("--allow-private-network"),
        "{message}"
    );
}

#[test]
fn a_slow_answer_times_out_with_kind_timeout() {
    let ran = run(&recipe("http-timeout.yaml"), &json!({"base": server()}));
    assert_eq!(ran.code, 1);
    assert_eq!(ran.record["error"]["kind"], "timeout");
    assert_eq!(ran.step("fetch")["attempts"], 1);
}

#[test]
fn retries_until_the_remote_end_recovers() {
    let ran = run(
        &recipe("http-retry.yaml"),
        &json!({"base": server(), "key": "recovers", "failures": 2}),
    );
    assert_eq!(ran.code, 0, "{:#}", ran.record);
    assert_eq!(ran.step("fetch")["attempts"], 3);
    assert_eq!(ran.record["output"], json!({"call": 3}));

    let gives_up = run(
        &recipe("http-retry.yaml"),
        &json!({"base": server(), "key": "never", "failures": 10}),
    );
    assert_eq!(gives_up.code, 1);
    assert_eq!(gives_up.step("fetch")["attempts"], 3);
    assert!(
        gives_up.record["error"]["message"]
            .as_str()
            .unwrap()
            .contains("503")
    );
}

#[test]
fn a_failed_request_can_be_handled() {
    let ran = run(
        &recipe("http-failure-handled.yaml"),
        &json!({"base": server()}),
    );
    assert_eq!(ran.code, 0, "{:#}", ran.record);
    assert_eq!(ran.step("fetch")["status"], "handled");
    assert_eq!(ran.step("fetch")["attempts"], 2);
    assert!(
        ran.record["output"]["alerted"]
            .as_str()
            .unwrap()
            .contains("500")
    );
}

#[test]
fn an_oversized_response_fails_with_the_limit() {
    let ran = get("/big", json!({}));
    assert_eq!(ran.code, 1);
    assert!(
        ran.record["error"]["message"]
            .as_str()
            .unwrap()
            .contains("larger than the limit"),
        "{:#}",
        ran.record
    );
}

#[test]
fn a_refused_connection_is_a_connector_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let ran = run(
        &recipe("http-get.yaml"),
        &json!({"base": base, "path": "/x"}),
    );
    assert_eq!(ran.code, 1);
    assert_eq!(ran.record["error"]["kind"], "connector");
}

#[test]
fn a_missing_connection_is_a_validation_error() {
    let ran = run_with(&recipe("http-connection.yaml"), &json!({"path": "/x"}), &[]);
    assert_eq!(ran.code, 1);
    assert_eq!(ran.record["error"]["kind"], "validation");
    assert!(
        ran.record["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no connection named `api`")
    );
}

#[test]
fn private_networks_can_be_allowed_from_the_environment() {
    let event = json!({"base": server(), "path": "/json"}).to_string();
    let allowed = weft()
        .args([
            "run",
            recipe("http-get.yaml").to_str().unwrap(),
            "--event",
            &event,
        ])
        .env("WEFT_ALLOW_PRIVATE_NETWORK", "1")
        .output()
        .unwrap();
    assert_eq!(
        allowed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
    let unclear = weft()
        .args([
            "run",
            recipe("http-get.yaml").to_str().unwrap(),
            "--event",
            &event,
        ])
        .env("WEFT_ALLOW_PRIVATE_NETWORK", "maybe")
        .output()
        .unwrap();
    assert_eq!(unclear.status.code(), Some(2));
}

#[test]
fn only_the_connections_a_job_uses_need_their_variables() {
    let ran = with_connection(
        &format!(
            "  connector: http\n  base_url: {}/echo\n  auth: bearer\n  token: plain-token-value\nunused:\n  connector: http\n  token: ${{NOT_SET_ANYWHERE}}\n",
            server()
        ),
        "/x",
        &[],
    );
    assert_eq!(ran.code, 0, "{:#}\n{}", ran.record, ran.stderr);
}

#[test]
fn every_call_carries_an_idempotency_key_of_its_job_and_step() {
    let ran = run(&recipe("http-idempotency.yaml"), &json!({"base": server()}));
    assert_eq!(ran.code, 0, "{:#}\n{}", ran.record, ran.stderr);
    let job = ran.record["id"].as_str().unwrap();
    let keys = &ran.record["output"];
    assert_eq!(keys["once"], format!("{job}:once"));
    // Each iteration of a loop is a call of its own to the remote end.
    assert_eq!(
        keys["each"],
        json!([format!("{job}:each[0]/post"), format!("{job}:each[1]/post")])
    );
    // A key the recipe sets itself is sent as it is.
    assert_eq!(keys["own"], "chosen-by-the-recipe");
}
