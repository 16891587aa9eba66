//! A person's rights over what Weft holds about them: an export of all of it, consent kept
//! apart from service notices, and the deletion of their account, which after its grace
//! period leaves no trace of them in the database.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::server::{Backend, Server};
use crate::support::weft;

const PASSWORD: &str = "a long enough password";
const EMAIL: &str = "zelda.q@example.org";
const NAME: &str = "Zelda Quixotic-Marsh";
const PHONE: &str = "+49 151 98765432";
const ALERTS: &str = "zelda.alerts@example.org";

/// A new token of a person who has an account.
fn token_of(server: &Server, email: &str) -> String {
    let made = weft()
        .args(["admin", "create-token", "--email", email])
        .args(server.store_args())
        .output()
        .expect("weft admin runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    String::from_utf8_lossy(&made.stdout).trim().to_owned()
}

async fn call(
    server: &Server,
    token: &str,
    method: Method,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let body = (!body.is_null()).then(|| body.to_string());
    server.api_as(token, method, path, body).await
}

on_both_backends!(
    an_account_is_exported_then_erased_after_its_grace,
    &["--account-deletion-grace", "3s", "--retention-every", "1s"],
    |server: Server| async move {
        let zelda = server.create_user_and_token(EMAIL, "builder");
        // Correction goes through the profile.
        let (status, me) = call(
            &server,
            &zelda,
            Method::PATCH,
            "/api/v1/me",
            json!({ "name": NAME, "phone": PHONE, "notification_emails": [ALERTS] }),
        )
        .await;
        assert_eq!(status, 200, "{me}");

        // Consent: off until given, each kind apart, changeable.
        let (_, consent) = call(
            &server,
            &zelda,
            Method::GET,
            "/api/v1/me/consent",
            Value::Null,
        )
        .await;
        assert_eq!(consent["marketing"]["given"], false, "{consent}");
        assert_eq!(consent["product_news"]["given"], false, "{consent}");
        let (status, consent) = call(
            &server,
            &zelda,
            Method::PUT,
            "/api/v1/me/consent",
            json!({ "marketing": false, "product_news": true }),
        )
        .await;
        assert_eq!(status, 200, "{consent}");
        assert_eq!(consent["product_news"]["given"], true, "{consent}");
        assert!(consent["product_news"]["since"].is_string(), "{consent}");
        assert_eq!(consent["marketing"]["given"], false, "{consent}");
        let (status, _) = call(
            &server,
            &zelda,
            Method::PUT,
            "/api/v1/me/consent",
            json!({ "marketing": "yes" }),
        )
        .await;
        assert_eq!(status, 400);

        // The export holds everything about her, and no secret.
        let response = Server::client()
            .get(server.url("/api/v1/me/export"))
            .bearer_auth(&zelda)
            .send()
            .await
            .expect("the server answers");
        assert_eq!(response.status(), 200);
        let disposition = response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(disposition.starts_with("attachment"), "{disposition}");
        let export: Value = response.json().await.expect("a JSON document");
        assert_eq!(export["account"]["email"], EMAIL, "{export}");
        assert_eq!(export["account"]["name"], NAME, "{export}");
        assert_eq!(export["account"]["profile"]["phone"], PHONE, "{export}");
        assert_eq!(
            export["notification_addresses"],
            json!([ALERTS]),
            "{export}"
        );
        assert_eq!(export["consent"]["product_news"]["given"], true, "{export}");
        assert_eq!(export["memberships"][0]["role"], "builder", "{export}");
        assert_eq!(
            export["api_tokens"].as_array().unwrap().len(),
            1,
            "{export}"
        );
        let actions: Vec<&str> = export["audit_events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|event| event["action"].as_str().unwrap())
            .collect();
        assert!(actions.contains(&"account.consent"), "{actions:?}");
        assert!(
            !export.to_string().contains(&zelda),
            "the export holds no token"
        );

        // Deletion needs her password, and waits for its grace period.
        let (status, _) = call(
            &server,
            &zelda,
            Method::DELETE,
            "/api/v1/me",
            json!({ "password": "wrong one" }),
        )
        .await;
        assert_eq!(status, 403);
        let (status, asked) = call(
            &server,
            &zelda,
            Method::DELETE,
            "/api/v1/me",
            json!({ "password": PASSWORD }),
        )
        .await;
        assert_eq!(status, 202, "{asked}");
        assert_eq!(asked["grace_seconds"], 3, "{asked}");
        assert_eq!(asked["api_tokens_revoked"], 1, "{asked}");
        let (status, _) = call(&server, &zelda, Method::GET, "/api/v1/me", Value::Null).await;
        assert_eq!(status, 401, "her tokens are revoked");
        assert!(
            server.everything_stored().contains(NAME),
            "the scan sees her data"
        );

        // After the grace period nothing of her is left: not in the users, not in the log.
        let mut stored = server.everything_stored();
        for _ in 0..100 {
            if !stored.contains(EMAIL) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            stored = server.everything_stored();
        }
        for value in [EMAIL, NAME, PHONE, ALERTS] {
            assert!(!stored.contains(value), "`{value}` is still stored");
        }
        let (_, audit) = server
            .api(
                Method::GET,
                "/api/v1/audit?action=account.delete_request",
                None,
            )
            .await;
        let actor = audit["events"][0]["actor"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(actor.starts_with("deleted-user-"), "{audit}");
        assert!(audit["events"][0]["ip"].is_null(), "{audit}");
    }
);

/// The only owner of a workspace keeps the account until someone else owns it; a person who
/// changes their mind keeps it.
#[tokio::test]
async fn a_last_owner_stays_and_a_deletion_can_be_cancelled() {
    let server = Server::start_with(Backend::Sqlite, &["--account-deletion-grace", "1h"])
        .await
        .expect("SQLite is always there");
    let solo = server.create_user_and_token_in("solo", "solo@example.org", "owner");
    let (status, refused) = call(
        &server,
        &solo,
        Method::DELETE,
        "/api/v1/me",
        json!({ "password": PASSWORD }),
    )
    .await;
    assert_eq!(status, 409, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("workspace `solo`"), "{message}");

    let yves = server.create_user_and_token("yves@example.org", "viewer");
    let (status, asked) = call(
        &server,
        &yves,
        Method::DELETE,
        "/api/v1/me",
        json!({ "password": PASSWORD }),
    )
    .await;
    assert_eq!(status, 202, "{asked}");
    let yves = token_of(&server, "yves@example.org");
    let (_, me) = call(&server, &yves, Method::GET, "/api/v1/me", Value::Null).await;
    assert!(me["deletion_due_at"].is_string(), "{me}");
    let (status, kept) = call(
        &server,
        &yves,
        Method::POST,
        "/api/v1/me/deletion/cancel",
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{kept}");
    let (_, me) = call(&server, &yves, Method::GET, "/api/v1/me", Value::Null).await;
    assert!(me["deletion_due_at"].is_null(), "{me}");
}
