//! Closing a workspace: its owner closes it, its recipes stop at once, and after the grace
//! period nothing of it is left in the database but a final report; other workspaces keep
//! everything.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::server::{Backend, Server};
use crate::support::weft;

const CRM: &str = "name: CRM\ntrigger:\n  webhook: { path: crm }\nsteps:\n  - id: echo\n    transform: .trigger.body\n";
const MARKER: &str = "acme-marker-5150@example.com";
const KEPT: &str = "default-marker-6160@example.com";

async fn ended(server: &Server, token: &str, id: &str) {
    for _ in 0..200 {
        let (_, job) = server
            .api_as(token, Method::GET, &format!("/api/v1/jobs/{id}"), None)
            .await;
        if job["status"] == "succeeded" || job["status"] == "failed" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("job {id} did not end");
}

/// Asks to close the caller's workspace, confirming with `confirm`.
async fn close(server: &Server, token: &str, confirm: &str) -> (u16, Value) {
    post(
        server,
        token,
        "/api/v1/workspace/close",
        json!({ "confirm": confirm }),
    )
    .await
}

async fn post(server: &Server, token: &str, path: &str, body: Value) -> (u16, Value) {
    server
        .api_as(token, Method::POST, path, Some(body.to_string()))
        .await
}

on_both_backends!(
    a_closed_workspace_is_deleted_whole_after_its_grace,
    &["--workspace-close-grace", "3s", "--retention-every", "1s"],
    |server: Server| async move {
        let owner = server.create_user_and_token_in("acme", "owner@acme.example", "owner");
        let builder = server.create_user_and_token_in("acme", "bea@acme.example", "builder");
        let (status, recipe) = server
            .api_as(
                &owner,
                Method::POST,
                "/api/v1/recipes",
                Some(CRM.to_owned()),
            )
            .await;
        assert_eq!(status, 201, "{recipe}");
        let recipe_id = recipe["id"].as_str().unwrap().to_owned();
        let (status, _) = post(
            &server,
            &owner,
            "/api/v1/connections",
            json!({ "name": "acme-api", "connector": "http", "fields": { "base_url": "https://acme.example" } }),
        )
        .await;
        assert_eq!(status, 201);
        let accepted = server
            .hook("/w/acme/hooks/crm", json!({ "email": MARKER }))
            .await;
        ended(&server, &owner, accepted["job_id"].as_str().unwrap()).await;
        server.save_recipe(CRM).await;
        let kept = server.hook("/hooks/crm", json!({ "email": KEPT })).await;
        server.finished_job(kept["job_id"].as_str().unwrap()).await;

        // Only an owner closes, with the workspace's id typed again; never `default`.
        let (status, _) = close(&server, &builder, "acme").await;
        assert_eq!(status, 403);
        let (status, _) = close(&server, &owner, "acne").await;
        assert_eq!(status, 400);
        let (status, refused) = close(&server, &server.token, "default").await;
        assert_eq!(status, 409, "{refused}");

        // Closed: its recipes stop and stay stopped; reopened, it stays.
        let (status, closed) = close(&server, &owner, "acme").await;
        assert_eq!(status, 202, "{closed}");
        assert_eq!(closed["recipes_disabled"], 1, "{closed}");
        let (status, refused) = post(
            &server,
            &owner,
            &format!("/api/v1/recipes/{recipe_id}/enable"),
            Value::Null,
        )
        .await;
        assert_eq!(status, 409, "{refused}");
        assert_eq!(refused["error"]["code"], "workspace_closing", "{refused}");
        let response = Server::client()
            .post(server.url("/w/acme/hooks/crm"))
            .json(&json!({ "email": MARKER }))
            .send()
            .await
            .expect("the server answers");
        assert_ne!(response.status(), 202, "a closing workspace takes no event");
        let (status, _) = post(&server, &owner, "/api/v1/workspace/reopen", Value::Null).await;
        assert_eq!(status, 200);
        tokio::time::sleep(std::time::Duration::from_secs(4)).await;
        assert!(
            server.everything_stored().contains(MARKER),
            "a reopened workspace stays"
        );

        let (status, _) = close(&server, &owner, "acme").await;
        assert_eq!(status, 202);
        let mut stored = server.everything_stored();
        for _ in 0..100 {
            if !stored.contains(MARKER) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            stored = server.everything_stored();
        }
        // People keep their accounts (they may belong elsewhere); the workspace's data goes.
        for gone in [MARKER, "acme-api", "https://acme.example"] {
            assert!(!stored.contains(gone), "`{gone}` is still stored");
        }
        assert!(
            stored.contains(KEPT),
            "the default workspace keeps its history"
        );
        let (status, _) = server
            .api_as(&owner, Method::GET, "/api/v1/recipes", None)
            .await;
        assert_eq!(status, 401, "its tokens are gone");

        // The final report says what went.
        let reports = weft()
            .args(["admin", "closed-workspaces"])
            .args(server.store_args())
            .output()
            .expect("weft admin runs");
        assert!(reports.status.success());
        let report: Value = serde_json::from_slice(&reports.stdout).expect("one JSON report");
        assert_eq!(report["workspace_id"], "acme", "{report}");
        let deleted = &report["deleted"];
        assert_eq!(
            (
                deleted["jobs"].clone(),
                deleted["recipes"].clone(),
                deleted["connections"].clone(),
                deleted["members"].clone()
            ),
            (json!(1), json!(1), json!(1), json!(2)),
            "{report}"
        );
        assert!(!report.to_string().contains(MARKER));
    }
);

/// The only owner of a workspace may delete their account once the workspace is closing.
#[tokio::test]
async fn a_closing_workspace_no_longer_holds_its_owners_account() {
    let server = Server::start_with(Backend::Sqlite, &[])
        .await
        .expect("SQLite is always there");
    let solo = server.create_user_and_token_in("solo", "solo@example.org", "owner");
    let password = json!({ "password": "a long enough password" });
    let (status, _) = server
        .api_as(
            &solo,
            Method::DELETE,
            "/api/v1/me",
            Some(password.to_string()),
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = close(&server, &solo, "solo").await;
    assert_eq!(status, 202);
    let (status, asked) = server
        .api_as(
            &solo,
            Method::DELETE,
            "/api/v1/me",
            Some(password.to_string()),
        )
        .await;
    assert_eq!(status, 202, "{asked}");
}
