//! Masking: what a workspace's rules name, and what looks like a card number or a credential,
//! never reaches job history, error messages or logs.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::server::{Backend, Server};

const SIGNUP: &str = "name: Signup\ntrigger:\n  webhook: { path: signup }\nsteps:\n  - id: echo\n    transform: .trigger.body\n  - id: refuse\n    transform: 'error(\"refused \" + .trigger.body.note)'\n";

const CARD: &str = "4111 1111 1111 1111";
const STRIPE_KEY: &str = "sk_live_abcdefgh12345678";
const PASSWORD: &str = "hunter2-horse-77";
const MEMBER_ID: &str = "M-99887766";

fn signup() -> Value {
    json!({
        "user": "ann",
        "Password": PASSWORD,
        "memberId": MEMBER_ID,
        "note": format!("paid with {CARD} and key {STRIPE_KEY}"),
    })
}

async fn job_of(server: &Server) -> Value {
    let accepted = server.hook("/hooks/signup", signup()).await;
    let id = accepted["job_id"].as_str().expect("a job id").to_owned();
    server.finished_job(&id).await;
    let (status, job) = server
        .api(Method::GET, &format!("/api/v1/jobs/{id}"), None)
        .await;
    assert_eq!(status, 200, "{job}");
    job
}

async fn set_masking(server: &Server, rules: Value) -> (u16, Value) {
    let (status, body) = server
        .api(
            Method::PUT,
            "/api/v1/privacy/masking",
            Some(rules.to_string()),
        )
        .await;
    (status, body)
}

on_both_backends!(
    a_workspaces_rules_mask_every_stored_copy,
    &["--retention-every", "1s"],
    |server: Server| async move {
        // The defaults: the built-in field names, and detection on.
        let (status, rules) = server
            .api(Method::GET, "/api/v1/privacy/masking", None)
            .await;
        assert_eq!(status, 200, "{rules}");
        assert_eq!(rules["detect"], true, "{rules}");
        assert_eq!(rules["default_fields"], true, "{rules}");
        assert!(
            rules["fields"]
                .as_array()
                .unwrap()
                .contains(&json!("password")),
            "{rules}"
        );

        let (status, saved) = set_masking(
            &server,
            json!({ "fields": ["password", "member_id"], "detect": true }),
        )
        .await;
        assert_eq!(status, 200, "{saved}");
        assert_eq!(saved["fields"], json!(["password", "member_id"]));

        server.save_recipe(SIGNUP).await;
        let job = job_of(&server).await;
        assert_eq!(job["status"], "failed", "{job}");
        let body = &job["trigger"]["body"];
        assert_eq!(body["user"], "ann", "{job}");
        assert_eq!(body["Password"], "[masked]", "{job}");
        assert_eq!(body["memberId"], "[masked]", "{job}");
        assert_eq!(body["note"], "paid with [masked] and key [masked]", "{job}");
        let echoed = &job["steps"][0]["output"];
        assert_eq!(echoed["Password"], "[masked]", "{job}");
        let message = job["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("refused paid with [masked]"), "{job}");

        // The event as received was stored until the job ended; its copies in SQLite's
        // write-ahead log go at the next retention pass.
        let mut stored = server.everything_stored();
        for _ in 0..50 {
            if !stored.contains(CARD) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            stored = server.everything_stored();
        }
        assert!(stored.contains("ann"), "the scan sees stored data");
        for value in [CARD, STRIPE_KEY, PASSWORD, MEMBER_ID] {
            assert!(!stored.contains(value), "`{value}` is stored");
        }

        // Rules the workspace turned off mask nothing from then on.
        let (status, _) = set_masking(&server, json!({ "fields": [], "detect": false })).await;
        assert_eq!(status, 200);
        let job = job_of(&server).await;
        assert_eq!(job["trigger"]["body"]["Password"], PASSWORD, "{job}");
        assert!(server.everything_stored().contains(CARD));

        // Bad rules are refused and change nothing.
        for bad in [
            json!({ "fields": "password", "detect": true }),
            json!({ "fields": ["password"] }),
            json!({ "fields": [""], "detect": true }),
            json!({ "fields": ["x".repeat(101)], "detect": true }),
        ] {
            let (status, error) = set_masking(&server, bad.clone()).await;
            assert_eq!(status, 400, "{bad}");
            assert!(error["error"]["message"].is_string(), "{error}");
        }
        let (_, rules) = server
            .api(Method::GET, "/api/v1/privacy/masking", None)
            .await;
        assert_eq!(
            rules,
            json!({ "fields": [], "default_fields": false, "detect": false })
        );
    }
);

/// A job still running shows its event as its record will hold it.
#[tokio::test]
async fn a_running_jobs_event_is_shown_masked() {
    let server = Server::start_with(Backend::Sqlite, &[])
        .await
        .expect("SQLite is always there");
    server
        .save_recipe(
            "name: Slow\ntrigger:\n  webhook: { path: slow }\nsteps:\n  - id: nap\n    wait: 1h\n",
        )
        .await;
    let accepted = server.hook("/hooks/slow", signup()).await;
    let id = accepted["job_id"].as_str().expect("a job id");
    let (status, job) = server
        .api(Method::GET, &format!("/api/v1/jobs/{id}"), None)
        .await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["trigger"]["body"]["Password"], "[masked]", "{job}");
    assert_eq!(
        job["trigger"]["body"]["note"], "paid with [masked] and key [masked]",
        "{job}"
    );
}

/// An error that is logged (here a poll's: the remote end quoted what it was sent) is masked
/// as a record would be.
#[tokio::test]
async fn a_logged_error_is_masked() {
    let server = Server::start_with(Backend::Sqlite, &[])
        .await
        .expect("SQLite is always there");
    let api = crate::support::http_server::TestServer::start();
    server
        .save_connection(
            json!({ "name": "api", "connector": "http", "fields": { "base_url": api.base } }),
        )
        .await;
    let recipe = format!(
        "name: Feed\ntrigger:\n  poll:\n    every: 1h\n    action: http.request\n    connection: api\n    input: {{ url: '/refuse?card={}' }}\n    items: '[]'\n    key: .id\nsteps:\n  - id: n\n    transform: .trigger\n",
        CARD.replace(' ', "")
    );
    server.save_recipe(&recipe).await;
    let mut logs = String::new();
    for _ in 0..100 {
        logs = server.logs();
        if logs.contains("a poll failed") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(logs.contains("a poll failed"), "{logs}");
    assert!(logs.contains("[masked]"), "{logs}");
    assert!(!logs.contains("4111111111111111"), "{logs}");
}
