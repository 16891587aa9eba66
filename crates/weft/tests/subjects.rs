//! Data-subject requests: every job holding a person's identifier is found, and after an
//! erasure the identifier is nowhere in the database, while everything else stays.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::server::{Backend, Server};

const CRM: &str = "name: CRM\ntrigger:\n  webhook: { path: crm }\nsteps:\n  - id: greet\n    transform: '{to: .trigger.body.email, text: (\"Hello \" + .trigger.body.name)}'\noutput: '{{ steps.greet.output.to }} greeted'\n";
const SLOW: &str =
    "name: Slow\ntrigger:\n  webhook: { path: slow }\nsteps:\n  - id: nap\n    wait: 1h\n";

const SUBJECT: &str = "Erase.Me-4711@example.com";

async fn finished(server: &Server, path: &str, body: Value) -> String {
    let accepted = server.hook(path, body).await;
    let id = accepted["job_id"].as_str().expect("a job id").to_owned();
    server.finished_job(&id).await;
    id
}

async fn ask(server: &Server, token: &str, what: &str, identifier: &str) -> Value {
    let (status, answer) = server
        .api_as(
            token,
            Method::POST,
            &format!("/api/v1/privacy/subjects/{what}"),
            Some(json!({ "identifier": identifier }).to_string()),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    answer
}

on_both_backends!(
    a_subjects_values_are_found_and_erased_everywhere,
    |server: Server| async move {
        server.save_recipe(CRM).await;
        server.save_recipe(SLOW).await;
        let mut holding = Vec::new();
        for n in 0..6 {
            // The identifier as the person's email, and inside text in another case.
            let body = if n % 2 == 0 {
                json!({ "email": SUBJECT, "name": format!("Ann {n}") })
            } else {
                json!({ "email": format!("other-{n}@example.com"),
                        "name": format!("cc {}", SUBJECT.to_ascii_lowercase()) })
            };
            holding.push(finished(&server, "/hooks/crm", body).await);
        }
        let mut others = Vec::new();
        for n in 0..4 {
            let body = json!({ "email": format!("keep-{n}@example.com"), "name": "Bob" });
            others.push(finished(&server, "/hooks/crm", body).await);
        }
        let waiting = server
            .hook("/hooks/slow", json!({ "email": SUBJECT }))
            .await;
        let waiting = waiting["job_id"].as_str().unwrap().to_owned();
        // Another workspace's job with the same identifier is not this workspace's to erase.
        let acme = server.create_user_and_token_in("acme", "owner@acme.example", "owner");
        let (status, _) = server
            .api_as(&acme, Method::POST, "/api/v1/recipes", Some(CRM.to_owned()))
            .await;
        assert_eq!(status, 201);
        let accepted = server
            .hook(
                "/w/acme/hooks/crm",
                json!({ "email": SUBJECT, "name": "Ann" }),
            )
            .await;
        let acme_job = accepted["job_id"].as_str().unwrap().to_owned();
        let lower = SUBJECT.to_ascii_lowercase();

        let found = ask(&server, &server.token, "search", SUBJECT).await;
        assert_eq!(found["jobs_found"], 7, "{found}");
        assert_eq!(found["unfinished"], 1, "{found}");
        assert_eq!(
            found["identifier"],
            json!({ "kind": "email", "characters": 25 })
        );
        let ids: Vec<&str> = found["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|job| job["id"].as_str().unwrap())
            .collect();
        for id in holding.iter().chain([&waiting]) {
            assert!(ids.contains(&id.as_str()), "{id} missing from {found}");
        }
        let first = &found["jobs"][0];
        assert_eq!(first["recipe"], "CRM");
        let places: Vec<&str> = first["places"]
            .as_array()
            .unwrap()
            .iter()
            .map(|place| place.as_str().unwrap())
            .collect();
        assert!(places.contains(&"trigger.body.email"), "{places:?}");
        assert!(places.contains(&"steps.greet.output.to"), "{places:?}");
        assert!(places.contains(&"output"), "{places:?}");

        let erased = ask(&server, &server.token, "erase", SUBJECT).await;
        assert_eq!(erased["jobs_erased"], 6, "{erased}");
        assert_eq!(erased["unfinished"], json!([waiting]), "{erased}");
        assert_eq!(erased["ended_jobs_still_holding"], 0, "{erased}");
        // Three jobs hold it as their email (event, step output, job output), three inside
        // their name (event, step output).
        assert_eq!(erased["values_erased"], 3 * 3 + 3 * 2, "{erased}");

        for id in &holding {
            let (_, job) = server
                .api(Method::GET, &format!("/api/v1/jobs/{id}"), None)
                .await;
            let text = job.to_string();
            assert!(!text.to_ascii_lowercase().contains(&lower), "{text}");
            assert!(text.contains("[erased]"), "{text}");
            assert_eq!(
                job["status"], "succeeded",
                "the rest of the record stays: {text}"
            );
        }
        for (n, id) in others.iter().enumerate() {
            let (_, job) = server
                .api(Method::GET, &format!("/api/v1/jobs/{id}"), None)
                .await;
            assert_eq!(
                job["trigger"]["body"]["email"],
                format!("keep-{n}@example.com")
            );
        }
        let (_, theirs) = server
            .api_as(
                &acme,
                Method::GET,
                &format!("/api/v1/jobs/{acme_job}"),
                None,
            )
            .await;
        assert_eq!(theirs["trigger"]["body"]["email"], SUBJECT, "{theirs}");

        // The audit log says what was erased, not the value.
        let (_, audit) = server
            .api(
                Method::GET,
                "/api/v1/audit?action=privacy.subject_erase",
                None,
            )
            .await;
        let entry = audit["events"][0].to_string();
        assert!(entry.contains("\"jobs_erased\":6"), "{audit}");
        assert!(!entry.to_ascii_lowercase().contains(&lower), "{entry}");

        // Once the waiting job has ended and the other workspace has erased too, the whole
        // database holds no trace.
        let (status, _) = server
            .api(
                Method::POST,
                &format!("/api/v1/jobs/{waiting}/cancel"),
                None,
            )
            .await;
        assert_eq!(status, 200);
        server.finished_job(&waiting).await;
        let again = ask(&server, &server.token, "erase", SUBJECT).await;
        assert_eq!(again["jobs_erased"], 1, "{again}");
        let acme_erased = ask(&server, &acme, "erase", SUBJECT).await;
        assert_eq!(acme_erased["jobs_erased"], 1, "{acme_erased}");
        let stored = server.everything_stored().to_ascii_lowercase();
        assert!(
            stored.contains("keep-3@example.com"),
            "the scan sees stored data"
        );
        assert!(
            !stored.contains(&lower),
            "a trace of the erased identifier is left"
        );

        // A search finds nothing now; bad requests are refused.
        let none = ask(&server, &server.token, "search", SUBJECT).await;
        assert_eq!(none["jobs_found"], 0, "{none}");
        for bad in [
            json!({ "identifier": "ab" }),
            json!({ "email": SUBJECT }),
            json!("x"),
        ] {
            let (status, error) = server
                .api(
                    Method::POST,
                    "/api/v1/privacy/subjects/erase",
                    Some(bad.to_string()),
                )
                .await;
            assert_eq!(status, 400, "{bad}");
            assert!(error["error"]["message"].is_string(), "{error}");
        }
    }
);

#[tokio::test]
async fn a_long_erasure_goes_in_parts_and_proves_itself_at_the_end() {
    let server = Server::start_with(Backend::Sqlite, &[])
        .await
        .expect("SQLite is always there");
    server.save_recipe(CRM).await;
    for name in ["Ann", "Bo", "Cy"] {
        finished(
            &server,
            "/hooks/crm",
            json!({ "email": SUBJECT, "name": name }),
        )
        .await;
    }
    let erase_part = || async {
        let (status, answer) = server
            .api(
                Method::POST,
                "/api/v1/privacy/subjects/erase",
                Some(json!({ "identifier": SUBJECT, "max_jobs": 2 }).to_string()),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        answer
    };
    let first = erase_part().await;
    assert_eq!(first["jobs_erased"], 2, "{first}");
    assert_eq!(first["more"], true, "{first}");
    assert_eq!(first["ended_jobs_still_holding"], Value::Null, "{first}");
    let last = erase_part().await;
    assert_eq!(last["jobs_erased"], 1, "{last}");
    assert_eq!(last["more"], false, "{last}");
    assert_eq!(last["ended_jobs_still_holding"], 0, "{last}");
    assert_eq!(
        ask(&server, &server.token, "search", SUBJECT).await["jobs_found"],
        0
    );
    let (status, refused) = server
        .api(
            Method::POST,
            "/api/v1/privacy/subjects/search",
            Some(json!({ "identifier": SUBJECT, "max_jobs": 2 }).to_string()),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
}
