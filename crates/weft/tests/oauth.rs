//! OAuth 2 for `http` connections against a stand-in provider: connecting an account through
//! the browser redirect and callback (state and PKCE), tokens kept sealed, refreshed before
//! they expire and when the API refuses them; and the client credentials grant.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::oauth_server::{CLIENT_ID, CLIENT_SECRET, OAuthServer};
use crate::support::server::{Backend, Server};
use crate::support::{files_under, run_with, write_recipe};

const CALL_API: &str = "name: Call the API\ntrigger: { manual: {} }\nsteps:\n  - id: call\n    action: http.request\n    connection: crm\n    input: { url: /api }\noutput: '{{ steps.call.output.body }}'\n";

async fn seen(provider: &OAuthServer) -> Value {
    reqwest::get(format!("{}/seen", provider.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn run_job(server: &Server, recipe_id: &str) -> Value {
    let (status, accepted) = server
        .api(
            Method::POST,
            &format!("/api/v1/recipes/{recipe_id}/run"),
            Some("{}".to_owned()),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    server
        .finished_job(accepted["job_id"].as_str().unwrap())
        .await
}

/// An `oauth2_code` connection to the stand-in provider.
fn crm_connection(provider: &OAuthServer) -> Value {
    json!({
        "name": "crm",
        "connector": "http",
        "fields": {
            "base_url": provider.base,
            "auth": "oauth2_code",
            "authorize_url": format!("{}/authorize", provider.base),
            "token_url": format!("{}/token", provider.base),
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scopes": "read write",
        }
    })
}

/// A browser that does not follow redirects, to see where each one goes.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The provider's answer to a person who signs in at `authorize_url`: the callback URL it
/// sends the browser back to.
async fn sign_in(authorize_url: &str) -> String {
    let redirected = browser().get(authorize_url).send().await.unwrap();
    assert_eq!(
        redirected.status(),
        303,
        "the provider sends the browser back"
    );
    redirected.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn an_account_is_connected_and_its_tokens_refreshed() {
    let provider = OAuthServer::start();
    let mut server = Server::start_with(Backend::Sqlite, &[]).await.unwrap();
    let created = server.save_connection(crm_connection(&provider)).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let recipe = server.save_recipe(CALL_API).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Not connected yet: the job says so.
    let job = run_job(&server, &recipe).await;
    assert_eq!(job["status"], "failed");
    assert!(
        job["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not connected"),
        "{job}"
    );

    // The browser's way: the authorization URL, the provider's redirect, the callback.
    let (status, started) = server
        .api(
            Method::POST,
            &format!("/api/v1/connections/{id}/oauth/start"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{started}");
    let authorize = started["authorize_url"].as_str().unwrap();
    assert!(
        authorize.contains("code_challenge_method=S256") && authorize.contains("state="),
        "{authorize}"
    );
    assert!(authorize.contains("scope=read+write"), "{authorize}");
    let browser = browser();
    let callback = sign_in(authorize).await;
    assert!(
        callback.starts_with(&server.url("/oauth/callback")),
        "{callback}"
    );
    let landed = browser.get(&callback).send().await.unwrap();
    assert_eq!(landed.status(), 200);
    assert!(landed.text().await.unwrap().contains("connected"));
    // The state is good once.
    let again = browser.get(&callback).send().await.unwrap();
    assert_eq!(again.status(), 400);
    let forged = browser
        .get(server.url("/oauth/callback?code=code-1&state=made-up"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);

    let (_, shown) = server
        .api(Method::GET, &format!("/api/v1/connections/{id}"), None)
        .await;
    assert_eq!(shown["fields"]["access_token"], "********", "{shown}");
    assert_eq!(shown["fields"]["refresh_token"], "********", "{shown}");
    assert!(shown["fields"]["expires_at"].is_string(), "{shown}");

    let job = run_job(&server, &recipe).await;
    assert_eq!(job["output"], json!({ "ok": true }), "{job}");

    // The API refuses the token (revoked): the connection is refreshed, the call made again.
    browser
        .post(format!("{}/revoke", provider.base))
        .send()
        .await
        .unwrap();
    let job = run_job(&server, &recipe).await;
    assert_eq!(job["output"], json!({ "ok": true }), "{job}");
    let after_revoke = seen(&provider).await;
    assert_eq!(
        after_revoke["grants"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(after_revoke["refused_calls"], 1);

    // A token about to expire is refreshed before the call, without a refusal.
    browser
        .post(format!("{}/expire-next-in/30", provider.base))
        .send()
        .await
        .unwrap();
    browser
        .post(format!("{}/revoke", provider.base))
        .send()
        .await
        .unwrap();
    run_job(&server, &recipe).await; // refused once, refreshed: the new token lives 30 s
    let job = run_job(&server, &recipe).await;
    assert_eq!(job["output"], json!({ "ok": true }), "{job}");
    let latest = seen(&provider).await;
    assert_eq!(
        latest["grants"],
        json!([
            "authorization_code",
            "refresh_token",
            "refresh_token",
            "refresh_token"
        ])
    );
    assert_eq!(
        latest["refused_calls"], 2,
        "the last refresh came before the call"
    );

    // No token is anywhere in the data folder or the records.
    server.terminate();
    server.wait();
    let files = files_under(&server.data_folder().unwrap());
    for token in latest["issued"].as_array().unwrap() {
        let token = token.as_str().unwrap();
        assert!(
            !files
                .iter()
                .any(|bytes| bytes.windows(token.len()).any(|w| w == token.as_bytes())),
            "{token} is stored in clear"
        );
    }
    assert!(!server.logs().contains("access-"), "{}", server.logs());
}

/// On a platform of two processes behind one address, the provider's callback may reach
/// another process than the one that started the sign-in: it finishes it all the same, once.
#[tokio::test]
async fn a_sign_in_started_on_one_process_finishes_on_another() {
    let provider = OAuthServer::start();
    let Some(first) = Server::start_with(Backend::Postgres, &[]).await else {
        return;
    };
    let second = first.another_process();
    let id = first.save_connection(crm_connection(&provider)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, started) = first
        .api(
            Method::POST,
            &format!("/api/v1/connections/{id}/oauth/start"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{started}");
    let callback = sign_in(started["authorize_url"].as_str().unwrap()).await;
    let on_second = callback.replace(&first.base, &second.base);
    assert_ne!(on_second, callback);
    let landed = browser().get(&on_second).send().await.unwrap();
    assert_eq!(landed.status(), 200);
    assert!(landed.text().await.unwrap().contains("connected"));
    let again = browser().get(&callback).send().await.unwrap();
    assert_eq!(
        again.status(),
        400,
        "the state is good once, on any process"
    );

    let recipe = first.save_recipe(CALL_API).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = run_job(&first, &recipe).await;
    assert_eq!(job["output"], json!({ "ok": true }), "{job}");
    assert_eq!(
        seen(&provider).await["grants"],
        json!(["authorization_code"])
    );
}

#[test]
fn the_client_credentials_grant_fetches_and_renews_its_token() {
    let provider = OAuthServer::start();
    let (folder, recipe) = write_recipe(&format!(
        "name: Machine to machine\ntrigger: {{ manual: {{}} }}\nsteps:\n  - id: first\n    action: http.request\n    connection: crm\n    input: {{ url: /api }}\n  - id: revoke\n    action: http.request\n    input: {{ method: POST, url: '{}/revoke' }}\n  - id: second\n    action: http.request\n    connection: crm\n    input: {{ url: /api }}\n",
        provider.base
    ));
    let connections = folder.path().join("connections.yaml");
    std::fs::write(
        &connections,
        format!(
            "crm:\n  connector: http\n  base_url: {0}\n  auth: oauth2_client_credentials\n  token_url: {0}/token\n  client_id: {CLIENT_ID}\n  client_secret: {CLIENT_SECRET}\n",
            provider.base
        ),
    )
    .unwrap();
    let ran = run_with(
        &recipe,
        &json!({}),
        &["--connections", connections.to_str().unwrap()],
    );
    assert_eq!(ran.code, 0, "{:#}", ran.record);
    assert_eq!(ran.step("second")["output"]["body"], json!({ "ok": true }));
    let seen: Value = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async { seen(&provider).await });
    assert_eq!(
        seen["grants"],
        json!(["client_credentials", "client_credentials"])
    );
    assert!(
        !ran.record.to_string().contains("access-"),
        "{:#}",
        ran.record
    );
}
