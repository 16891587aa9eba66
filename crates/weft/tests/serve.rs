//! `weft serve` started for real on a free port, on SQLite and on PostgreSQL: webhooks, the
//! recipes API, job history and health, driven over HTTP as a client would.

use hmac::Mac;
use reqwest::Method;
use serde_json::json;

use crate::support::server::{Backend, Server};

const GREET: &str = "name: Greet\ntrigger:\n  webhook: { path: greet, mode: sync }\nsteps:\n  - id: clean\n    transform: '{name: (.trigger.body.name | ascii_upcase)}'\n  - id: answer\n    respond: { status: 201, headers: { x-greeting: yes }, body: { hello: \"{{ steps.clean.output.name }}\" } }\n";

const COUNT: &str = "name: Count\ntrigger:\n  webhook: { path: orders/new }\nsteps:\n  - id: count\n    transform: '.trigger.body.items | length'\noutput: { items: \"{{ steps.count.output }}\", q: \"{{ trigger.query.tag }}\" }\n";

on_both_backends!(health_and_authentication, |server: Server| async move {
    let client = Server::client();
    assert_eq!(
        client
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .get(server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let anonymous = client
        .get(server.url("/api/v1/recipes"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let wrong = client
        .get(server.url("/api/v1/jobs"))
        .bearer_auth("weft_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let (status, _) = server.api(Method::GET, "/api/v1/recipes", None).await;
    assert_eq!(status, 200);
});

on_both_backends!(
    recipes_are_saved_with_versions,
    |server: Server| async move {
        let created = server.save_recipe(COUNT).await;
        assert_eq!(created["version"], 1);
        assert_eq!(created["webhook_path"], "orders/new");
        let id = created["id"].as_str().unwrap().to_owned();

        let changed = COUNT.replace("length'", "length * 1'");
        let (status, updated) = server
            .api(Method::PUT, &format!("/api/v1/recipes/{id}"), Some(changed))
            .await;
        assert_eq!(status, 200, "{updated}");
        assert_eq!(updated["version"], 2);
        let (_, versions) = server
            .api(Method::GET, &format!("/api/v1/recipes/{id}/versions"), None)
            .await;
        assert_eq!(versions["versions"].as_array().unwrap().len(), 2);
        let (_, listed) = server.api(Method::GET, "/api/v1/recipes", None).await;
        assert_eq!(listed["recipes"][0]["name"], "Count");

        let (status, problems) = server
            .api(
                Method::POST,
                "/api/v1/recipes",
                Some(
                    "name: Bad\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    sett: {}\n"
                        .to_owned(),
                ),
            )
            .await;
        assert_eq!(status, 422);
        assert_eq!(problems["error"]["code"], "invalid_recipe");
        assert_eq!(
            problems["error"]["problems"][1],
            json!({"line": 5, "column": 5, "message": "unknown key `sett` in a step; did you mean `set`?"})
        );

        let taken = COUNT.replace("name: Count", "name: Other");
        let (status, conflict) = server
            .api(Method::POST, "/api/v1/recipes", Some(taken))
            .await;
        assert_eq!(status, 409, "{conflict}");
        assert!(
            conflict["error"]["message"]
                .as_str()
                .unwrap()
                .contains("orders/new")
        );

        // The path is answered (and remembered), then the recipe is turned off: the very next
        // event is refused.
        let on = Server::client()
            .post(server.url("/hooks/orders/new"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(on.status(), 202);
        let (status, _) = server
            .api(Method::POST, &format!("/api/v1/recipes/{id}/disable"), None)
            .await;
        assert_eq!(status, 200);
        let off = Server::client()
            .post(server.url("/hooks/orders/new"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(off.status(), 404);
        server
            .api(Method::POST, &format!("/api/v1/recipes/{id}/enable"), None)
            .await;
        let (status, _) = server
            .api(Method::DELETE, &format!("/api/v1/recipes/{id}"), None)
            .await;
        assert_eq!(status, 204);
        let (status, _) = server
            .api(Method::GET, &format!("/api/v1/recipes/{id}"), None)
            .await;
        assert_eq!(status, 404);
    }
);

on_both_backends!(
    async_webhooks_queue_jobs_that_finish,
    |server: Server| async move {
        let created = server.save_recipe(COUNT).await;
        let response = Server::client()
            .post(server.url("/hooks/orders/new?tag=rush"))
            .json(&json!({"items": [1, 2, 3]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let accepted: serde_json::Value = response.json().await.unwrap();
        let job_id = accepted["job_id"].as_str().unwrap().to_owned();
        let job = server.finished_job(&job_id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["output"], json!({"items": 3, "q": "rush"}));
        assert_eq!(job["trigger"]["method"], "POST");
        assert_eq!(job["trigger"]["body"], json!({"items": [1, 2, 3]}));
        assert_eq!(job["steps"][0]["id"], "count");

        let (_, listed) = server
            .api(
                Method::GET,
                &format!(
                    "/api/v1/jobs?recipe={}&status=succeeded",
                    created["id"].as_str().unwrap()
                ),
                None,
            )
            .await;
        assert_eq!(listed["jobs"][0]["id"], job_id.as_str());
        assert_eq!(listed["jobs"][0]["recipe_version"], 1);
        let (status, bad) = server
            .api(Method::GET, "/api/v1/jobs?status=lost", None)
            .await;
        assert_eq!(status, 400, "{bad}");
    }
);

on_both_backends!(
    sync_webhooks_answer_with_the_respond_step,
    |server: Server| async move {
        server.save_recipe(GREET).await;
        let response = Server::client()
            .post(server.url("/hooks/greet"))
            .json(&json!({"name": "ann"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["x-greeting"], "yes");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body, json!({"hello": "ANN"}));
        let wrong_method = Server::client()
            .get(server.url("/hooks/greet"))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong_method.status(), 405);
    }
);

on_both_backends!(
    signed_webhooks_refuse_a_wrong_signature,
    |server: Server| async move {
        let recipe = "name: Signed\ntrigger:\n  webhook:\n    path: signed\n    signature: { header: X-Signature, secret: s3cret-key, prefix: 'sha256=' }\nsteps: []\n";
        server.save_recipe(recipe).await;
        let body = br#"{"event":"paid"}"#;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret-key").unwrap();
        mac.update(body);
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let client = Server::client();
        let send = |signature: String| {
            client
                .post(server.url("/hooks/signed"))
                .header("content-type", "application/json")
                .header("x-signature", signature)
                .body(body.to_vec())
                .send()
        };
        assert_eq!(send(good).await.unwrap().status(), 202);
        let refused = send(format!("sha256={}", "0".repeat(64))).await.unwrap();
        assert_eq!(refused.status(), 401);
        let reason: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(reason["error"]["code"], "bad_signature");
    }
);

on_both_backends!(
    manual_runs_check_the_input_schema_and_big_payloads_are_refused,
    |server: Server| async move {
        let recipe = "name: Quote\ntrigger:\n  manual:\n    input_schema: { type: object, required: [amount] }\nsteps:\n  - id: tax\n    transform: '.trigger.amount * 1.2'\noutput: '{{ steps.tax.output }}'\n";
        let (_, created) = server
            .api(Method::POST, "/api/v1/recipes", Some(recipe.to_owned()))
            .await;
        let id = created["id"].as_str().unwrap();
        let (status, refused) = server
            .api(
                Method::POST,
                &format!("/api/v1/recipes/{id}/run"),
                Some("{}".to_owned()),
            )
            .await;
        assert_eq!(status, 422, "{refused}");
        let (status, accepted) = server
            .api(
                Method::POST,
                &format!("/api/v1/recipes/{id}/run"),
                Some(r#"{"amount": 10}"#.to_owned()),
            )
            .await;
        assert_eq!(status, 202, "{accepted}");
        let job = server
            .finished_job(accepted["job_id"].as_str().unwrap())
            .await;
        assert_eq!(job["output"], json!(12.0));

        server.save_recipe(COUNT).await;
        let big = Server::client()
            .post(server.url("/hooks/orders/new"))
            .body(vec![b'a'; 2 * 1024 * 1024])
            .send()
            .await
            .unwrap();
        assert_eq!(big.status(), 413);
        let reason: serde_json::Value = big.json().await.unwrap();
        assert_eq!(reason["error"]["code"], "payload_too_large");
    }
);

const WAITS: &str = "name: Waits\ntrigger:\n  webhook: { path: waits }\nsteps:\n  - id: before\n    action: http.request\n    input: { url: \"{{ trigger.body.counter }}\" }\n  - id: pause\n    wait: 2s\n  - id: after\n    set: { done: true }\noutput: { first_call: \"{{ steps.before.output.body.call }}\", done: \"{{ vars.done }}\" }\n";

on_both_backends!(
    a_durable_wait_sleeps_in_the_store,
    |server: Server| async move {
        let counter = crate::support::http_server::TestServer::start();
        server.save_recipe(WAITS).await;
        let key = weft_store::new_id();
        let accepted: serde_json::Value = server
            .hook(
                "/hooks/waits",
                json!({"counter": format!("{}/flaky/{key}/0", counter.base)}),
            )
            .await;
        let job_id = accepted["job_id"].as_str().unwrap().to_owned();
        let mut saw_waiting = false;
        for _ in 0..40 {
            let (_, job) = server
                .api(Method::GET, &format!("/api/v1/jobs/{job_id}"), None)
                .await;
            if job["status"] == "waiting" {
                saw_waiting = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(saw_waiting, "the job never showed as waiting");
        let job = server.finished_job(&job_id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["output"], json!({"first_call": 1, "done": true}));
        let ids: Vec<&str> = job["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|step| step["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["before", "pause", "after"]);
        // The step before the wait ran once, not again when the job woke up.
        let next: serde_json::Value = Server::client()
            .get(format!("{}/flaky/{key}/0", counter.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(next["call"], 2);
    }
);

pub(crate) const SLOW_SECOND_STEP: &str = "name: Slow\ntrigger:\n  webhook: { path: slow }\nsteps:\n  - id: first\n    action: http.request\n    input: { url: \"{{ trigger.body.counter }}\" }\n  - id: second\n    action: http.request\n    input: { url: \"{{ trigger.body.slow }}\" }\noutput: { first_call: \"{{ steps.first.output.body.call }}\" }\n";

on_both_backends!(
    a_job_cut_off_by_a_crash_resumes_after_its_last_finished_step,
    |server: Server| async move {
        let mut server = server;
        let remote = crate::support::http_server::TestServer::start();
        server.save_recipe(SLOW_SECOND_STEP).await;
        let key = weft_store::new_id();
        let accepted: serde_json::Value = server.hook("/hooks/slow", json!({"counter": format!("{}/flaky/{key}/0", remote.base), "slow": format!("{}/slow", remote.base)})).await;
        let job_id = accepted["job_id"].as_str().unwrap().to_owned();
        // The first step is done and the second (3 s) is under way when the server dies.
        tokio::time::sleep(std::time::Duration::from_millis(800)).await;
        server.crash_and_restart();
        let job = server.finished_job(&job_id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["output"], json!({"first_call": 1}));
        let after: serde_json::Value = Server::client()
            .get(format!("{}/flaky/{key}/0", remote.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(after["call"], 2, "the first step ran again after the crash");
    }
);

/// Starts a job of [`SLOW_SECOND_STEP`] and returns its id and its counter's key, once its
/// first step is done and its second (3 s) is under way.
async fn start_slow_job(
    server: &Server,
    remote: &crate::support::http_server::TestServer,
) -> (String, String) {
    server.save_recipe(SLOW_SECOND_STEP).await;
    let key = weft_store::new_id();
    let event = json!({"counter": format!("{}/flaky/{key}/0", remote.base), "slow": format!("{}/slow", remote.base)});
    let accepted = server.hook("/hooks/slow", event).await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    (accepted["job_id"].as_str().unwrap().to_owned(), key)
}

/// How many times the job of `key` called its first step's counter.
async fn counter_calls(remote: &crate::support::http_server::TestServer, key: &str) -> u64 {
    let calls: serde_json::Value = reqwest::get(format!("{}/calls/{key}", remote.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    calls["calls"].as_u64().unwrap()
}

// SIGTERM: the server stops taking requests at once, lets the running job finish within its
// grace, records it and exits cleanly.
on_both_backends!(
    a_stopping_server_takes_no_more_work_and_finishes_its_jobs,
    &["--shutdown-grace", "10s"],
    |server: Server| async move {
        let mut server = server;
        let remote = crate::support::http_server::TestServer::start();
        let (job_id, key) = start_slow_job(&server, &remote).await;
        server.terminate();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let refused = Server::client()
            .post(server.url("/hooks/slow"))
            .json(&json!({}))
            .send()
            .await;
        assert!(
            refused.is_err(),
            "a stopping server took a request: {refused:?}"
        );
        assert!(server.wait().success(), "the server did not stop cleanly");
        let stopped_at = chrono::Utc::now();
        server.start_again();
        let (_, job) = server
            .api(Method::GET, &format!("/api/v1/jobs/{job_id}"), None)
            .await;
        assert_eq!(job["status"], "succeeded", "{job}");
        let finished: chrono::DateTime<chrono::Utc> =
            job["finished_at"].as_str().unwrap().parse().unwrap();
        assert!(
            finished < stopped_at,
            "the job was finished after the restart: {job}"
        );
        assert_eq!(counter_calls(&remote, &key).await, 1);
    }
);

// A job that outlasts the grace is handed back to the queue as the server stops: the next
// start takes it over at once (not after its 60 s lease) and resumes after its last finished
// step.
on_both_backends!(
    a_job_that_outlasts_the_shutdown_grace_is_handed_back,
    &["--shutdown-grace", "1s", "--job-lease", "60s"],
    |server: Server| async move {
        let mut server = server;
        let remote = crate::support::http_server::TestServer::start();
        let (job_id, key) = start_slow_job(&server, &remote).await;
        server.terminate();
        assert!(server.wait().success(), "the server did not stop cleanly");
        server.start_again();
        let job = server.finished_job(&job_id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["output"], json!({"first_call": 1}));
        assert_eq!(
            counter_calls(&remote, &key).await,
            1,
            "the first step ran again"
        );
    }
);

const DOUBLE: &str = "name: Double\ntrigger:\n  webhook: { path: double, mode: sync }\nsteps:\n  - id: double\n    transform: '.trigger.body.n * 2'\noutput: { doubled: \"{{ steps.double.output }}\" }\n";

// A sync webhook without a `respond` step answers with the job's output, or with its failure.
on_both_backends!(
    a_sync_webhook_without_respond_answers_with_the_output_or_the_failure,
    |server: Server| async move {
        server.save_recipe(DOUBLE).await;
        let client = Server::client();
        let answer = client
            .post(server.url("/hooks/double"))
            .json(&json!({"n": 21}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(
            answer.json::<serde_json::Value>().await.unwrap(),
            json!({"doubled": 42})
        );
        let failed = client
            .post(server.url("/hooks/double"))
            .json(&json!({"n": {"twenty": 1}}))
            .send()
            .await
            .unwrap();
        assert_eq!(failed.status(), 500);
        let body: serde_json::Value = failed.json().await.unwrap();
        assert_eq!(body["error"]["code"], "job_failed", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("double"),
            "{body}"
        );
        let job = server
            .finished_job(body["error"]["job_id"].as_str().unwrap())
            .await;
        assert_eq!(job["status"], "failed", "{job}");
        assert_eq!(job["error"]["step"], "double", "{job}");
    }
);

const BUSY_WORK: &str = "name: Busy\ntrigger:\n  webhook: { path: busy, mode: sync }\nsteps:\n  - id: count\n    transform: '[range(0; 400000)] | length'\noutput: { counted: \"{{ steps.count.output }}\" }\n";

// A sync webhook whose job outlasts the wait answers 202 with the job's id, and "accepted"
// means committed there too: a job that only computes is written before that answer, so that
// a crash right after it loses nothing.
on_both_backends!(
    a_sync_webhook_that_outlasts_its_wait_answers_202_once_the_job_is_stored,
    &["--sync-wait", "0s"],
    |server: Server| async move {
        let mut server = server;
        server.save_recipe(BUSY_WORK).await;
        let answer = Server::client()
            .post(server.url("/hooks/busy"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 202);
        let body: serde_json::Value = answer.json().await.unwrap();
        let job_id = body["job_id"].as_str().unwrap().to_owned();
        server.crash_and_restart();
        let job = server.finished_job(&job_id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["output"], json!({"counted": 400000}));
    }
);

const ECHO_LINES: &str = "name: Echo lines\ntrigger:\n  webhook: { path: lines }\nsteps:\n  - id: copy\n    transform: '.trigger.body.lines'\n  - id: count\n    transform: '.steps.copy.output | length'\noutput: { count: \"{{ steps.count.output }}\" }\n";

// A value over the stored-value limit is kept cut, with a marker saying how large it was and a
// preview; the job itself runs on the whole value.
on_both_backends!(
    a_stored_value_over_the_limit_is_cut_with_a_marker,
    &["--max-stored-value", "2000"],
    |server: Server| async move {
        server.save_recipe(ECHO_LINES).await;
        let lines: Vec<String> = (0..100)
            .map(|n| format!("line {n:03} of the order"))
            .collect();
        let accepted = server.hook("/hooks/lines", json!({"lines": lines})).await;
        let job = server
            .finished_job(accepted["job_id"].as_str().unwrap())
            .await;
        assert_eq!(job["output"], json!({"count": 100}), "{job}");
        let copied = &job["steps"][0]["output"];
        let marker = copied["[cut]"]
            .as_str()
            .unwrap_or_else(|| panic!("not cut: {copied}"));
        assert!(marker.contains("more than the 2000 bytes"), "{marker}");
        assert!(
            copied["preview"]
                .as_str()
                .unwrap()
                .starts_with(r#"["line 000 of the order""#),
            "{copied}"
        );
        assert!(
            job["trigger"].get("[cut]").is_some(),
            "the trigger was kept whole: {job}"
        );
        // Small values are kept as they are.
        assert_eq!(job["steps"][1]["output"], 100, "{job}");
    }
);

/// The `scheduled_at` of every job of a recipe, oldest first.
pub(crate) async fn scheduled_ticks(
    server: &Server,
    recipe_id: &str,
) -> Vec<chrono::DateTime<chrono::Utc>> {
    let (_, listed) = server
        .api(
            Method::GET,
            &format!("/api/v1/jobs?recipe={recipe_id}&limit=500"),
            None,
        )
        .await;
    let mut ticks = Vec::new();
    for job in listed["jobs"].as_array().unwrap() {
        let (_, record) = server
            .api(
                Method::GET,
                &format!("/api/v1/jobs/{}", job["id"].as_str().unwrap()),
                None,
            )
            .await;
        ticks.push(
            record["trigger"]["scheduled_at"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap(),
        );
    }
    ticks.sort();
    ticks
}

pub(crate) const EVERY_SECOND: &str = "name: Every second\ntrigger: { schedule: { cron: '* * * * * *' } }\nsteps:\n  - id: tick\n    set: { at: '{{ trigger.scheduled_at }}' }\n";

/// Saves [`EVERY_SECOND`], lets it tick, kills the server, keeps it down for `down`, starts
/// it again and lets it tick; returns the recipe's ticks, when it went down and when it came
/// back.
async fn ticks_across_a_stop(
    server: &mut Server,
    down: std::time::Duration,
) -> (
    Vec<chrono::DateTime<chrono::Utc>>,
    chrono::DateTime<chrono::Utc>,
    chrono::DateTime<chrono::Utc>,
) {
    let created = server.save_recipe(EVERY_SECOND).await;
    let id = created["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let went_down = chrono::Utc::now();
    server.crash();
    tokio::time::sleep(down).await;
    let came_back = chrono::Utc::now();
    server.start_again();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (status, _) = server
        .api(Method::POST, &format!("/api/v1/recipes/{id}/disable"), None)
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    (scheduled_ticks(server, &id).await, went_down, came_back)
}

// The ticks that fell while the server was down are fired when it is back, each once.
on_both_backends!(
    a_schedule_fires_every_tick_once_across_a_restart,
    |server: Server| async move {
        let mut server = server;
        let (ticks, went_down, came_back) =
            ticks_across_a_stop(&mut server, std::time::Duration::from_millis(2500)).await;
        let missed = ticks
            .iter()
            .filter(|at| **at > went_down && **at < came_back);
        assert!(
            missed.count() >= 2,
            "no tick fell while it was down: {ticks:?}"
        );
        for pair in ticks.windows(2) {
            assert_eq!(
                (pair[1] - pair[0]).num_milliseconds(),
                1000,
                "a tick is missing or fired twice: {ticks:?}"
            );
        }
    }
);

// Ticks older than the catch-up window are skipped, not fired late; the ones within it are
// fired, each once.
on_both_backends!(
    schedule_ticks_older_than_the_catch_up_window_are_skipped,
    &["--schedule-catch-up", "3s"],
    |server: Server| async move {
        let mut server = server;
        let (ticks, went_down, came_back) =
            ticks_across_a_stop(&mut server, std::time::Duration::from_secs(6)).await;
        let gaps: Vec<_> = ticks
            .windows(2)
            .filter(|pair| (pair[1] - pair[0]).num_milliseconds() != 1000)
            .collect();
        assert_eq!(gaps.len(), 1, "the ticks should have one gap: {ticks:?}");
        let (last_before, first_after) = (gaps[0][0], gaps[0][1]);
        assert!(last_before <= went_down, "{ticks:?}");
        let window_start = came_back - chrono::Duration::seconds(3);
        assert!(
            first_after >= window_start - chrono::Duration::seconds(1),
            "a tick older than the window was fired: {ticks:?}"
        );
        assert!(
            first_after < came_back,
            "no missed tick within the window was fired: {ticks:?}"
        );
    }
);

const FLAKY_SECOND: &str = "name: Second fails\ntrigger:\n  webhook: { path: second }\nsteps:\n  - id: first\n    action: http.request\n    input: { url: \"{{ trigger.body.counter }}\" }\n  - id: second\n    transform: 'if .trigger.body.ok then \"fine\" else error(\"not yet\") end'\noutput: { first_call: \"{{ steps.first.output.body.call }}\", second: \"{{ steps.second.output }}\" }\n";

on_both_backends!(
    a_failed_job_reruns_from_its_failed_step_or_from_the_start,
    |server: Server| async move {
        let remote = crate::support::http_server::TestServer::start();
        let (_, created) = server
            .api(
                Method::POST,
                "/api/v1/recipes",
                Some(FLAKY_SECOND.to_owned()),
            )
            .await;
        let recipe_id = created["id"].as_str().unwrap().to_owned();
        let key = weft_store::new_id();
        let counter = format!("{}/flaky/{key}/0", remote.base);
        let accepted: serde_json::Value = server
            .hook("/hooks/second", json!({"counter": counter, "ok": false}))
            .await;
        let failed_id = accepted["job_id"].as_str().unwrap().to_owned();
        let failed = server.finished_job(&failed_id).await;
        assert_eq!(failed["status"], "failed", "{failed}");

        // Fix the recipe: the second step now always succeeds; rerun on the current version from
        // the failed step. The first step's recorded output is reused, not fetched again.
        let fixed = FLAKY_SECOND.replace(
            "if .trigger.body.ok then \\\"fine\\\" else error(\\\"not yet\\\") end",
            "\\\"fine\\\"",
        );
        let fixed = fixed.replace(
            r#"'if .trigger.body.ok then "fine" else error("not yet") end'"#,
            r#"'"fine"'"#,
        );
        let (status, updated) = server
            .api(
                Method::PUT,
                &format!("/api/v1/recipes/{recipe_id}"),
                Some(fixed),
            )
            .await;
        assert_eq!(status, 200, "{updated}");
        let (status, rerun) = server
            .api(
                Method::POST,
                &format!("/api/v1/jobs/{failed_id}/rerun"),
                Some(r#"{"from": "failed", "version": "current"}"#.to_owned()),
            )
            .await;
        assert_eq!(status, 202, "{rerun}");
        let rerun_id = rerun["job_id"].as_str().unwrap().to_owned();
        let job = server.finished_job(&rerun_id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["output"], json!({"first_call": 1, "second": "fine"}));
        // The rerun points at the job it repeats, in its record and in the list.
        assert_eq!(job["rerun_of"], json!(failed_id), "{job}");
        let (_, listed) = server.api(Method::GET, "/api/v1/jobs", None).await;
        let line = listed["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|line| line["id"] == json!(rerun_id))
            .cloned()
            .unwrap();
        assert_eq!(line["rerun_of"], json!(failed_id), "{line}");

        // From the start, the first step runs again.
        let (status, again) = server
            .api(
                Method::POST,
                &format!("/api/v1/jobs/{failed_id}/rerun"),
                Some(r#"{"from": "start", "version": "current"}"#.to_owned()),
            )
            .await;
        assert_eq!(status, 202, "{again}");
        let job = server.finished_job(again["job_id"].as_str().unwrap()).await;
        assert_eq!(job["output"]["first_call"], 2);

        // From a step by name: the steps before it are reused, it and those after run again.
        let rerun_from = |step: &str| {
            let body = json!({"from": step, "version": "current"}).to_string();
            let path = format!("/api/v1/jobs/{failed_id}/rerun");
            let server = &server;
            async move { server.api(Method::POST, &path, Some(body)).await }
        };
        let (status, from_second) = rerun_from("second").await;
        assert_eq!(status, 202, "{from_second}");
        let job = server
            .finished_job(from_second["job_id"].as_str().unwrap())
            .await;
        assert_eq!(
            job["output"],
            json!({"first_call": 1, "second": "fine"}),
            "{job}"
        );
        let (status, from_first) = rerun_from("first").await;
        assert_eq!(status, 202, "{from_first}");
        let job = server
            .finished_job(from_first["job_id"].as_str().unwrap())
            .await;
        assert_eq!(job["output"]["first_call"], 3, "{job}");
        let (status, unknown) = rerun_from("third").await;
        assert_eq!(status, 422, "{unknown}");
        assert_eq!(unknown["error"]["code"], "unknown_step", "{unknown}");

        // Each job records the version that ran: the failed one the first, the reruns on the
        // current version the second.
        assert_eq!(failed["recipe_version"], 1, "{failed}");
        assert_eq!(job["recipe_version"], 2, "{job}");

        // On the version that ran, the rerun fails the same way.
        let (_, original) = server
            .api(
                Method::POST,
                &format!("/api/v1/jobs/{failed_id}/rerun"),
                None,
            )
            .await;
        let job = server
            .finished_job(original["job_id"].as_str().unwrap())
            .await;
        assert_eq!(job["status"], "failed");
        assert_eq!(job["recipe_version"], 1, "{job}");

        let (status, bulk) = server
            .api(
                Method::POST,
                "/api/v1/jobs/rerun",
                Some(format!(
                    r#"{{"recipe": "{recipe_id}", "status": "failed", "version": "current"}}"#
                )),
            )
            .await;
        assert_eq!(status, 202, "{bulk}");
        assert_eq!(bulk["started"].as_array().unwrap().len(), 2, "{bulk}");
    }
);

on_both_backends!(
    a_waiting_job_can_be_cancelled,
    |server: Server| async move {
        let recipe = "name: Long wait\ntrigger:\n  webhook: { path: long }\nsteps:\n  - id: first\n    set: { ready: true }\n  - id: pause\n    wait: 1h\n";
        server.save_recipe(recipe).await;
        let accepted: serde_json::Value = Server::client()
            .post(server.url("/hooks/long"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = accepted["job_id"].as_str().unwrap().to_owned();
        // Taken while the job sleeps ("failed" at once), or while it is on its way to sleep
        // ("running": it ends instead of sleeping).
        let cancelled = cancel_once_it_exists(&server, &id).await;
        assert!(
            cancelled["status"] == "failed" || cancelled["status"] == "running",
            "the job was never cancellable"
        );
        let job = server.finished_job(&id).await;
        assert_eq!(job["error"]["kind"], "stopped");
        // What the job did before it was cancelled stays in its record.
        let steps: Vec<&str> = job["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|step| step["id"].as_str().unwrap())
            .collect();
        assert_eq!(steps, ["first", "pause"], "{job}");
        let (status, refused) = server
            .api(Method::POST, &format!("/api/v1/jobs/{id}/cancel"), None)
            .await;
        assert_eq!(status, 409, "{refused}");
    }
);

/// Cancels a job, trying for two seconds while it cannot be (not written yet, or between
/// states); the answer of the cancel that was taken, or `null`.
async fn cancel_once_it_exists(server: &Server, id: &str) -> serde_json::Value {
    for _ in 0..40 {
        let (status, answer) = server
            .api(Method::POST, &format!("/api/v1/jobs/{id}/cancel"), None)
            .await;
        if status == 200 {
            return answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    serde_json::Value::Null
}

on_both_backends!(
    a_running_job_stops_before_its_next_step_when_cancelled,
    |server: Server| async move {
        // Waits under a second keep the job running in its process, step after step.
        let mut recipe = "name: Busy\ntrigger:\n  webhook: { path: busy }\nsteps:\n".to_owned();
        for n in 0..20 {
            recipe.push_str(&format!("  - id: tick{n}\n    wait: 300ms\n"));
        }
        server
            .api(Method::POST, "/api/v1/recipes", Some(recipe))
            .await;
        let accepted: serde_json::Value = Server::client()
            .post(server.url("/hooks/busy"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = accepted["job_id"].as_str().unwrap().to_owned();
        let answer = cancel_once_it_exists(&server, &id).await;
        assert_eq!(answer["status"], "running", "{answer}");
        let job = server.finished_job(&id).await;
        assert_eq!(job["status"], "failed", "{job}");
        assert_eq!(job["error"]["kind"], "stopped");
        assert!(
            job["error"]["message"]
                .as_str()
                .unwrap()
                .contains("cancelled by ann@example.com"),
            "{job}"
        );
        let ran = job["steps"].as_array().unwrap().len();
        assert!(ran < 20, "the job ran all its steps: {job}");
        let (status, refused) = server
            .api(Method::POST, &format!("/api/v1/jobs/{id}/cancel"), None)
            .await;
        assert_eq!(status, 409, "{refused}");
    }
);

on_both_backends!(
    a_sync_webhook_answers_at_its_respond_step_while_the_job_goes_on,
    |server: Server| async move {
        let recipe = "name: Early\ntrigger:\n  webhook: { path: early, mode: sync }\nsteps:\n  - id: answer\n    respond: { status: 201, body: accepted }\n  - id: later\n    wait: 3s\n";
        server.save_recipe(recipe).await;
        let started = std::time::Instant::now();
        let response = Server::client()
            .post(server.url("/hooks/early"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(response.text().await.unwrap(), "accepted");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "the answer waited for the job: {:?}",
            started.elapsed()
        );
    }
);

on_both_backends!(
    a_sync_webhook_answers_only_once_its_job_is_written,
    |server: Server| async move {
        // Steps that only compute: the job is written once, with its record, and the caller
        // is answered after that write; with a step that waits, before that step.
        let quick = "name: Quick\ntrigger:\n  webhook: { path: quick, mode: sync }\nsteps:\n  - id: shape\n    transform: '{n: (.trigger.body.n * 2)}'\n  - id: answer\n    respond: { status: 200, body: '{{ steps.shape.output }}' }\n";
        let slow = "name: Slow\ntrigger:\n  webhook: { path: slow, mode: sync }\nsteps:\n  - id: answer\n    respond: { status: 200, body: early }\n  - id: pause\n    wait: 500ms\n";
        for recipe in [quick, slow] {
            server.save_recipe(recipe).await;
        }
        let jobs_of = |name: &'static str| {
            let server = &server;
            async move {
                let (_, listed) = server.api(Method::GET, "/api/v1/jobs", None).await;
                listed["jobs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|job| job["recipe"] == name)
                    .cloned()
                    .collect::<Vec<_>>()
            }
        };
        for n in 1..=3 {
            let answer: serde_json::Value = Server::client()
                .post(server.url("/hooks/quick"))
                .json(&json!({"n": n}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(answer, json!({"n": n * 2}));
            let jobs = jobs_of("Quick").await;
            assert_eq!(jobs.len(), n as usize, "{jobs:?}");
            assert_eq!(jobs[0]["status"], "succeeded", "{jobs:?}");
            let record = server.finished_job(jobs[0]["id"].as_str().unwrap()).await;
            assert_eq!(record["steps"].as_array().unwrap().len(), 2, "{record}");
        }
        let early = Server::client()
            .post(server.url("/hooks/slow"))
            .send()
            .await
            .unwrap();
        assert_eq!(early.text().await.unwrap(), "early");
        let jobs = jobs_of("Slow").await;
        assert_eq!(jobs.len(), 1, "the answer came before the job was written");
        // Still in its wait, unless this machine is slow enough for it to have ended.
        assert!(
            jobs[0]["status"] == "running" || jobs[0]["status"] == "succeeded",
            "{jobs:?}"
        );
        let record = server.finished_job(jobs[0]["id"].as_str().unwrap()).await;
        assert_eq!(record["status"], "succeeded", "{record}");
    }
);

on_both_backends!(
    webhook_credentials_never_reach_the_job_history,
    |server: Server| async move {
        server.save_recipe(COUNT).await;
        let accepted: serde_json::Value = Server::client()
            .post(server.url("/hooks/orders/new"))
            .header("authorization", "Bearer caller-secret-123")
            .header("cookie", "session=cookie-secret-456")
            .json(&json!({"items": [], "echo": "caller-secret-123"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let job = server
            .finished_job(accepted["job_id"].as_str().unwrap())
            .await;
        let stored = job.to_string();
        assert!(
            !stored.contains("caller-secret-123") && !stored.contains("cookie-secret-456"),
            "{stored}"
        );
        assert_eq!(job["trigger"]["headers"]["authorization"], "[masked]");
    }
);

on_both_backends!(every_refusal_is_json, |server: Server| async move {
    let client = Server::client();
    let wrong_method = client
        .patch(server.url("/api/v1/recipes"))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    let body: serde_json::Value = wrong_method.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    let bad_query = client
        .get(server.url("/api/v1/jobs?since=yesterday"))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_query.status(), 400);
    let body: serde_json::Value = bad_query.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");
    let lower_case = client
        .get(server.url("/api/v1/recipes"))
        .header("authorization", format!("bearer {}", server.token))
        .send()
        .await
        .unwrap();
    assert_eq!(lower_case.status(), 200);
    let anonymous = client
        .get(server.url("/api/v1/recipes"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
});

/// Runs a `weft` client command against a server.
fn cli(server: &Server, args: &[&str]) -> (i32, String, String) {
    let output = crate::support::weft()
        .args(args)
        .env("WEFT_SERVER", &server.base)
        .env("WEFT_TOKEN", &server.token)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const PING: &str = "name: Ping\ntrigger:\n  webhook: { path: ping }\nsteps:\n  - id: pong\n    set: { pong: true }\n";

on_both_backends!(
    the_recipe_commands_push_show_switch_and_delete,
    |server: Server| async move {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ping.yaml");
        std::fs::write(&file, PING).unwrap();
        let file = file.display().to_string();
        let (code, pushed, stderr) = cli(&server, &["recipe", "push", &file]);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(pushed.trim(), "created   Ping (version 1)");
        std::fs::write(&file, PING.replace("pong: true", "pong: 2")).unwrap();
        let (_, pushed, _) = cli(&server, &["recipe", "push", &file]);
        assert_eq!(pushed.trim(), "changed   Ping (version 2)");
        let (code, shown, _) = cli(&server, &["recipe", "show", "Ping"]);
        assert_eq!(code, 0);
        let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(shown["version"], 2, "{shown}");
        assert!(
            shown["source"].as_str().unwrap().contains("pong: 2"),
            "{shown}"
        );

        let hook = || async {
            let answer = Server::client()
                .post(server.url("/hooks/ping"))
                .send()
                .await
                .unwrap();
            answer.status().as_u16()
        };
        let (code, _, stderr) = cli(&server, &["recipe", "disable", "Ping"]);
        assert_eq!(code, 0, "{stderr}");
        let (_, listed, _) = cli(&server, &["recipe", "list"]);
        assert!(listed.contains("disabled  Ping"), "{listed}");
        assert_eq!(hook().await, 404, "a disabled recipe took its webhook");
        let (code, _, stderr) = cli(&server, &["recipe", "enable", "Ping"]);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(hook().await, 202);

        let (code, deleted, _) = cli(&server, &["recipe", "delete", "Ping"]);
        assert_eq!((code, deleted.trim()), (0, "deleted Ping"));
        let (_, listed, _) = cli(&server, &["recipe", "list"]);
        assert!(listed.trim().is_empty(), "{listed}");
        let (code, _, stderr) = cli(&server, &["recipe", "show", "Ping"]);
        assert_ne!(code, 0);
        assert!(stderr.contains("Ping"), "{stderr}");

        // The API takes a recipe as JSON as well as YAML.
        let as_json = json!({"name": "Ping", "trigger": {"webhook": {"path": "ping"}}, "steps": [{"id": "pong", "set": {"pong": true}}]});
        let (status, created) = server
            .api(Method::POST, "/api/v1/recipes", Some(as_json.to_string()))
            .await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(hook().await, 202);
    }
);

/// `weft db migrate` makes the schema before any server has started, on both backends.
#[tokio::test]
async fn db_migrate_makes_the_schema_before_the_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut stores = vec![vec!["--data".to_owned(), data.display().to_string()]];
    if let Some(url) = weft_store::testing::postgres_schema_url().await {
        stores.push(vec!["--database".to_owned(), url]);
    }
    for store_args in stores {
        let migrated = crate::support::weft()
            .args(["db", "migrate"])
            .args(&store_args)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&migrated.stdout);
        assert!(
            migrated.status.success(),
            "{}",
            String::from_utf8_lossy(&migrated.stderr)
        );
        assert!(said.contains("is up to date"), "{said}");
        // Opened without migrating: the tables are there.
        let store = match store_args[0].as_str() {
            "--data" => weft_store::Store::open_data_folder(&data).await.unwrap(),
            _ => weft_store::Store::connect(&store_args[1]).await.unwrap(),
        };
        assert_eq!(store.recipes().await.unwrap().len(), 0);
    }
}

/// With `WEFT_LOG_FORMAT=json` the log is one JSON object a line, and a database URL is
/// logged without its password.
#[tokio::test]
async fn logs_can_be_json_and_never_show_the_database_password() {
    let dir = tempfile::tempdir().unwrap();
    let mut stores = vec![vec![
        "--data".to_owned(),
        dir.path().join("data").display().to_string(),
    ]];
    if let Some(url) = weft_store::testing::postgres_schema_url().await {
        let (scheme_and_user, rest) = url.split_once('@').unwrap();
        stores.push(vec![
            "--database".to_owned(),
            format!("{scheme_and_user}:s3cret-pw@{rest}"),
        ]);
    }
    for mut store_args in stores {
        store_args.extend([
            "--master-key-file".to_owned(),
            dir.path().join("master.key").display().to_string(),
        ]);
        // Port 0: the system picks a free port, so no other test can take it first.
        let mut child = crate::support::weft()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(&store_args)
            .env("WEFT_LOG_FORMAT", "json")
            .env("WEFT_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
        let mut logged_so_far = String::new();
        let serving = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.wait();
                panic!("the server ended before it logged its start:\n{logged_so_far}");
            };
            assert!(
                !line.contains("s3cret-pw"),
                "the password was logged: {line}"
            );
            logged_so_far.push_str(&line);
            logged_so_far.push('\n');
            if line.contains("weft is serving") && line.starts_with('{') {
                break line;
            }
        };
        let _ = child.kill();
        let _ = child.wait();
        let logged: serde_json::Value = serde_json::from_str(&serving).unwrap();
        assert_eq!(logged["level"], "INFO", "{logged}");
        let address = logged["fields"]["address"].as_str().unwrap_or_default();
        let port = address.strip_prefix("127.0.0.1:").map(str::parse::<u16>);
        assert!(
            matches!(port, Some(Ok(port)) if port != 0),
            "the log names the address it listens on: {logged}"
        );
        let store = logged["fields"]["store"].as_str().unwrap();
        if store_args[0] == "--database" {
            assert!(store.contains(":****@"), "{logged}");
        }
    }
}

on_both_backends!(
    apply_makes_the_server_match_a_folder_and_the_cli_reads_jobs,
    |server: Server| async move {
        let folder = tempfile::tempdir().unwrap();
        let dir = folder.path().to_str().unwrap().to_owned();
        std::fs::write(folder.path().join("count.yaml"), COUNT).unwrap();
        std::fs::write(folder.path().join("greet.yaml"), GREET).unwrap();

        let (code, plan, _) = cli(&server, &["apply", &dir, "--dry-run"]);
        assert_eq!(code, 0);
        assert!(
            plan.contains("+ create    Count")
                && plan.contains("+ create    Greet")
                && plan.contains("dry run"),
            "{plan}"
        );
        let (_, listed, _) = cli(&server, &["recipe", "list"]);
        assert!(
            listed.trim().is_empty(),
            "a dry run changed the server: {listed}"
        );

        let (code, applied, stderr) = cli(&server, &["apply", &dir]);
        assert_eq!(code, 0, "{stderr}");
        assert!(applied.contains("created   Count"), "{applied}");

        std::fs::write(
            folder.path().join("count.yaml"),
            COUNT.replace("length'", "length + 0'"),
        )
        .unwrap();
        std::fs::remove_file(folder.path().join("greet.yaml")).unwrap();
        let (_, second, _) = cli(&server, &["apply", &dir]);
        assert!(
            second.contains("~ change    Count") && second.contains("keep      Greet"),
            "{second}"
        );
        let (_, pruned, _) = cli(&server, &["apply", &dir, "--prune"]);
        assert!(
            pruned.contains("= unchanged Count") && pruned.contains("removed   Greet"),
            "{pruned}"
        );
        let (_, listed, _) = cli(&server, &["recipe", "list"]);
        assert!(
            listed.contains("v2") && listed.contains("Count") && !listed.contains("Greet"),
            "{listed}"
        );

        // A rename that keeps the webhook path replaces the recipe in place under --prune.
        std::fs::write(
            folder.path().join("count.yaml"),
            COUNT.replace("name: Count", "name: Tally"),
        )
        .unwrap();
        let (_, before) = server.api(Method::GET, "/api/v1/recipes", None).await;
        let count_id = before["recipes"][0]["id"].clone();
        let (_, refused, _) = cli(&server, &["apply", &dir, "--dry-run"]);
        assert!(refused.contains("+ create    Tally"), "{refused}");
        let (code, renamed, stderr) = cli(&server, &["apply", &dir, "--prune"]);
        assert_eq!(code, 0, "{stderr}");
        assert!(renamed.contains("~ rename    Count -> Tally"), "{renamed}");
        let (_, after) = server.api(Method::GET, "/api/v1/recipes", None).await;
        let recipes = after["recipes"].as_array().unwrap();
        assert_eq!(recipes.len(), 1, "{after}");
        assert_eq!(recipes[0]["name"], "Tally");
        assert_eq!(recipes[0]["id"], count_id);
        assert_eq!(recipes[0]["version"], 3);

        std::fs::write(
            folder.path().join("broken.yaml"),
            "name: Broken\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    sett: {}\n",
        )
        .unwrap();
        let (code, _, problems) = cli(&server, &["apply", &dir]);
        assert_ne!(code, 0);
        assert!(
            problems.contains("broken.yaml:5:5: unknown key `sett`"),
            "{problems}"
        );
        std::fs::remove_file(folder.path().join("broken.yaml")).unwrap();

        let accepted: serde_json::Value = server
            .hook("/hooks/orders/new", json!({"items": [1]}))
            .await;
        let job_id = accepted["job_id"].as_str().unwrap();
        server.finished_job(job_id).await;
        let (_, jobs, _) = cli(&server, &["job", "list", "--recipe", "Tally"]);
        assert!(
            jobs.contains(job_id) && jobs.contains("succeeded"),
            "{jobs}"
        );
        let (_, shown, _) = cli(&server, &["job", "show", job_id]);
        let record: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(record["output"]["items"], 1);
        let (code, rerun, stderr) = cli(&server, &["job", "rerun", job_id]);
        assert_eq!(code, 0, "{stderr}");
        server.finished_job(rerun.trim()).await;
        let (code, _, refused) = cli(&server, &["job", "cancel", job_id]);
        assert_ne!(code, 0);
        assert!(
            refused.contains("the job has already ended (succeeded)"),
            "{refused}"
        );
    }
);

on_both_backends!(
    metrics_count_events_jobs_and_the_queue,
    |server: Server| async move {
        server.save_recipe(COUNT).await;
        let accepted: serde_json::Value = server
            .hook("/hooks/orders/new", json!({"items": [1, 2]}))
            .await;
        server
            .finished_job(accepted["job_id"].as_str().unwrap())
            .await;
        let anonymous = Server::client()
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 401);
        let response = Server::client()
            .get(server.url("/metrics"))
            .bearer_auth(&server.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        assert!(
            text.contains(r#"weft_events_accepted_total{trigger="webhook"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"weft_jobs_finished_total{recipe="Count",status="succeeded"} 1"#),
            "{text}"
        );
        assert!(text.contains("weft_step_duration_seconds_bucket"), "{text}");
        assert!(text.contains("weft_queue_depth 0"), "{text}");
        assert!(text.contains("weft_queue_oldest_age_seconds"), "{text}");

        // Jobs that have not ended are counted by status at each scrape.
        let asleep = "name: Asleep\ntrigger:\n  webhook: { path: asleep }\nsteps:\n  - id: pause\n    wait: 1h\n";
        server.save_recipe(asleep).await;
        let accepted = server.hook("/hooks/asleep", json!({})).await;
        let id = accepted["job_id"].as_str().unwrap().to_owned();
        for _ in 0..100 {
            let (_, job) = server
                .api(Method::GET, &format!("/api/v1/jobs/{id}"), None)
                .await;
            if job["status"] == "waiting" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let text = Server::client()
            .get(server.url("/metrics"))
            .bearer_auth(&server.token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            text.contains(r#"weft_jobs_unfinished{status="waiting"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"weft_jobs_unfinished{status="queued"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"weft_jobs_unfinished{status="running"} 0"#),
            "{text}"
        );
    }
);

/// Polls `/readyz` until it answers `status`, for up to `within`; returns whether it did.
async fn readiness_becomes(server: &Server, status: u16, within: std::time::Duration) -> bool {
    let began = std::time::Instant::now();
    while began.elapsed() < within {
        let answer = Server::client().get(server.url("/readyz")).send().await;
        if answer.is_ok_and(|answer| answer.status() == status) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    false
}

/// PostgreSQL out of reach: `/readyz` says so within seconds, and once it is back, readiness
/// and webhooks come back without a restart.
#[tokio::test]
async fn readiness_follows_the_store() {
    let target = weft_store::testing::postgres_url();
    let authority = target
        .split_once('@')
        .and_then(|(_, rest)| rest.split('/').next());
    let proxy = crate::support::tcp_proxy::TcpProxy::start(authority.expect("host:port"));
    let Some(server) = Server::start_on_postgres_at(&proxy.address, &[]).await else {
        return;
    };
    server.save_recipe(COUNT).await;
    let second = std::time::Duration::from_secs(1);
    assert!(
        readiness_becomes(&server, 200, second).await,
        "not ready at first"
    );
    proxy.cut();
    assert!(
        readiness_becomes(&server, 503, 5 * second).await,
        "still ready without its store"
    );
    proxy.restore();
    assert!(
        readiness_becomes(&server, 200, 15 * second).await,
        "not ready again"
    );
    let accepted = server
        .hook("/hooks/orders/new", json!({"items": [1]}))
        .await;
    let job = server
        .finished_job(accepted["job_id"].as_str().unwrap())
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
}

/// A job that calls out, sleeps in the store, then finishes: at any moment of a stream of
/// them, some are calling, some are asleep with their call noted, some are done.
const CALL_WAIT_FINISH: &str = "name: Call, wait, finish\ntrigger:\n  webhook: { path: orders/new }\nsteps:\n  - id: call\n    action: http.request\n    input: { method: POST, url: \"{{ trigger.body.counter }}\" }\n  - id: pause\n    wait: 300ms\n  - id: finish\n    set: { done: true }\noutput: { call: \"{{ steps.call.output.body.call }}\" }\n";

/// Jobs the crash test's server runs at once: no more can be cut off mid-call.
const SLOTS: usize = 32;

on_both_backends!(
    every_accepted_webhook_survives_a_crash_and_no_finished_step_runs_again,
    &["--workers", "32"],
    |mut server: Server| async move {
        use futures::StreamExt;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};

        let remote = crate::support::http_server::TestServer::start();
        server.save_recipe(CALL_WAIT_FINISH).await;
        let url = server.url("/hooks/orders/new");
        let accepted = Arc::new(AtomicUsize::new(0));
        let client = Server::client();
        let counter = Arc::clone(&accepted);
        let base = remote.base.clone();
        let sending = tokio::spawn(async move {
            futures::stream::iter(0..1000)
                .map(|n| {
                    let (client, url, counter) =
                        (client.clone(), url.clone(), Arc::clone(&counter));
                    let event = json!({"counter": format!("{base}/flaky/job-{n}/0")});
                    async move {
                        let response = client.post(&url).json(&event).send().await.ok()?;
                        if response.status() != 202 {
                            return None;
                        }
                        let body: serde_json::Value = response.json().await.ok()?;
                        counter.fetch_add(1, Ordering::Relaxed);
                        Some((n, body["job_id"].as_str()?.to_owned()))
                    }
                })
                .buffer_unordered(16)
                .collect::<Vec<_>>()
                .await
        });
        while accepted.load(Ordering::Relaxed) < 250 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let crashed_at = chrono::Utc::now();
        server.crash_and_restart();
        let jobs: Vec<(i32, String)> = sending.await.unwrap().into_iter().flatten().collect();
        assert!(
            jobs.len() >= 250,
            "only {} requests were accepted",
            jobs.len()
        );

        let time = |step: &serde_json::Value, field: &str| {
            step[field]
                .as_str()
                .unwrap()
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap()
        };
        let (mut across_the_crash, mut called_again) = (0, 0);
        for (n, id) in &jobs {
            let job = server.finished_job(id).await;
            assert_eq!(job["status"], "succeeded", "{job}");
            let steps = job["steps"].as_array().unwrap();
            let ids: Vec<&str> = steps
                .iter()
                .map(|step| step["id"].as_str().unwrap())
                .collect();
            assert_eq!(ids, ["call", "pause", "finish"], "{job}");
            let made = reqwest::get(format!("{}/calls/job-{n}", remote.base))
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap();
            let calls = made["calls"].as_u64().unwrap();
            // Every delivery of the step carries the same key, so that the remote end can
            // apply a call repeated after the crash once.
            for key in made["idempotency_keys"].as_array().unwrap() {
                assert_eq!(key.as_str(), Some(format!("{id}:call").as_str()), "{made}");
            }
            // The record keeps the call that counts, the last one.
            assert_eq!(job["output"]["call"], calls, "{job}");
            let call_ended = time(&steps[0], "finished_at");
            if call_ended < crashed_at {
                // Its call was noted before the crash: it must not run again.
                assert_eq!(calls, 1, "a finished step ran again after the crash: {job}");
                across_the_crash += usize::from(time(&steps[2], "started_at") > crashed_at);
            } else {
                // A call cut off before it was noted is made again: at least once, as
                // promised, and only by the jobs running their call at that moment.
                assert!(calls <= 2, "{job}");
                called_again += usize::from(calls == 2);
            }
        }
        assert!(
            across_the_crash > 0,
            "no job slept across the crash: the test tested nothing"
        );
        assert!(
            called_again <= SLOTS,
            "{called_again} calls were made twice"
        );
    }
);

on_both_backends!(
    a_failed_job_is_retried_by_its_recipes_policy_from_the_failed_step,
    |server: Server| async move {
        let remote = crate::support::http_server::TestServer::start();
        let recipe = "name: Retried\ntrigger:\n  webhook: { path: retried }\nretry: { attempts: 3, backoff: fixed, delay: 100ms }\nsteps:\n  - id: once\n    action: http.request\n    input: { url: \"{{ trigger.body.counter }}\" }\n  - id: flaky\n    action: http.request\n    input: { url: \"{{ trigger.body.flaky }}\" }\noutput: { once: \"{{ steps.once.output.body.call }}\", flaky: \"{{ steps.flaky.output.body.call }}\" }\n";
        server.save_recipe(recipe).await;
        let (once, flaky) = (weft_store::new_id(), weft_store::new_id());
        let accepted: serde_json::Value = server.hook("/hooks/retried", json!({"counter": format!("{}/flaky/{once}/0", remote.base), "flaky": format!("{}/flaky/{flaky}/2", remote.base)})).await;
        let job = server
            .finished_job(accepted["job_id"].as_str().unwrap())
            .await;
        assert_eq!(job["status"], "succeeded", "{job}");
        // The flaky step failed twice and succeeded on the job's third attempt; the step before
        // it ran once.
        assert_eq!(job["output"], json!({"once": 1, "flaky": 3}));
        // Its three deliveries carried one idempotency key: the remote end can tell them apart
        // from new calls.
        let made: serde_json::Value = reqwest::get(format!("{}/calls/{flaky}", remote.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let key = format!("{}:flaky", accepted["job_id"].as_str().unwrap());
        assert_eq!(made["idempotency_keys"], json!([key, key, key]), "{made}");
    }
);

on_both_backends!(
    a_recipes_concurrency_bounds_its_running_jobs,
    |server: Server| async move {
        let recipe = "name: One at a time\ntrigger:\n  webhook: { path: single }\nconcurrency: 1\nsteps:\n  - id: pause\n    wait: 300ms\n";
        server.save_recipe(recipe).await;
        let mut ids = Vec::new();
        for _ in 0..3 {
            let accepted: serde_json::Value = Server::client()
                .post(server.url("/hooks/single"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            ids.push(accepted["job_id"].as_str().unwrap().to_owned());
        }
        let mut spans = Vec::new();
        for id in &ids {
            let job = server.finished_job(id).await;
            let start: chrono::DateTime<chrono::Utc> = job["steps"][0]["started_at"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let end: chrono::DateTime<chrono::Utc> = job["steps"][0]["finished_at"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            spans.push((start, end));
        }
        spans.sort();
        for pair in spans.windows(2) {
            assert!(pair[1].0 >= pair[0].1, "two jobs ran at once: {spans:?}");
        }
    }
);

// With every worker busy, a sync webhook waits a moment for one, or goes to the queue when
// none frees in time; either way each caller gets its own job's answer.
on_both_backends!(
    sync_webhooks_are_answered_while_every_worker_is_busy,
    &["--workers", "1"],
    |server: Server| async move {
        // Two callers of a brief job: the second usually waits for the first's slot, but on a
        // slow machine the first may outlast the wait and the second go to the queue; which one
        // happens is a matter of latency, measured by the benchmarks. Four callers of a long
        // job: the slot never frees in time, so all but the first go to the queue.
        for (path, pause, callers, queued_at_least, queued_at_most) in
            [("brief", "10ms", 2, 0, 1), ("long", "300ms", 4, 1, 3)]
        {
            let recipe = format!(
                "name: Busy {path}\ntrigger:\n  webhook: {{ path: {path}, mode: sync }}\nsteps:\n  - id: pause\n    wait: {pause}\n  - id: answer\n    respond: {{ status: 200, body: {{ n: '{{{{ trigger.body.n }}}}' }} }}\n"
            );
            let (status, created) = server
                .api(Method::POST, "/api/v1/recipes", Some(recipe))
                .await;
            assert_eq!(status, 201, "{created}");
            let hook = format!("/hooks/{path}");
            let answers = (0..callers).map(|n| server.hook(&hook, json!({ "n": n })));
            let answers = futures::future::join_all(answers).await;
            for (n, answer) in answers.iter().enumerate() {
                assert_eq!(answer, &json!({ "n": n }), "{path}");
            }
            let queued = queued_jobs_of(&server, created["id"].as_str().unwrap()).await;
            assert!(
                (queued_at_least..=queued_at_most).contains(&queued),
                "{path}: {queued} of {callers} jobs went through the queue"
            );
        }
    }
);

/// How many of a recipe's jobs went through the queue: a job run at once starts when it is
/// created; a queued one starts when a worker claims it.
async fn queued_jobs_of(server: &Server, recipe_id: &str) -> usize {
    let (_, list) = server
        .api(
            Method::GET,
            &format!("/api/v1/jobs?recipe={recipe_id}"),
            None,
        )
        .await;
    let mut queued = 0;
    for summary in list["jobs"].as_array().unwrap() {
        let job = server.finished_job(summary["id"].as_str().unwrap()).await;
        if job["started_at"] != summary["created_at"] {
            queued += 1;
        }
    }
    queued
}

on_both_backends!(
    a_call_step_runs_another_saved_recipe,
    |server: Server| async move {
        let child = "name: Price quote\ntrigger:\n  manual:\n    input_schema: { type: object, required: [amount] }\nsteps:\n  - id: tax\n    transform: '.trigger.amount * 2'\noutput: { gross: '{{ steps.tax.output }}' }\n";
        let parent = "name: Quote parent\ntrigger: { manual: {} }\nsteps:\n  - id: quote\n    call: Price quote\n    input: { amount: '{{ trigger.amount }}' }\noutput: '{{ steps.quote.output }}'\n";
        server.save_recipe(child).await;
        let (_, created) = server
            .api(Method::POST, "/api/v1/recipes", Some(parent.to_owned()))
            .await;
        let id = created["id"].as_str().unwrap();
        let (status, accepted) = server
            .api(
                Method::POST,
                &format!("/api/v1/recipes/{id}/run"),
                Some(r#"{"amount": 21}"#.to_owned()),
            )
            .await;
        assert_eq!(status, 202, "{accepted}");
        let parent_id = accepted["job_id"].as_str().unwrap();
        let job = server.finished_job(parent_id).await;
        assert_eq!(job["output"], json!({"gross": 42}), "{job}");
        // The called recipe's job has a record of its own, pointing at the job that called it.
        let (_, listed) = server.api(Method::GET, "/api/v1/jobs", None).await;
        let child = listed["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|line| line["recipe"] == "Price quote")
            .cloned()
            .unwrap_or_else(|| panic!("no job of the called recipe: {listed}"));
        assert_eq!(child["called_by"], json!(parent_id), "{child}");
        assert_eq!(child["recipe_version"], 1);
        let record = server.finished_job(child["id"].as_str().unwrap()).await;
        assert_eq!(record["status"], "succeeded", "{record}");
        assert_eq!(record["trigger"], json!({"amount": 21}));
        assert_eq!(record["output"], json!({"gross": 42}));
        assert_eq!(record["steps"][0]["id"], "tax");
        assert_eq!(record["called_by"], json!(parent_id));
    }
);

on_both_backends!(
    a_running_jobs_event_is_shown_masked_and_bulk_reruns_need_a_filter,
    |server: Server| async move {
        let recipe = "name: Masked wait\ntrigger:\n  webhook: { path: masked-wait }\nmask: [trigger.body.card]\nsteps:\n  - id: pause\n    wait: 1h\n";
        server.save_recipe(recipe).await;
        let accepted: serde_json::Value = Server::client()
            .post(server.url("/hooks/masked-wait"))
            .header("authorization", "Bearer sekrit-caller-token")
            .json(&json!({"card": "4111111111111111"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let (_, job) = server
            .api(
                Method::GET,
                &format!("/api/v1/jobs/{}", accepted["job_id"].as_str().unwrap()),
                None,
            )
            .await;
        let shown = job.to_string();
        assert!(
            !shown.contains("4111111111111111") && !shown.contains("sekrit-caller-token"),
            "{shown}"
        );

        let (status, refused) = server
            .api(
                Method::POST,
                "/api/v1/jobs/rerun",
                Some(r#"{"stauts": "failed"}"#.to_owned()),
            )
            .await;
        assert_eq!(status, 400, "{refused}");
        let (status, refused) = server
            .api(Method::POST, "/api/v1/jobs/rerun", Some("{}".to_owned()))
            .await;
        assert_eq!(status, 400, "{refused}");
    }
);

on_both_backends!(
    a_failure_that_cannot_heal_is_not_retried,
    |server: Server| async move {
        let recipe = "name: Broken maths\ntrigger:\n  webhook: { path: maths }\nretry: { attempts: 3, backoff: fixed, delay: 100ms }\nsteps:\n  - id: divide\n    transform: 'error(\"failed on attempt \\(.job.attempt)\")'\n";
        server.save_recipe(recipe).await;
        let accepted = server.hook("/hooks/maths", json!({})).await;
        let job = server
            .finished_job(accepted["job_id"].as_str().unwrap())
            .await;
        assert_eq!(job["status"], "failed");
        assert_eq!(job["error"]["kind"], "expression");
        // An expression failure fails the same way every time: it ends on its first run.
        assert!(
            job["error"]["message"]
                .as_str()
                .unwrap()
                .contains("failed on attempt 1"),
            "{job}"
        );
    }
);

/// Polls a job until it has `status`, for up to five seconds; returns whether it did.
async fn job_reaches(server: &Server, id: &str, status: &str) -> bool {
    for _ in 0..100 {
        let (_, job) = server
            .api(Method::GET, &format!("/api/v1/jobs/{id}"), None)
            .await;
        if job["status"] == status {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

/// A time as the job list's `since` and `until` take it.
fn query_time(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The ids of the jobs of a list answer, in its order.
fn listed_ids(list: &serde_json::Value) -> Vec<String> {
    list["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("not a job list: {list}"))
        .iter()
        .map(|job| job["id"].as_str().unwrap().to_owned())
        .collect()
}

// A job sleeping in a durable `wait` when the server is killed wakes on the next start,
// runs on after its wait without redoing the step before it, and succeeds.
on_both_backends!(
    a_durable_wait_survives_a_crash,
    |mut server: Server| async move {
        let remote = crate::support::http_server::TestServer::start();
        server.save_recipe(WAITS).await;
        let key = weft_store::new_id();
        let accepted = server
            .hook(
                "/hooks/waits",
                json!({"counter": format!("{}/flaky/{key}/0", remote.base)}),
            )
            .await;
        let job_id = accepted["job_id"].as_str().unwrap().to_owned();
        assert!(
            job_reaches(&server, &job_id, "waiting").await,
            "the job never slept in the store"
        );
        server.crash_and_restart();
        let job = server.finished_job(&job_id).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["output"], json!({"first_call": 1, "done": true}));
        assert_eq!(
            counter_calls(&remote, &key).await,
            1,
            "the step before the wait ran again"
        );
        let time = |step: &serde_json::Value, field: &str| {
            step[field]
                .as_str()
                .unwrap()
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap()
        };
        let steps = job["steps"].as_array().unwrap();
        assert_eq!(steps[1]["id"], "pause", "{job}");
        assert_eq!(steps[2]["id"], "after", "{job}");
        assert!(
            time(&steps[2], "started_at") >= time(&steps[1], "finished_at"),
            "the step after the wait started before the wait was over: {job}"
        );
    }
);

// The job list pages newest first with `limit` and the `next` cursor (`before=`), and
// `since`/`until` select the jobs created in a time range.
on_both_backends!(
    job_history_pages_and_filters_by_time_over_http,
    |server: Server| async move {
        server.save_recipe(COUNT).await;
        // `marks[0]` falls between the first and second jobs, `marks[1]` between the third
        // and fourth.
        let (mut ids, mut marks) = (Vec::new(), Vec::new());
        for n in 0..5 {
            if n == 1 || n == 3 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                marks.push(chrono::Utc::now());
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            let accepted = server
                .hook("/hooks/orders/new", json!({"items": [n]}))
                .await;
            let id = accepted["job_id"].as_str().unwrap().to_owned();
            server.finished_job(&id).await;
            ids.push(id);
        }

        let mut seen: Vec<String> = Vec::new();
        let mut path = "/api/v1/jobs?limit=2".to_owned();
        loop {
            let (status, page) = server.api(Method::GET, &path, None).await;
            assert_eq!(status, 200, "{page}");
            let page_ids = listed_ids(&page);
            assert!(page_ids.len() <= 2, "{page}");
            seen.extend(page_ids);
            assert!(seen.len() <= 5, "the pages never end: {seen:?}");
            match page["next"].as_str() {
                Some(next) => path = format!("/api/v1/jobs?limit=2&before={next}"),
                None => break,
            }
        }
        let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
        assert_eq!(seen, newest_first);

        let range = |query: String| {
            let server = &server;
            async move {
                let (status, list) = server
                    .api(Method::GET, &format!("/api/v1/jobs?{query}"), None)
                    .await;
                assert_eq!(status, 200, "{list}");
                listed_ids(&list)
            }
        };
        let (first_mark, second_mark) = (query_time(marks[0]), query_time(marks[1]));
        assert_eq!(
            range(format!("since={first_mark}&until={second_mark}")).await,
            [ids[2].clone(), ids[1].clone()]
        );
        assert_eq!(
            range(format!("since={second_mark}")).await,
            [ids[4].clone(), ids[3].clone()]
        );
        assert_eq!(range(format!("until={first_mark}")).await, [ids[0].clone()]);
    }
);

/// One job at a time, each calling the URL of its event: a job calling `/slow` holds the only
/// slot for 3 s.
const HELD: &str = "name: Held\ntrigger:\n  webhook: { path: held }\nconcurrency: 1\nsteps:\n  - id: call\n    action: http.request\n    input: { url: \"{{ trigger.body.url }}\" }\n";

// A queued job can be cancelled: it ends failed with kind `stopped` and never runs a step.
on_both_backends!(a_queued_job_can_be_cancelled, |server: Server| async move {
    let remote = crate::support::http_server::TestServer::start();
    server.save_recipe(HELD).await;
    let first = server
        .hook(
            "/hooks/held",
            json!({"url": format!("{}/slow", remote.base)}),
        )
        .await;
    let first = first["job_id"].as_str().unwrap().to_owned();
    assert!(
        job_reaches(&server, &first, "running").await,
        "the first job never ran"
    );
    let key = weft_store::new_id();
    let second = server
        .hook(
            "/hooks/held",
            json!({"url": format!("{}/flaky/{key}/0", remote.base)}),
        )
        .await;
    let second = second["job_id"].as_str().unwrap().to_owned();
    let (_, waiting) = server
        .api(Method::GET, &format!("/api/v1/jobs/{second}"), None)
        .await;
    assert_eq!(waiting["status"], "queued", "{waiting}");

    let (status, answer) = server
        .api(Method::POST, &format!("/api/v1/jobs/{second}/cancel"), None)
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "failed", "{answer}");
    let cancelled = server.finished_job(&second).await;
    assert_eq!(cancelled["status"], "failed", "{cancelled}");
    assert_eq!(cancelled["error"]["kind"], "stopped", "{cancelled}");

    let job = server.finished_job(&first).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    // The slot is free now: the cancelled job still did not run.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (_, cancelled) = server
        .api(Method::GET, &format!("/api/v1/jobs/{second}"), None)
        .await;
    assert_eq!(cancelled["status"], "failed", "{cancelled}");
    assert_eq!(cancelled["steps"], json!([]), "{cancelled}");
    assert_eq!(
        counter_calls(&remote, &key).await,
        0,
        "the cancelled job ran"
    );
});

// The client commands take the server and the token as `--server` and `--token`, without
// the environment; a wrong token fails with the server's reason.
on_both_backends!(
    the_cli_takes_the_server_and_token_as_flags,
    |server: Server| async move {
        server.save_recipe(PING).await;
        let list = |token: &str| {
            crate::support::weft()
                .args([
                    "recipe",
                    "list",
                    "--server",
                    server.base.as_str(),
                    "--token",
                    token,
                ])
                .env_remove("WEFT_SERVER")
                .env_remove("WEFT_TOKEN")
                .output()
                .unwrap()
        };
        let listed = list(&server.token);
        let stdout = String::from_utf8_lossy(&listed.stdout);
        assert!(
            listed.status.success(),
            "{}",
            String::from_utf8_lossy(&listed.stderr)
        );
        assert!(stdout.contains("v1  enabled   Ping"), "{stdout}");

        let refused = list(&format!("weft_{}", "0".repeat(64)));
        assert!(!refused.status.success(), "a wrong token was taken");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains("valid API token") && stderr.contains("401"),
            "{stderr}"
        );
        assert!(refused.stdout.is_empty(), "{refused:?}");
    }
);

// Each saved version of a recipe keeps its own text, exactly as it was sent.
on_both_backends!(
    recipe_versions_keep_each_saved_text,
    |server: Server| async move {
        let created = server.save_recipe(COUNT).await;
        let id = created["id"].as_str().unwrap().to_owned();
        let changed = COUNT.replace("length'", "length * 1'");
        let (status, updated) = server
            .api(
                Method::PUT,
                &format!("/api/v1/recipes/{id}"),
                Some(changed.clone()),
            )
            .await;
        assert_eq!(status, 200, "{updated}");
        let (status, listed) = server
            .api(Method::GET, &format!("/api/v1/recipes/{id}/versions"), None)
            .await;
        assert_eq!(status, 200, "{listed}");
        let versions = listed["versions"].as_array().unwrap();
        assert_eq!(versions.len(), 2, "{listed}");
        assert_eq!(versions[0]["version"], 1, "{listed}");
        assert_eq!(versions[0]["source"], COUNT, "{listed}");
        assert_eq!(versions[1]["version"], 2, "{listed}");
        assert_eq!(versions[1]["source"], changed.as_str(), "{listed}");
    }
);

// A recipe with several mistakes is refused with every one of them, each at its line and
// column.
on_both_backends!(
    an_invalid_recipe_gets_every_problem_with_its_line_and_column,
    |server: Server| async move {
        let broken = "name: Three problems\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    transform: '.x | {'\n  - id: b\n    set: { v: '{{ steps.zzz.output }}' }\n    timeout: forever\n";
        let (status, refused) = server
            .api(Method::POST, "/api/v1/recipes", Some(broken.to_owned()))
            .await;
        assert_eq!(status, 422, "{refused}");
        assert_eq!(refused["error"]["code"], "invalid_recipe", "{refused}");
        let problems = refused["error"]["problems"].as_array().unwrap();
        assert_eq!(problems.len(), 3, "{refused}");
        for (line, column, words) in [
            (5, 22, "jq syntax error: `{` is never closed"),
            (7, 19, "no step with id `zzz`"),
            (8, 14, "invalid duration `forever`"),
        ] {
            assert!(
                problems.iter().any(|problem| problem["line"] == line
                    && problem["column"] == column
                    && problem["message"].as_str().unwrap().contains(words)),
                "no problem at {line}:{column} saying {words:?}: {refused}"
            );
        }
        let (_, listed) = server.api(Method::GET, "/api/v1/recipes", None).await;
        assert_eq!(listed["recipes"], json!([]), "an invalid recipe was saved");
    }
);

// A path under the API that no route serves answers 404 with the usual JSON error.
on_both_backends!(
    an_unknown_route_is_a_json_404,
    |server: Server| async move {
        let response = Server::client()
            .get(server.url("/api/v1/nothing-here"))
            .bearer_auth(&server.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(content_type.contains("application/json"), "{content_type}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"error": {"code": "not_found", "message": "no route here"}})
        );
    }
);

/// An API token is kept only as its hash: its text is nowhere in the SQLite data folder, and
/// it is still accepted.
#[tokio::test]
async fn tokens_are_stored_only_as_hashes() {
    use sha2::Digest;
    let server = Server::start_with(Backend::Sqlite, &[])
        .await
        .expect("SQLite is always there");
    let (status, _) = server.api(Method::GET, "/api/v1/recipes", None).await;
    assert_eq!(status, 200, "the token is refused");
    let stored = crate::support::files_under(&server.data_folder().expect("a data folder"));
    let holds = |text: &str| {
        stored.iter().any(|bytes| {
            bytes
                .windows(text.len())
                .any(|window| window == text.as_bytes())
        })
    };
    let hash = hex::encode(sha2::Sha256::digest(server.token.as_bytes()));
    assert!(
        holds(&hash),
        "the token's hash is not in the data folder: the test looks in the wrong place"
    );
    let secret = server.token.trim_start_matches("weft_");
    assert_eq!(secret.len(), 64, "not a token: {}", server.token);
    assert!(!holds(secret), "the token is stored in clear");
}

/// The body of `/metrics`.
async fn scrape(server: &Server) -> String {
    Server::client()
        .get(server.url("/metrics"))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of an unlabelled gauge in a `/metrics` body.
fn gauge(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no gauge {name} in:\n{text}"))
}

// `/metrics` shows the jobs waiting in the queue and how long the oldest has waited, and
// both go back to 0 once they have run.
on_both_backends!(
    metrics_show_queue_depth_and_age,
    |server: Server| async move {
        let remote = crate::support::http_server::TestServer::start();
        server.save_recipe(HELD).await;
        let holder = server
            .hook(
                "/hooks/held",
                json!({"url": format!("{}/slow", remote.base)}),
            )
            .await;
        let mut ids = vec![holder["job_id"].as_str().unwrap().to_owned()];
        assert!(
            job_reaches(&server, &ids[0], "running").await,
            "the first job never ran"
        );
        for _ in 0..3 {
            let accepted = server
                .hook(
                    "/hooks/held",
                    json!({"url": format!("{}/json", remote.base)}),
                )
                .await;
            ids.push(accepted["job_id"].as_str().unwrap().to_owned());
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let text = scrape(&server).await;
        assert_eq!(gauge(&text, "weft_queue_depth"), 3.0, "{text}");
        let age = gauge(&text, "weft_queue_oldest_age_seconds");
        assert!(age >= 0.2, "the oldest queued job is {age} s old:\n{text}");

        for id in &ids {
            let job = server.finished_job(id).await;
            assert_eq!(job["status"], "succeeded", "{job}");
        }
        let text = scrape(&server).await;
        assert_eq!(gauge(&text, "weft_queue_depth"), 0.0, "{text}");
        assert_eq!(gauge(&text, "weft_queue_oldest_age_seconds"), 0.0, "{text}");
    }
);

// SIGINT (Ctrl-C) stops the server as SIGTERM does: the running job finishes and is
// recorded, and the server exits cleanly.
on_both_backends!(
    sigint_stops_the_server_like_sigterm,
    &["--shutdown-grace", "10s"],
    |mut server: Server| async move {
        let remote = crate::support::http_server::TestServer::start();
        let (job_id, key) = start_slow_job(&server, &remote).await;
        server.interrupt();
        assert!(server.wait().success(), "the server did not stop cleanly");
        let stopped_at = chrono::Utc::now();
        server.start_again();
        let (_, job) = server
            .api(Method::GET, &format!("/api/v1/jobs/{job_id}"), None)
            .await;
        assert_eq!(job["status"], "succeeded", "{job}");
        let finished: chrono::DateTime<chrono::Utc> =
            job["finished_at"].as_str().unwrap().parse().unwrap();
        assert!(
            finished < stopped_at,
            "the job was finished after the restart: {job}"
        );
        assert_eq!(counter_calls(&remote, &key).await, 1);
    }
);
