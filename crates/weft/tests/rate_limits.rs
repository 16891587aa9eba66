//! A connection's budget of calls, shared by every call of every job of a process, and a
//! remote end's `Retry-After`, honoured before a call is made again.

use serde_json::{Value, json};

use crate::support::http_server::TestServer;
use crate::support::server::{Backend, Server};
use crate::support::{Ran, run_with, write_recipe};

/// Runs a loop of `items` calls to `path` on the stand-in API, `concurrency` at a time,
/// through a connection with `limits`; returns the run and what the API saw.
fn calls_through(limits: &str, path: &str, items: usize, concurrency: usize) -> (Ran, Value) {
    let api = TestServer::start();
    let (folder, recipe) = write_recipe(&format!(
        "name: Many calls\ntrigger: {{ manual: {{}} }}\nsteps:\n  - id: each\n    for_each: '{{{{ range({items}) | list }}}}'\n    concurrency: {concurrency}\n    steps:\n      - id: call\n        action: http.request\n        connection: api\n        input: {{ url: {path} }}\n"
    ));
    let connections = folder.path().join("connections.yaml");
    std::fs::write(
        &connections,
        format!(
            "api:\n  connector: http\n  base_url: {}\n{limits}",
            api.base
        ),
    )
    .unwrap();
    let ran = run_with(
        &recipe,
        &json!({}),
        &["--connections", connections.to_str().unwrap()],
    );
    let key = path.rsplit('/').next().unwrap();
    let url = format!("{}/tracked/{key}", api.base);
    let seen: Value = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() });
    (ran, seen)
}

/// No second holds more than `requests` calls: the calls beyond the budget wait their turn,
/// and none fails.
#[test]
fn a_request_budget_spaces_the_calls() {
    let (ran, seen) = calls_through(
        "  limits: { requests: 4, per: 1s }\n",
        "/track/budget",
        12,
        12,
    );
    assert_eq!(ran.code, 0, "{:#}", ran.record);
    let arrivals: Vec<i64> = seen["arrivals_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ms| ms.as_i64().unwrap())
        .collect();
    assert_eq!(arrivals.len(), 12);
    for window in arrivals.windows(5) {
        // Five calls in a row span a second at least (less a little for the network).
        assert!(window[4] - window[0] >= 950, "{arrivals:?}");
    }
}

#[test]
fn a_concurrency_budget_bounds_the_calls_in_flight() {
    let (ran, seen) = calls_through("  limits: { concurrent: 2 }\n", "/track/concurrent", 8, 8);
    assert_eq!(ran.code, 0, "{:#}", ran.record);
    assert_eq!(seen["arrivals_ms"].as_array().unwrap().len(), 8);
    assert_eq!(seen["most_in_flight"], 2, "{seen}");
    let (_, unbounded) = calls_through("", "/track/unbounded", 8, 8);
    assert!(
        unbounded["most_in_flight"].as_i64().unwrap() > 2,
        "the test cannot tell: {unbounded}"
    );
}

/// A 429 with `Retry-After: 1` makes the call wait a second and go again; the step succeeds.
#[test]
fn retry_after_is_waited_out_and_the_call_made_again() {
    let (ran, seen) = calls_through("", "/busy/once", 1, 1);
    assert_eq!(ran.code, 0, "{:#}", ran.record);
    assert_eq!(ran.steps("call")[0]["output"]["status"], 200);
    let arrivals = seen["arrivals_ms"].as_array().unwrap();
    assert_eq!(arrivals.len(), 2, "{seen}");
    let waited = arrivals[1].as_i64().unwrap() - arrivals[0].as_i64().unwrap();
    assert!(waited >= 950, "the call went again after {waited} ms");
}

#[test]
fn bad_limits_are_refused_with_a_reason() {
    let (ran, _) = calls_through("  limits: { requests: 0 }\n", "/track/none", 1, 1);
    assert_ne!(ran.code, 0);
    assert!(ran.stderr.contains("limits.requests"), "{}", ran.stderr);
}

/// A poll's call goes through its connection's budget like a step's: the remote end's 429
/// with `Retry-After: 1` is waited out and the call made again within the same poll, so the
/// item makes its job now rather than at the next interval an hour later.
#[tokio::test]
async fn a_polls_call_waits_out_retry_after_too() {
    let api = TestServer::start();
    let server = Server::start_with(Backend::Sqlite, &[]).await.unwrap();
    server
        .save_connection(
            json!({ "name": "api", "connector": "http", "fields": { "base_url": api.base } }),
        )
        .await;
    let recipe = "name: Busy feed\ntrigger:\n  poll:\n    every: 1h\n    action: http.request\n    connection: api\n    input: { url: /busy/poll }\n    items: '[.body]'\n    key: '\"only\"'\nsteps:\n  - id: n\n    transform: .trigger.ok\n";
    let id = server.save_recipe(recipe).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let triggers = server.job_triggers(&id, 1, |_| true).await;
    assert_eq!(triggers, vec![json!({ "ok": true })], "{}", server.logs());
    let seen: Value = reqwest::get(format!("{}/tracked/poll", api.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let arrivals = seen["arrivals_ms"].as_array().unwrap();
    assert_eq!(arrivals.len(), 2, "{seen}");
    let waited = arrivals[1].as_i64().unwrap() - arrivals[0].as_i64().unwrap();
    assert!(waited >= 950, "the poll called again after {waited} ms");
}

/// Two processes on one store share a connection's budget: each keeps to its half, so that
/// their calls together keep to the whole.
#[tokio::test]
async fn processes_share_a_connections_budget() {
    let Some(first) = Server::start_with(Backend::Postgres, &[]).await else {
        return;
    };
    let second = first.another_process();
    let api = TestServer::start();
    first
        .save_connection(json!({
            "name": "api", "connector": "http", "fields": { "base_url": api.base },
            "limits": { "requests": 4, "per": "1s" }
        }))
        .await;
    let recipe = "name: Many calls\ntrigger: { manual: {} }\nsteps:\n  - id: each\n    for_each: '{{ range(10) | list }}'\n    concurrency: 10\n    steps:\n      - id: call\n        action: http.request\n        connection: api\n        input: { url: /track/shared }\n";
    let id = first.save_recipe(recipe).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Each process counts the live ones every second.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let mut jobs = Vec::new();
    for process in [&first, &second] {
        let (status, queued) = process
            .api(
                reqwest::Method::POST,
                &format!("/api/v1/recipes/{id}/run"),
                Some("{}".to_owned()),
            )
            .await;
        assert_eq!(status, 202, "{queued}");
        jobs.push(queued["job_id"].as_str().unwrap().to_owned());
    }
    for job in &jobs {
        let finished = first.finished_job(job).await;
        assert_eq!(finished["status"], "succeeded", "{finished:#}");
    }
    let seen: Value = reqwest::get(format!("{}/tracked/shared", api.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let arrivals: Vec<i64> = seen["arrivals_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ms| ms.as_i64().unwrap())
        .collect();
    assert_eq!(arrivals.len(), 20);
    for window in arrivals.windows(5) {
        // Five calls in a row span a second at least (less a little for the network).
        assert!(window[4] - window[0] >= 950, "{arrivals:?}");
    }
}
