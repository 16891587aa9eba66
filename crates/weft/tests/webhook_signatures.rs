//! Webhook signatures of the Slack and Stripe schemes, with the signing secret sealed in a
//! connection or written in the recipe: good ones make jobs, stale, forged and unsigned ones
//! are refused, and Slack's URL check is answered.

use hmac::Mac;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::server::{Backend, Server};

fn hex_hmac(secret: &str, message: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn post(server: &Server, path: &str, headers: &[(&str, String)], body: &str) -> (u16, Value) {
    let mut request = Server::client()
        .post(server.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn slack_requests_are_checked_with_the_connections_signing_secret() {
    let server = Server::start_with(Backend::Sqlite, &[]).await.unwrap();
    server
        .save_connection(json!({ "name": "slack_app", "connector": "http", "fields": { "signing_secret": "slack-signing-77" } }))
        .await;
    server
        .save_recipe("name: Slack events\ntrigger:\n  webhook:\n    path: slack/events\n    signature: { scheme: slack, connection: slack_app }\nsteps:\n  - id: kind\n    transform: .trigger.body.event.type\n")
        .await;
    let signed = |body: &str, at: i64, secret: &str| {
        vec![
            ("x-slack-request-timestamp", at.to_string()),
            (
                "x-slack-signature",
                format!("v0={}", hex_hmac(secret, &format!("v0:{at}:{body}"))),
            ),
        ]
    };
    let check = r#"{"type":"url_verification","challenge":"chal-123"}"#;
    let (status, answer) = post(
        &server,
        "/hooks/slack/events",
        &signed(check, now(), "slack-signing-77"),
        check,
    )
    .await;
    assert_eq!((status, answer), (200, json!({ "challenge": "chal-123" })));

    let event = r#"{"type":"event_callback","event":{"type":"app_mention","text":"hi"}}"#;
    let (status, accepted) = post(
        &server,
        "/hooks/slack/events",
        &signed(event, now(), "slack-signing-77"),
        event,
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let job = server
        .finished_job(accepted["job_id"].as_str().unwrap())
        .await;
    assert_eq!(job["steps"][0]["output"], "app_mention", "{job}");
    assert_ne!(
        job["trigger"]["headers"]["x-slack-signature"]
            .as_str()
            .unwrap_or_default()
            .get(..3),
        Some("v0="),
        "{job}"
    );

    for (headers, why) in [
        (
            signed(event, now() - 600, "slack-signing-77"),
            "more than five minutes old",
        ),
        (signed(event, now(), "another-secret"), "does not match"),
        (
            vec![("x-slack-request-timestamp", now().to_string())],
            "x-slack-signature",
        ),
    ] {
        let (status, refused) = post(&server, "/hooks/slack/events", &headers, event).await;
        assert_eq!(status, 401, "{refused}");
        assert!(
            refused["error"]["message"].as_str().unwrap().contains(why),
            "{refused}"
        );
    }
}

#[tokio::test]
async fn stripe_requests_are_checked_with_any_of_their_signatures() {
    let server = Server::start_with(Backend::Sqlite, &[]).await.unwrap();
    server
        .save_recipe("name: Stripe events\ntrigger:\n  webhook:\n    path: stripe\n    signature: { scheme: stripe, secret: whsec_test_5e1 }\nsteps:\n  - id: kind\n    transform: .trigger.body.type\n")
        .await;
    let body = r#"{"id":"evt_1","type":"customer.subscription.updated"}"#;
    let at = now();
    let good = hex_hmac("whsec_test_5e1", &format!("{at}.{body}"));
    let rolled = format!(
        "t={at},v1={},v1={good}",
        hex_hmac("old-secret", &format!("{at}.{body}"))
    );
    let (status, accepted) = post(
        &server,
        "/hooks/stripe",
        &[("stripe-signature", rolled)],
        body,
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let job = server
        .finished_job(accepted["job_id"].as_str().unwrap())
        .await;
    assert_eq!(job["steps"][0]["output"], "customer.subscription.updated");
    let stale_at = at - 900;
    let stale = format!(
        "t={stale_at},v1={}",
        hex_hmac("whsec_test_5e1", &format!("{stale_at}.{body}"))
    );
    for header in [stale, format!("v1={good}"), format!("t={at},v1={good}0")] {
        let (status, refused) = post(
            &server,
            "/hooks/stripe",
            &[("stripe-signature", header.clone())],
            body,
        )
        .await;
        assert_eq!(status, 401, "{header}: {refused}");
    }
}

#[tokio::test]
async fn a_signature_needs_exactly_one_secret_and_a_known_scheme() {
    let server = Server::start_with(Backend::Sqlite, &[]).await.unwrap();
    for (signature, reason) in [
        ("{ scheme: slack }", "needs its `secret`"),
        (
            "{ scheme: slack, secret: a, connection: b }",
            "one of the two",
        ),
        ("{ scheme: github, secret: a }", "signature.scheme"),
        ("{ scheme: stripe, secret: a, header: X-Sig }", "header"),
    ] {
        let recipe = format!(
            "name: Signed\ntrigger:\n  webhook:\n    path: signed\n    signature: {signature}\nsteps: []\n"
        );
        let (status, refused) = server
            .api(Method::POST, "/api/v1/recipes", Some(recipe))
            .await;
        assert_eq!(status, 422, "{signature}: {refused}");
        assert!(
            refused["error"]["problems"].to_string().contains(reason),
            "{signature}: {refused}"
        );
    }
}
