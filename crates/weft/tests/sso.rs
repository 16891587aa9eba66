//! Single sign-on with OpenID Connect against a provider the test runs: the browser's way
//! from `/api/v1/sso/start` to a session, and the refusals of tokens that do not hold (not
//! verified, forged, for another audience, replayed, not a member); a workspace that
//! requires it.

use reqwest::Method;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::support::oidc_server::{CLIENT_ID, CLIENT_SECRET, NextLogin, OidcServer};
use crate::support::server::{Backend, Server};

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("weft-tests")
        .build()
        .unwrap()
}

fn login(email: &str) -> NextLogin {
    NextLogin {
        email: email.to_owned(),
        email_verified: true,
        forged: false,
        audience: None,
    }
}

/// Goes from the start to the provider and back; the callback's answer.
/// The callback's answer, the callback and the cookie of the browser that started.
async fn sign_in_through(server: &Server) -> (reqwest::Response, String, String) {
    let browser = browser();
    let started = browser
        .get(server.url("/api/v1/sso/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 303);
    let at_provider = started.headers()[LOCATION].to_str().unwrap().to_owned();
    let started_here = started.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let back = browser.get(&at_provider).send().await.unwrap();
    assert_eq!(back.status(), 303, "the provider sends the browser back");
    let callback = back.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(
        callback.starts_with(&server.url("/sso/callback")),
        "{callback}"
    );
    // Another browser, sent to the callback with this sign-in, gets nowhere.
    let elsewhere = browser.get(&callback).send().await.unwrap();
    assert_eq!(
        elsewhere.status(),
        403,
        "a callback without the starting browser's cookie"
    );
    (
        browser
            .get(&callback)
            .header(COOKIE, &started_here)
            .send()
            .await
            .unwrap(),
        callback,
        started_here,
    )
}

async fn refusal(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test]
async fn people_sign_in_through_the_identity_provider() {
    let Some(provider) = OidcServer::start() else {
        return;
    };
    let server = Server::start_with(Backend::Sqlite, &[]).await.unwrap();
    let settings = json!({
        "provider": "custom", "issuer": provider.base,
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET
    });
    let (status, saved) = server
        .api(Method::PUT, "/api/v1/sso", Some(settings.to_string()))
        .await;
    assert_eq!(status, 200, "{saved}");
    let (_, shown) = server.api(Method::GET, "/api/v1/sso", None).await;
    assert_eq!(shown["client_secret"], "********");
    assert!(!shown.to_string().contains(CLIENT_SECRET));

    // The member's way in: a session, as after a password sign-in.
    let (landed, callback, started_here) = sign_in_through(&server).await;
    assert_eq!(landed.status(), 303);
    assert_eq!(landed.headers()[LOCATION], "/");
    let cookie = landed.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let me: Value = browser()
        .get(server.url("/api/v1/session"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["email"], "ann@example.com", "{me}");
    assert_eq!(me["role"], "owner");
    // A callback is good once.
    let replayed = browser()
        .get(&callback)
        .header(COOKIE, &started_here)
        .send()
        .await
        .unwrap();
    let (status, message) = refusal(replayed).await;
    assert!(message.contains("unknown or expired"), "{message}");
    assert_eq!(status, 403, "{message}");

    // Refused: an email the provider has not verified, a token signed by a key it does not
    // publish, a token for another client, and a stranger.
    let mut unverified = login("ann@example.com");
    unverified.email_verified = false;
    let mut forged = login("ann@example.com");
    forged.forged = true;
    let mut elsewhere = login("ann@example.com");
    elsewhere.audience = Some("another-client".to_owned());
    for (next, expected) in [
        (unverified, "not verified"),
        (forged, "does not hold"),
        (elsewhere, "does not hold"),
        (login("stranger@example.com"), "not a member"),
    ] {
        provider.next_login(next);
        let (status, message) = refusal(sign_in_through(&server).await.0).await;
        assert_eq!(status, 403, "{message}");
        assert!(message.contains(expected), "{message}");
    }

    let (_, log) = server
        .api(Method::GET, "/api/v1/audit?action=session.sign_in", None)
        .await;
    assert_eq!(log["events"][0]["details"]["sso"], "custom", "{log:#}");
    let (_, failed) = server
        .api(
            Method::GET,
            "/api/v1/audit?action=session.sign_in_failed",
            None,
        )
        .await;
    assert_eq!(failed["events"].as_array().unwrap().len(), 2, "{failed:#}");
}

#[tokio::test]
async fn a_workspace_that_requires_sso_refuses_passwords_but_its_owners() {
    let Some(provider) = OidcServer::start() else {
        return;
    };
    let server = Server::start_with(Backend::Sqlite, &[]).await.unwrap();
    server.create_user_and_token("bea@example.com", "builder");
    let settings = json!({
        "provider": "custom", "issuer": provider.base, "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET, "required": true
    });
    let (status, _) = server
        .api(Method::PUT, "/api/v1/sso", Some(settings.to_string()))
        .await;
    assert_eq!(status, 200);
    let server = &server;
    let password = |email: &str| {
        let body = json!({ "email": email, "password": "a long enough password" });
        async move {
            server
                .api_as("", Method::POST, "/api/v1/session", Some(body.to_string()))
                .await
        }
    };
    let (status, refused) = password("bea@example.com").await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"]["code"], "sso_required");
    let (status, _) = password("ann@example.com").await;
    assert_eq!(status, 200, "an owner keeps a way in");
    provider.next_login(login("bea@example.com"));
    assert_eq!(sign_in_through(server).await.0.status(), 303);

    // A provider that cannot be discovered is refused when saved.
    let broken = json!({ "provider": "custom", "issuer": "http://127.0.0.1:9/nowhere", "client_id": "x", "client_secret": "y" });
    let (status, answer) = server
        .api(Method::PUT, "/api/v1/sso", Some(broken.to_string()))
        .await;
    assert_eq!(status, 502, "{answer}");
}
