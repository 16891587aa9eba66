//! Privacy: job history is deleted when its time is up or its workspace's cap is passed, and
//! deleted means gone from every table and from the database's files.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::server::{Backend, Server};

/// Kept two seconds, whole.
const SHORT: &str = "name: Short\ntrigger:\n  webhook: { path: short }\nretention: { keep: 2s, record: full }\nsteps:\n  - id: echo\n    transform: .trigger.body\n";
/// Kept by the workspace's rule.
const LONG: &str = "name: Long\ntrigger:\n  webhook: { path: long }\nretention: { record: full }\nsteps:\n  - id: echo\n    transform: .trigger.body\n";

async fn job_of(server: &Server, path: &str, body: Value) -> String {
    let accepted = server.hook(path, body).await;
    let id = accepted["job_id"].as_str().expect("a job id").to_owned();
    server.finished_job(&id).await;
    id
}

async fn gone_within(server: &Server, job_id: &str, seconds: u64) -> bool {
    for _ in 0..seconds * 10 {
        let (status, _) = server
            .api(Method::GET, &format!("/api/v1/jobs/{job_id}"), None)
            .await;
        if status == 404 {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

on_both_backends!(
    expired_history_is_deleted_without_a_trace,
    &["--retention-every", "1s"],
    |server: Server| async move {
        server.save_recipe(SHORT).await;
        server.save_recipe(LONG).await;
        let short = job_of(
            &server,
            "/hooks/short",
            json!({ "email": "erase-me-4711@example.com" }),
        )
        .await;
        let long = job_of(
            &server,
            "/hooks/long",
            json!({ "email": "keep-me-0815@example.com" }),
        )
        .await;
        assert!(
            server.everything_stored().contains("erase-me-4711"),
            "the scan sees stored data"
        );

        // The report says what is held and when it goes.
        let (status, report) = server
            .api(Method::GET, "/api/v1/privacy/retention", None)
            .await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["server_keep_seconds"], 30 * 86_400);
        let short_line = report["recipes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|line| line["recipe"] == "Short")
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            (
                short_line["keep_seconds"].clone(),
                short_line["record"].clone()
            ),
            (json!(2), json!("full")),
            "{report}"
        );

        assert!(
            gone_within(&server, &short, 20).await,
            "the short-lived job is deleted"
        );
        let (status, _) = server
            .api(Method::GET, &format!("/api/v1/jobs/{long}"), None)
            .await;
        assert_eq!(status, 200, "the other recipe's job stays");
        // Gone from every table and from the files: nothing to find even in free space.
        let mut stored = server.everything_stored();
        for _ in 0..50 {
            if !stored.contains("erase-me-4711") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            stored = server.everything_stored();
        }
        assert!(
            !stored.contains("erase-me-4711"),
            "a trace of the deleted job is left"
        );
        assert!(
            stored.contains("keep-me-0815"),
            "the kept job is still there"
        );

        // The workspace's rule: a keep for every recipe without its own, then a size cap.
        let (status, saved) = server
            .api(
                Method::PUT,
                "/api/v1/privacy/retention",
                Some(json!({ "keep": "1s", "max_history_bytes": null }).to_string()),
            )
            .await;
        assert_eq!(status, 200, "{saved}");
        assert!(
            gone_within(&server, &long, 20).await,
            "the workspace's keep applies to Long"
        );
    }
);

on_both_backends!(
    a_workspace_over_its_cap_loses_its_oldest_history_first,
    &["--retention-every", "1s"],
    |server: Server| async move {
        server.save_recipe(LONG).await;
        let mut jobs = Vec::new();
        for n in 0..6 {
            jobs.push(
                job_of(
                    &server,
                    "/hooks/long",
                    json!({ "n": n, "padding": "x".repeat(2_000) }),
                )
                .await,
            );
        }
        let (_, report) = server
            .api(Method::GET, "/api/v1/privacy/retention", None)
            .await;
        let held = report["history_bytes"].as_i64().unwrap();
        assert!(held > 6 * 4_000, "{report}");
        // Room for about half: the oldest go, the newest stay.
        let (status, _) = server
            .api(
                Method::PUT,
                "/api/v1/privacy/retention",
                Some(json!({ "max_history_bytes": held / 2 }).to_string()),
            )
            .await;
        assert_eq!(status, 200);
        assert!(
            gone_within(&server, &jobs[0], 20).await,
            "the oldest job goes"
        );
        let (status, _) = server
            .api(Method::GET, &format!("/api/v1/jobs/{}", jobs[5]), None)
            .await;
        assert_eq!(status, 200, "the newest stays");
        let (_, report) = server
            .api(Method::GET, "/api/v1/privacy/retention", None)
            .await;
        assert!(
            report["history_bytes"].as_i64().unwrap() <= held / 2,
            "{report}"
        );

        // Bad rules are refused and change nothing.
        for bad in [
            json!({ "keep": "soon" }),
            json!({ "max_history_bytes": 0 }),
            json!({ "kept": "1d" }),
        ] {
            let (status, _) = server
                .api(
                    Method::PUT,
                    "/api/v1/privacy/retention",
                    Some(bad.to_string()),
                )
                .await;
            assert_eq!(status, 400, "{bad}");
        }
    }
);

/// What a browser gets from Weft: only the session's cookie, no `Referer` sent on, nothing
/// loaded from another site, no interest tracking; on every kind of answer.
#[tokio::test]
async fn a_browser_gets_only_the_sessions_cookie_and_no_third_party() {
    let server = Server::start_with(Backend::Sqlite, &[])
        .await
        .expect("SQLite is always there");
    let client = Server::client();
    let signed_in = client
        .post(server.url("/api/v1/session"))
        .body(
            json!({ "email": "ann@example.com", "password": "a long enough password" }).to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 200);
    let cookies: Vec<String> = signed_in
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert!(cookies[0].starts_with("weft_session="), "{cookies:?}");
    assert!(cookies[0].contains("HttpOnly"), "{cookies:?}");
    let session = cookies[0].split(';').next().unwrap().to_owned();
    let answers = [
        signed_in,
        client.get(server.url("/healthz")).send().await.unwrap(),
        client.get(server.url("/nowhere")).send().await.unwrap(),
        client
            .get(server.url("/oauth/callback?state=x&code=y"))
            .send()
            .await
            .unwrap(),
        client
            .get(server.url("/api/v1/me"))
            .header(reqwest::header::COOKIE, &session)
            .header("dnt", "1")
            .header("sec-gpc", "1")
            .send()
            .await
            .unwrap(),
    ];
    for answer in answers {
        let url = answer.url().to_string();
        let headers = answer.headers();
        assert_eq!(headers["referrer-policy"], "no-referrer", "{url}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{url}");
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("default-src 'self'"), "{url}: {policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{url}: {policy}");
        assert!(
            headers["permissions-policy"]
                .to_str()
                .unwrap()
                .contains("browsing-topics=()")
        );
        assert!(
            headers.get_all(reqwest::header::SET_COOKIE).iter().count() <= 1,
            "{url} sets cookies"
        );
    }
}
