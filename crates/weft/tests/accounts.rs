//! Accounts through single-use links: the first owner's setup link printed at the first
//! start, invitations (mailed through a stored email connection, or given back without one),
//! password resets and email checks; each link works once and tells nothing to strangers.

use reqwest::Method;
use serde_json::{Value, json};
use std::io::BufRead;

use crate::support::server::{Backend, Server};
use crate::support::smtp_server::{PASSWORD as SMTP_PASSWORD, SmtpServer, USER as SMTP_USER};

/// The first person's password in the test servers.
const PASSWORD: &str = "a long enough password";

/// A public call (no token).
async fn post(server: &Server, path: &str, body: Value) -> (u16, Value) {
    server
        .api_as("", Method::POST, path, Some(body.to_string()))
        .await
}

async fn signs_in(server: &Server, email: &str, password: &str) -> bool {
    post(
        server,
        "/api/v1/session",
        json!({ "email": email, "password": password }),
    )
    .await
    .0 == 200
}

/// The link's secret in the last mail to `to`, its text undone from quoted-printable.
fn token_mailed_to(smtp: &SmtpServer, to: &str) -> String {
    let mail = smtp
        .received()
        .into_iter()
        .rev()
        .find(|mail| mail.to.iter().any(|address| address.contains(to)))
        .unwrap_or_else(|| panic!("no mail to {to}"));
    let text = mail.data.replace("=\r\n", "").replace("=3D", "=");
    let start = text.find("token=").expect("a link in the mail") + "token=".len();
    text[start..start + 64].to_owned()
}

async fn mailing_server() -> (Server, SmtpServer) {
    mailing_server_with(&[]).await
}

async fn mailing_server_with(options: &[&str]) -> (Server, SmtpServer) {
    let smtp = SmtpServer::start();
    let mut all = vec!["--mail-connection", "mailer"];
    all.extend_from_slice(options);
    let server = Server::start_with(Backend::Sqlite, &all).await.unwrap();
    server
        .save_connection(json!({
            "name": "mailer", "connector": "email",
            "fields": {
                "host": "127.0.0.1", "port": smtp.port, "security": "none",
                "username": SMTP_USER, "password": SMTP_PASSWORD, "from": "Weft <weft@example.com>"
            }
        }))
        .await;
    (server, smtp)
}

#[tokio::test]
async fn the_setup_link_makes_the_first_owner_once() {
    let folder = tempfile::tempdir().unwrap();
    let mut child = crate::support::weft()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(folder.path().join("data"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut base, mut link) = (String::new(), String::new());
    while link.is_empty() {
        let line = lines
            .next()
            .expect("the server prints its setup link")
            .unwrap();
        if let Some(rest) = line.strip_prefix("weft is serving on ") {
            base = rest.split_whitespace().next().unwrap().to_owned();
        }
        if let Some((_, url)) = line.split_once("used once): ") {
            link = url.to_owned();
        }
    }
    assert!(link.starts_with(&format!("{base}/setup?token=")), "{link}");
    let token = link.rsplit('=').next().unwrap();
    let client = Server::client();
    let setup = |token: &str| {
        let body = json!({ "token": token, "email": "Owner@Example.com", "name": "Olu", "password": PASSWORD });
        client
            .post(format!("{base}/api/v1/setup"))
            .body(body.to_string())
            .send()
    };
    assert_eq!(setup("not-the-token").await.unwrap().status(), 410);
    let made = setup(token).await.unwrap();
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.unwrap();
    assert_eq!(made["role"], "owner");
    assert_eq!(made["user"]["email"], "owner@example.com");
    assert_eq!(
        setup(token).await.unwrap().status(),
        409,
        "once there is an owner"
    );
    let signed = client
        .post(format!("{base}/api/v1/session"))
        .body(json!({ "email": "owner@example.com", "password": PASSWORD }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 200);
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn invitations_bring_new_and_existing_people_in() {
    let (server, smtp) = mailing_server().await;
    let (status, invited) = server
        .api(
            Method::POST,
            "/api/v1/invitations",
            Some(json!({ "email": "Nia@example.com", "role": "builder" }).to_string()),
        )
        .await;
    assert_eq!(status, 201, "{invited}");
    assert_eq!(invited["mailed"], true);
    assert!(
        invited.get("link").is_none(),
        "a mailed link goes to the person only"
    );
    let token = token_mailed_to(&smtp, "nia@example.com");

    let accept = |token: String, password: &str| {
        let body = json!({ "token": token, "name": "Nia", "password": password });
        async { post(&server, "/api/v1/invitations/accept", body).await }
    };
    let (status, joined) = accept(token.clone(), "a password for nia").await;
    assert_eq!(status, 200, "{joined}");
    assert_eq!(joined["role"], "builder");
    let (status, _) = accept(token, "a password for nia").await;
    assert_eq!(status, 410, "a link works once");
    assert!(signs_in(&server, "nia@example.com", "a password for nia").await);

    // Someone with an account joins with their own password, and keeps the higher role.
    server.create_user_and_token("vi@example.com", "viewer");
    server
        .api(
            Method::POST,
            "/api/v1/invitations",
            Some(json!({ "email": "vi@example.com", "role": "operator" }).to_string()),
        )
        .await;
    let (status, _) = accept(token_mailed_to(&smtp, "vi@example.com"), "a wrong password").await;
    assert_eq!(status, 403);
    server
        .api(
            Method::POST,
            "/api/v1/invitations",
            Some(json!({ "email": "vi@example.com", "role": "operator" }).to_string()),
        )
        .await;
    let (status, joined) = accept(token_mailed_to(&smtp, "vi@example.com"), PASSWORD).await;
    assert_eq!(status, 200, "{joined}");
    assert_eq!(joined["role"], "operator");

    // No one invites above their own role.
    let admin = server.create_user_and_token("ad@example.com", "admin");
    let (status, _) = server
        .api_as(
            &admin,
            Method::POST,
            "/api/v1/invitations",
            Some(json!({ "email": "x@example.com", "role": "owner" }).to_string()),
        )
        .await;
    assert_eq!(status, 403);
    let (_, log) = server
        .api(Method::GET, "/api/v1/audit?action=member.join", None)
        .await;
    assert_eq!(log["events"].as_array().unwrap().len(), 2, "{log:#}");
}

#[tokio::test]
async fn without_a_mail_connection_the_invitation_link_goes_to_the_admin() {
    let server = Server::start_with(Backend::Sqlite, &[]).await.unwrap();
    let (status, invited) = server
        .api(
            Method::POST,
            "/api/v1/invitations",
            Some(json!({ "email": "kim@example.com", "role": "viewer" }).to_string()),
        )
        .await;
    assert_eq!(status, 201, "{invited}");
    assert_eq!(invited["mailed"], false);
    let link = invited["link"].as_str().unwrap();
    assert!(link.contains("/join?token="), "{link}");
    let token = link.rsplit('=').next().unwrap();
    let (status, _) = post(
        &server,
        "/api/v1/invitations/accept",
        json!({ "token": token, "name": "Kim", "password": "kim's own password" }),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_password_is_reset_by_a_mailed_link_once() {
    let (server, smtp) = mailing_server().await;
    let asked = post(
        &server,
        "/api/v1/password-reset",
        json!({ "email": "ann@example.com" }),
    )
    .await;
    let unknown = post(
        &server,
        "/api/v1/password-reset",
        json!({ "email": "nobody@example.com" }),
    )
    .await;
    assert_eq!(asked.0, 202);
    assert_eq!(
        asked, unknown,
        "the answer tells nothing about which accounts exist"
    );
    // The mail is sent after the answer, which does not wait for it.
    for _ in 0..100 {
        if !smtp.received().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        smtp.received().len(),
        1,
        "only the real account gets a mail"
    );
    let token = token_mailed_to(&smtp, "ann@example.com");
    let session = post(
        &server,
        "/api/v1/session",
        json!({ "email": "ann@example.com", "password": PASSWORD }),
    )
    .await;
    assert_eq!(session.0, 200);

    let reset = |password: &str| json!({ "token": token, "new_password": password });
    let (status, short) = post(&server, "/api/v1/password-reset/confirm", reset("short")).await;
    assert_eq!(status, 400, "{short}");
    let (status, _) = post(
        &server,
        "/api/v1/password-reset/confirm",
        reset("a brand new password"),
    )
    .await;
    assert_eq!(status, 204, "a refused password spent no link");
    let (status, _) = post(
        &server,
        "/api/v1/password-reset/confirm",
        reset("yet another password"),
    )
    .await;
    assert_eq!(status, 410);
    assert!(!signs_in(&server, "ann@example.com", PASSWORD).await);
    assert!(signs_in(&server, "ann@example.com", "a brand new password").await);

    // Asking too often for one account is held.
    for _ in 0..2 {
        post(
            &server,
            "/api/v1/password-reset",
            json!({ "email": "ann@example.com" }),
        )
        .await;
    }
    let (status, held) = post(
        &server,
        "/api/v1/password-reset",
        json!({ "email": "ann@example.com" }),
    )
    .await;
    assert_eq!(status, 429, "{held}");
}

#[tokio::test]
async fn an_email_address_is_confirmed_by_its_link() {
    let (server, smtp) = mailing_server().await;
    let (_, me) = server.api(Method::GET, "/api/v1/me", None).await;
    assert_eq!(me["email_verified_at"], Value::Null);
    let (status, sent) = server
        .api(Method::POST, "/api/v1/me/email/check", None)
        .await;
    assert_eq!(status, 202, "{sent}");
    let token = token_mailed_to(&smtp, "ann@example.com");
    let (status, _) = post(&server, "/api/v1/email/confirm", json!({ "token": token })).await;
    assert_eq!(status, 204);
    let (_, me) = server.api(Method::GET, "/api/v1/me", None).await;
    assert!(me["email_verified_at"].is_string(), "{me}");
}

/// Waits until `smtp` has received `count` mails in all.
async fn mails(smtp: &SmtpServer, count: usize) {
    for _ in 0..100 {
        if smtp.received().len() >= count {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{count} mails did not come: {:?}", smtp.received());
}

#[tokio::test]
async fn anyone_signs_up_with_a_workspace_when_the_operator_lets_them() {
    let closed = Server::start_with(Backend::Sqlite, &[]).await.unwrap();
    let asking = |workspace: &str, email: &str| {
        json!({
            "email": email, "name": "Zoe", "password": "zoe's long password",
            "workspace": { "id": workspace, "name": "Zeta Ltd" }
        })
    };
    let (status, refused) = post(
        &closed,
        "/api/v1/sign-up",
        asking("zeta", "zoe@zeta.example"),
    )
    .await;
    assert_eq!(
        (status, refused["error"]["code"].clone()),
        (403, json!("sign_up_closed"))
    );

    let (server, smtp) = mailing_server_with(&["--sign-up"]).await;
    let (status, answer) = post(
        &server,
        "/api/v1/sign-up",
        asking("zeta", "zoe@zeta.example"),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    mails(&smtp, 1).await;
    let token = token_mailed_to(&smtp, "zoe@zeta.example");

    // The new person owns the new workspace, and only that one.
    let signed: Value = post(
        &server,
        "/api/v1/session",
        json!({ "email": "zoe@zeta.example", "password": "zoe's long password" }),
    )
    .await
    .1;
    assert_eq!(
        (signed["workspace"].clone(), signed["role"].clone()),
        (json!("zeta"), json!("owner")),
        "{signed}"
    );
    let (status, _) = post(&server, "/api/v1/email/confirm", json!({ "token": token })).await;
    assert_eq!(status, 204);

    // The same email again: the same answer, no second account or workspace, and a mail to
    // the account's owner instead of a link.
    let (status, again) = post(
        &server,
        "/api/v1/sign-up",
        asking("zeta-two", "zoe@zeta.example"),
    )
    .await;
    assert_eq!((status, &again), (202, &answer));
    mails(&smtp, 2).await;
    let warning = smtp.received()[1].data.replace("=\r\n", "");
    assert!(warning.contains("has an account already"), "{warning}");
    assert!(!warning.contains("token="), "no link: {warning}");
    let (status, _) = post(
        &server,
        "/api/v1/sign-up",
        asking("zeta-two", "yan@zeta.example"),
    )
    .await;
    assert_eq!(
        status, 202,
        "the id zeta-two was not taken by the refused sign-up"
    );
    let (status, taken) = post(
        &server,
        "/api/v1/sign-up",
        asking("zeta", "xia@zeta.example"),
    )
    .await;
    assert_eq!(status, 409, "{taken}");
    let (status, weak) = post(
        &server,
        "/api/v1/sign-up",
        json!({ "email": "w@zeta.example", "name": "W", "password": "short", "workspace": { "id": "wzeta", "name": "W" } }),
    )
    .await;
    assert_eq!(status, 400, "{weak}");
}
