//! Signing in with a password: the session cookie and its flags, CSRF on changes, signing
//! out here and everywhere, idle and absolute ends, failed sign-ins limited per account,
//! password changes, and the audit log of it all.

use reqwest::Method;
use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::{Value, json};

use crate::support::server::{Backend, Server};

/// The password the test servers' first person has.
const PASSWORD: &str = "a long enough password";

struct Signed {
    cookie: String,
    set_cookie: String,
    csrf: String,
}

async fn try_sign_in(server: &Server, email: &str, password: &str) -> (u16, Value, Option<Signed>) {
    let response = Server::client()
        .post(server.url("/api/v1/session"))
        .body(json!({ "email": email, "password": password }).to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let set_cookie = response
        .headers()
        .get(SET_COOKIE)
        .map(|value| value.to_str().unwrap().to_owned());
    let retry_after = response.headers().get("retry-after").cloned();
    let mut body: Value = response.json().await.unwrap_or(Value::Null);
    if let Some(retry_after) = retry_after {
        body["retry_after"] = json!(retry_after.to_str().unwrap());
    }
    let signed = set_cookie.map(|set_cookie| Signed {
        cookie: set_cookie.split(';').next().unwrap().to_owned(),
        csrf: body["csrf_token"].as_str().unwrap_or_default().to_owned(),
        set_cookie,
    });
    (status, body, signed)
}

async fn sign_in(server: &Server, email: &str, password: &str) -> Signed {
    let (status, body, signed) = try_sign_in(server, email, password).await;
    assert_eq!(status, 200, "{body}");
    signed.unwrap()
}

/// A call with the session's cookie, and its CSRF token when given.
async fn call(
    server: &Server,
    signed: &Signed,
    method: Method,
    path: &str,
    csrf: bool,
    body: Option<&str>,
) -> (u16, Value) {
    let mut request = Server::client()
        .request(method, server.url(path))
        .header(COOKIE, &signed.cookie);
    if csrf {
        request = request.header("x-csrf-token", &signed.csrf);
    }
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

const RECIPE: &str =
    "name: Hello\ntrigger: { manual: {} }\nsteps:\n  - id: say\n    transform: '\"hello\"'\n";

on_both_backends!(
    a_session_signs_in_changes_with_csrf_and_signs_out,
    |server: Server| async move {
        let signed = sign_in(&server, "ann@example.com", PASSWORD).await;
        let flags = &signed.set_cookie;
        assert!(flags.starts_with("weft_session="), "{flags}");
        assert!(
            flags.contains("HttpOnly")
                && flags.contains("SameSite=Lax")
                && flags.contains("Path=/"),
            "{flags}"
        );
        assert!(!flags.contains("Secure"), "plain http: {flags}");
        assert_eq!(signed.csrf.len(), 64);

        let (status, recipes) = call(
            &server,
            &signed,
            Method::GET,
            "/api/v1/recipes",
            false,
            None,
        )
        .await;
        assert_eq!(status, 200, "{recipes}");
        let (status, refused) = call(
            &server,
            &signed,
            Method::POST,
            "/api/v1/recipes",
            false,
            Some(RECIPE),
        )
        .await;
        assert_eq!(status, 403, "{refused}");
        assert_eq!(refused["error"]["code"], "csrf");
        let (status, _) = call(
            &server,
            &signed,
            Method::POST,
            "/api/v1/recipes",
            true,
            Some(RECIPE),
        )
        .await;
        assert_eq!(status, 201);
        let (status, session) = call(
            &server,
            &signed,
            Method::GET,
            "/api/v1/session",
            false,
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(session["csrf_token"], signed.csrf.as_str());
        assert_eq!(session["role"], "owner");

        // Signing out ends this session; another one goes on until "everywhere".
        let other = sign_in(&server, "ann@example.com", PASSWORD).await;
        let third = sign_in(&server, "ann@example.com", PASSWORD).await;
        let (status, _) = call(
            &server,
            &signed,
            Method::DELETE,
            "/api/v1/session",
            true,
            None,
        )
        .await;
        assert_eq!(status, 204);
        let (status, _) = call(
            &server,
            &signed,
            Method::GET,
            "/api/v1/recipes",
            false,
            None,
        )
        .await;
        assert_eq!(status, 401);
        let (status, _) = call(&server, &other, Method::GET, "/api/v1/recipes", false, None).await;
        assert_eq!(status, 200);
        let (status, _) = call(
            &server,
            &other,
            Method::DELETE,
            "/api/v1/sessions",
            true,
            None,
        )
        .await;
        assert_eq!(status, 204);
        for ended in [&other, &third] {
            let (status, _) =
                call(&server, ended, Method::GET, "/api/v1/recipes", false, None).await;
            assert_eq!(status, 401);
        }

        // Every sign-in is in the audit log, with where it came from.
        let (_, log) = server
            .api(Method::GET, "/api/v1/audit?action=session.sign_in", None)
            .await;
        let events = log["events"].as_array().unwrap();
        assert_eq!(events.len(), 3, "{log:#}");
        assert_eq!(events[0]["ip"], "127.0.0.1");
        assert_eq!(events[0]["user_agent"], "weft-tests");
        assert_eq!(events[0]["actor"], "ann@example.com");
    }
);

on_both_backends!(
    failed_sign_ins_are_refused_alike_then_limited,
    |server: Server| async move {
        let (status, wrong, signed) =
            try_sign_in(&server, "ann@example.com", "not the password").await;
        assert_eq!(status, 401, "{wrong}");
        assert!(signed.is_none());
        let (status, unknown, _) =
            try_sign_in(&server, "nobody@example.com", "whatever it is").await;
        assert_eq!(status, 401);
        assert_eq!(
            wrong["error"], unknown["error"],
            "an unknown account looks like a wrong password"
        );

        for _ in 0..4 {
            try_sign_in(&server, "ann@example.com", "not the password").await;
        }
        // Five failures: the account is held for a while, even with its right password.
        let (status, held, _) = try_sign_in(&server, "ann@example.com", PASSWORD).await;
        assert_eq!(status, 429, "{held}");
        assert_eq!(held["error"]["code"], "too_many_attempts");
        let seconds: u64 = held["retry_after"].as_str().unwrap().parse().unwrap();
        assert!(seconds > 800 && seconds <= 900, "{seconds}");
        // Another account from the same address is not held yet.
        server.create_user_and_token("bo@example.com", "viewer");
        sign_in(&server, "bo@example.com", PASSWORD).await;

        let (_, log) = server
            .api(
                Method::GET,
                "/api/v1/audit?action=session.sign_in_failed",
                None,
            )
            .await;
        assert_eq!(log["events"].as_array().unwrap().len(), 6, "{log:#}");
    }
);

#[tokio::test]
async fn sessions_end_when_idle_and_at_their_end() {
    let server = Server::start_with(Backend::Sqlite, &["--session-idle", "2s"])
        .await
        .unwrap();
    let idle = sign_in(&server, "ann@example.com", PASSWORD).await;
    let (status, _) = call(&server, &idle, Method::GET, "/api/v1/recipes", false, None).await;
    assert_eq!(status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (status, _) = call(&server, &idle, Method::GET, "/api/v1/recipes", false, None).await;
    assert_eq!(status, 401, "idle past the limit");

    let server = Server::start_with(Backend::Sqlite, &["--session-max", "2s"])
        .await
        .unwrap();
    let short = sign_in(&server, "ann@example.com", PASSWORD).await;
    assert!(
        short.set_cookie.contains("Max-Age=2"),
        "{}",
        short.set_cookie
    );
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (status, _) = call(&server, &short, Method::GET, "/api/v1/recipes", false, None).await;
    assert_eq!(status, 401, "past its end");
}

#[tokio::test]
async fn a_password_change_needs_the_current_one_and_ends_other_sessions() {
    let server = Server::start_with(
        Backend::Sqlite,
        &["--public-url", "https://weft.example.com"],
    )
    .await
    .unwrap();
    let here = sign_in(&server, "ann@example.com", PASSWORD).await;
    assert!(
        here.set_cookie.contains("; Secure"),
        "https: {}",
        here.set_cookie
    );
    let elsewhere = sign_in(&server, "ann@example.com", PASSWORD).await;
    let change = |current: &str, new: &str| {
        json!({ "current_password": current, "new_password": new }).to_string()
    };

    let (status, _) = call(
        &server,
        &here,
        Method::POST,
        "/api/v1/me/password",
        true,
        Some(&change("wrong one", "a new long password")),
    )
    .await;
    assert_eq!(status, 403);
    let (status, short) = call(
        &server,
        &here,
        Method::POST,
        "/api/v1/me/password",
        true,
        Some(&change(PASSWORD, "short")),
    )
    .await;
    assert_eq!(status, 400, "{short}");
    let (status, _) = call(
        &server,
        &here,
        Method::POST,
        "/api/v1/me/password",
        true,
        Some(&change(PASSWORD, "a new long password")),
    )
    .await;
    assert_eq!(status, 204);

    let (status, _) = call(&server, &here, Method::GET, "/api/v1/recipes", false, None).await;
    assert_eq!(status, 200, "this session goes on");
    let (status, _) = call(
        &server,
        &elsewhere,
        Method::GET,
        "/api/v1/recipes",
        false,
        None,
    )
    .await;
    assert_eq!(status, 401, "the others end");
    let (status, _, _) = try_sign_in(&server, "ann@example.com", PASSWORD).await;
    assert_eq!(status, 401);
    sign_in(&server, "ann@example.com", "a new long password").await;
}

#[tokio::test]
async fn a_page_of_another_site_cannot_sign_its_visitor_in() {
    let server = Server::start_with(Backend::Sqlite, &[]).await.unwrap();
    let body = json!({ "email": "ann@example.com", "password": PASSWORD }).to_string();
    let from = |origin: String| {
        Server::client()
            .post(server.url("/api/v1/session"))
            .header("origin", origin)
            .header("content-type", "text/plain")
            .body(body.clone())
            .send()
    };
    let forged = from("https://elsewhere.example".to_owned()).await.unwrap();
    assert_eq!(forged.status(), 403);
    assert!(forged.headers().get(SET_COOKIE).is_none());
    let answer: Value = forged.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "cross_origin", "{answer}");
    // The server's own pages, and programs (no Origin), sign in.
    let own = from(server.url("")).await.unwrap();
    assert_eq!(own.status(), 200);
    sign_in(&server, "ann@example.com", PASSWORD).await;
}

#[tokio::test]
async fn guesses_made_at_once_are_all_counted() {
    let server = Server::start_with(Backend::Sqlite, &[]).await.unwrap();
    // Twenty wrong passwords sent together: each is counted before its hashing, so no more
    // than five are tried before the account is locked.
    let guesses: Vec<String> = (0..20).map(|n| format!("wrong guess {n}")).collect();
    let answers = futures::future::join_all(
        guesses
            .iter()
            .map(|guess| try_sign_in(&server, "ann@example.com", guess)),
    )
    .await;
    let tried = answers
        .iter()
        .filter(|(status, _, _)| *status == 401)
        .count();
    let refused = answers
        .iter()
        .filter(|(status, _, _)| *status == 429)
        .count();
    assert_eq!((tried, refused), (5, 15));
}
