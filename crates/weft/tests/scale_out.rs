//! Several `weft serve` processes on one PostgreSQL, as one platform: processes in roles,
//! sync webhooks answered by the process that took them, jobs spread over the workers and
//! never run by two at once, a killed worker's jobs finished elsewhere, the scheduler's lead
//! moving when its holder dies, a PostgreSQL restart ridden out, and a clear refusal to start
//! without PostgreSQL.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::own_postgres::OwnPostgres;
use crate::support::server::{Backend, Server};

/// A remote end that notes every call of `/run/{key}`: how many came, how many were in
/// flight at once, and the idempotency key each carried. `?ms=N` makes a call take N ms.
#[derive(Clone, Default)]
struct Remote {
    seen: Arc<Mutex<HashMap<String, Seen>>>,
}

#[derive(Default, Clone, Debug)]
struct Seen {
    calls: usize,
    in_flight: usize,
    most_in_flight: usize,
    idempotency_keys: Vec<String>,
    /// When the first call began and the last one ended.
    began: Option<chrono::DateTime<chrono::Utc>>,
    ended: Option<chrono::DateTime<chrono::Utc>>,
}

impl Remote {
    fn start() -> (String, Remote) {
        let remote = Remote::default();
        let routes = axum::Router::new()
            .route("/run/{key}", axum::routing::post(run))
            .with_state(remote.clone());
        (crate::support::serve_routes(routes), remote)
    }

    fn seen(&self) -> HashMap<String, Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The keys called at least once whose name ends with `suffix`.
    fn count_ending(&self, suffix: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .keys()
            .filter(|key| key.ends_with(suffix))
            .count()
    }
}

async fn run(
    State(remote): State<Remote>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> axum::Json<Value> {
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    {
        let mut seen = remote.seen.lock().unwrap();
        let entry = seen.entry(key.clone()).or_default();
        entry.calls += 1;
        entry.in_flight += 1;
        entry.most_in_flight = entry.most_in_flight.max(entry.in_flight);
        entry.idempotency_keys.push(idempotency_key);
        entry.began.get_or_insert_with(chrono::Utc::now);
    }
    let ms = query.get("ms").and_then(|ms| ms.parse().ok()).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    let mut seen = remote.seen.lock().unwrap();
    let entry = seen.get_mut(&key).unwrap();
    entry.in_flight -= 1;
    entry.ended = Some(chrono::Utc::now());
    drop(seen);
    axum::Json(json!({ "key": key }))
}

/// One call to the remote end, `trigger.body.ms` long, under the event's own key.
const WORK: &str = "name: Work\ntrigger:\n  webhook: { path: work }\nsteps:\n  - id: call\n    action: http.request\n    input: { method: POST, url: \"{{ trigger.body.remote }}/run/{{ trigger.body.key }}?ms={{ trigger.body.ms }}\" }\n";

/// Three calls: a quick one, a slow one (1.5 s), a quick one, each under a key of its own.
const THREE_CALLS: &str = "name: Three calls\ntrigger:\n  webhook: { path: three }\nsteps:\n  - id: first\n    action: http.request\n    input: { method: POST, url: \"{{ trigger.body.remote }}/run/{{ trigger.body.key }}-first\" }\n  - id: slow\n    action: http.request\n    input: { method: POST, url: \"{{ trigger.body.remote }}/run/{{ trigger.body.key }}-slow?ms=1500\" }\n  - id: last\n    action: http.request\n    input: { method: POST, url: \"{{ trigger.body.remote }}/run/{{ trigger.body.key }}-last\" }\n";

/// A sync webhook whose `respond` step answers before the job's last step.
const ECHO: &str = "name: Echo\ntrigger:\n  webhook: { path: echo, mode: sync }\nsteps:\n  - id: reply\n    respond: { status: 201, body: { got: \"{{ trigger.body.n }}\" } }\n  - id: after\n    set: { done: true }\n";

/// A sync webhook without `respond`: the caller gets its output, or its failure.
const DOUBLE: &str = "name: Double\ntrigger:\n  webhook: { path: double, mode: sync }\nsteps:\n  - id: double\n    transform: '.trigger.body.n * 2'\noutput: { doubled: \"{{ steps.double.output }}\" }\n";

/// A sync webhook whose output is a string.
const GREET: &str = "name: Greet\ntrigger:\n  webhook: { path: greet, mode: sync }\nsteps:\n  - id: note\n    set: { seen: true }\noutput: \"hello {{ trigger.body.name }}\"\n";

/// How many jobs of `recipe` this process finished, by its metrics.
async fn finished_here(server: &Server, recipe: &str) -> u64 {
    let text = server.metrics().await;
    let prefix = format!("weft_jobs_finished_total{{recipe=\"{recipe}\"");
    text.lines()
        .filter(|line| line.starts_with(&prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Waits until the store holds no unfinished job, or panics after `within`.
async fn until_queue_is_empty(server: &Server, within: Duration) {
    let store = weft_store::Store::connect(server.database_url().expect("PostgreSQL"))
        .await
        .expect("the test reaches the store");
    let began = Instant::now();
    loop {
        let unfinished = store.unfinished_jobs().await.expect("the store answers");
        if unfinished.queued + unfinished.running + unfinished.waiting == 0 {
            return;
        }
        assert!(
            began.elapsed() < within,
            "jobs still unfinished after {within:?}: {unfinished:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn failed_jobs(server: &Server) -> Vec<Value> {
    let (status, listed) = server
        .api(Method::GET, "/api/v1/jobs?status=failed&limit=10", None)
        .await;
    assert_eq!(status, 200, "{listed}");
    listed["jobs"].as_array().cloned().unwrap_or_default()
}

/// Posts `count` events to a webhook of `server`, `at_once` at a time; every one must be
/// accepted.
async fn post_events(server: &Server, path: &str, events: Vec<Value>, at_once: usize) {
    let client = Server::client();
    let url = server.url(path);
    let refused: Vec<u16> = futures::stream::iter(events)
        .map(|event| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let answer = client.post(url).json(&event).send().await;
                answer.map_or(0, |answer| answer.status().as_u16())
            }
        })
        .buffer_unordered(at_once)
        .filter(|status| std::future::ready(*status != 202))
        .collect()
        .await;
    assert!(refused.is_empty(), "events not accepted: {refused:?}");
}

/// A web process and two workers: the web process runs no job and answers sync webhooks
/// that the workers run, with their `respond` step, output or failure; the jobs of a burst
/// are spread over both workers; a worker serves only health, readiness and metrics.
#[tokio::test]
async fn processes_in_roles_share_the_work_and_sync_webhooks_are_answered_by_the_web_process() {
    let Some(web) = Server::start_with(Backend::Postgres, &["--role", "web"]).await else {
        return;
    };
    // Eight slots each: a burst of 40 jobs cannot all go to one worker.
    let workers = [
        web.another_process_as("worker", &["--workers", "8"]),
        web.another_process_as("worker", &["--workers", "8"]),
    ];
    let (remote, calls) = Remote::start();
    for recipe in [WORK, ECHO, DOUBLE, GREET] {
        web.save_recipe(recipe).await;
    }

    let answer = Server::client()
        .post(web.url("/hooks/echo"))
        .json(&json!({"n": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    assert_eq!(answer.json::<Value>().await.unwrap(), json!({"got": 7}));
    let doubled = Server::client()
        .post(web.url("/hooks/double"))
        .json(&json!({"n": 21}))
        .send()
        .await
        .unwrap();
    assert_eq!(doubled.status(), 200);
    assert_eq!(
        doubled.json::<Value>().await.unwrap(),
        json!({"doubled": 42})
    );
    let refused = Server::client()
        .post(web.url("/hooks/double"))
        .json(&json!({"n": {"twenty": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 500);
    let failure: Value = refused.json().await.unwrap();
    assert_eq!(failure["error"]["code"], "job_failed", "{failure}");
    assert!(
        failure["error"]["message"]
            .as_str()
            .unwrap()
            .contains("double"),
        "{failure}"
    );

    let greeted = Server::client()
        .post(web.url("/hooks/greet"))
        .json(&json!({"name": "Ann"}))
        .send()
        .await
        .unwrap();
    assert_eq!(greeted.status(), 200);
    assert_eq!(
        greeted.headers()["content-type"],
        "application/json",
        "an output that is a string is sent as JSON"
    );
    assert_eq!(greeted.text().await.unwrap(), "\"hello Ann\"");

    let events = (0..40)
        .map(|n| json!({"remote": remote, "key": format!("burst-{n}"), "ms": 300}))
        .collect();
    post_events(&web, "/hooks/work", events, 40).await;
    until_queue_is_empty(&web, Duration::from_secs(60)).await;
    assert_eq!(calls.count_ending(""), 40);

    let ran: Vec<u64> =
        futures::future::join_all(workers.iter().map(|worker| finished_here(worker, "Work"))).await;
    assert_eq!(ran.iter().sum::<u64>(), 40, "{ran:?}");
    assert!(
        ran.iter().all(|count| *count > 0),
        "the burst was not spread over both workers: {ran:?}"
    );
    assert_eq!(
        finished_here(&web, "Work").await + finished_here(&web, "Echo").await,
        0,
        "the web process ran jobs"
    );

    let (status, body) = workers[0].api(Method::GET, "/api/v1/recipes", None).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/healthz"),
        "{body}"
    );
    let ready = Server::client()
        .get(workers[0].url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

/// 10,000 jobs taken by two workers from one queue: each runs exactly once, never in two
/// places at once, and none fails.
#[tokio::test]
async fn no_job_is_run_by_two_workers_at_once() {
    let Some(web) =
        Server::start_with(Backend::Postgres, &["--role", "web", "--job-lease", "10s"]).await
    else {
        return;
    };
    let workers = [
        web.another_process_as("worker", &[]),
        web.another_process_as("worker", &[]),
    ];
    let (remote, calls) = Remote::start();
    web.save_recipe(WORK).await;
    const JOBS: usize = 10_000;
    let events = (0..JOBS)
        .map(|n| json!({"remote": remote, "key": format!("job-{n}"), "ms": 5}))
        .collect();
    post_events(&web, "/hooks/work", events, 64).await;
    until_queue_is_empty(&web, Duration::from_secs(300)).await;

    let seen = calls.seen();
    assert_eq!(seen.len(), JOBS, "not every job called out");
    let twice: Vec<(&String, &Seen)> = seen
        .iter()
        .filter(|(_, seen)| seen.calls != 1 || seen.most_in_flight != 1)
        .collect();
    assert!(twice.is_empty(), "jobs run more than once: {twice:?}");
    assert!(failed_jobs(&web).await.is_empty());
    let ran: Vec<u64> =
        futures::future::join_all(workers.iter().map(|worker| finished_here(worker, "Work"))).await;
    assert_eq!(ran.iter().sum::<u64>(), JOBS as u64, "{ran:?}");
}

/// A worker killed (SIGKILL) in the middle of its jobs: the other worker takes them over once
/// their leases run out and finishes them; no step that had finished runs again, and the
/// step that was cut off runs again under the same idempotency key.
#[tokio::test]
async fn a_killed_workers_jobs_finish_elsewhere_and_no_finished_step_runs_again() {
    let Some(web) = Server::start_with(Backend::Postgres, &["--role", "web"]).await else {
        return;
    };
    // Eight slots each, and sixteen jobs: each worker runs eight of them when one dies.
    let mut doomed = web.another_process_as("worker", &["--workers", "8"]);
    let _survivor = web.another_process_as("worker", &["--workers", "8"]);
    let (remote, calls) = Remote::start();
    web.save_recipe(THREE_CALLS).await;
    const JOBS: usize = 16;
    let events = (0..JOBS)
        .map(|n| json!({"remote": remote, "key": format!("job-{n}")}))
        .collect();
    post_events(&web, "/hooks/three", events, JOBS).await;
    let began = Instant::now();
    while calls.count_ending("-first") < JOBS {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the jobs did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every job is in its slow step (1.5 s) when one worker dies.
    tokio::time::sleep(Duration::from_millis(400)).await;
    doomed.crash();
    until_queue_is_empty(&web, Duration::from_secs(60)).await;
    assert!(failed_jobs(&web).await.is_empty());

    let seen = calls.seen();
    let mut slow_calls = 0;
    for n in 0..JOBS {
        let key = format!("job-{n}");
        assert_eq!(seen[&format!("{key}-first")].calls, 1, "{key}: {seen:?}");
        assert_eq!(seen[&format!("{key}-last")].calls, 1, "{key}: {seen:?}");
        let slow = &seen[&format!("{key}-slow")];
        slow_calls += slow.calls;
        assert!(
            slow.idempotency_keys
                .iter()
                .all(|key| !key.is_empty() && *key == slow.idempotency_keys[0]),
            "{key}: the step cut off ran again under another key: {slow:?}"
        );
    }
    assert!(
        slow_calls > JOBS,
        "the killed worker had no job cut off: the test proved nothing"
    );
}

const LEADS: &str = "this process runs the schedules, polls and housekeeping now";

/// Two scheduler processes: one leads; killed (SIGKILL), the other takes the lead within
/// seconds, and every tick of an every-second schedule fires exactly once across the change.
#[tokio::test]
async fn the_schedulers_lead_moves_when_its_holder_dies_and_each_tick_fires_once() {
    let Some(web) = Server::start_with_env(
        Backend::Postgres,
        &["--role", "web"],
        &[("WEFT_LOG", "info")],
    )
    .await
    else {
        return;
    };
    let mut schedulers = [
        web.another_process_as("scheduler", &[]),
        web.another_process_as("scheduler", &[]),
    ];
    let began = Instant::now();
    let leader = loop {
        if let Some(leader) = schedulers.iter().position(|s| s.logs().contains(LEADS)) {
            break leader;
        }
        assert!(began.elapsed() < Duration::from_secs(10), "nobody leads");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let standby = 1 - leader;
    assert!(
        !schedulers[standby].logs().contains(LEADS),
        "both schedulers lead:\n{}",
        schedulers[standby].logs()
    );
    let created = web.save_recipe(crate::serve::EVERY_SECOND).await;
    let id = created["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let killed_at = chrono::Utc::now();
    assert!(
        !schedulers[standby].logs().contains(LEADS),
        "both schedulers led:\n{}",
        schedulers[standby].logs()
    );
    schedulers[leader].crash();
    let standby = &schedulers[standby];
    let waited = Instant::now();
    while !standby.logs().contains(LEADS) {
        assert!(
            waited.elapsed() < Duration::from_secs(5),
            "the standby did not take the lead:\n{}",
            standby.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let (status, _) = web
        .api(Method::POST, &format!("/api/v1/recipes/{id}/disable"), None)
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;

    let ticks = crate::serve::scheduled_ticks(&web, &id).await;
    assert!(
        ticks.iter().filter(|at| **at > killed_at).count() >= 2,
        "no tick fired after the leader died: {ticks:?}"
    );
    for pair in ticks.windows(2) {
        assert_eq!(
            (pair[1] - pair[0]).num_milliseconds(),
            1000,
            "a tick is missing or fired twice: {ticks:?}"
        );
    }
}

/// What a sender of events saw of one event.
struct Sent {
    key: String,
    sent: Instant,
    status: u16,
}

/// Sends events to a webhook one after another until `until`, noting what became of each.
async fn send_events_until(
    url: String,
    remote: String,
    sender: usize,
    until: Instant,
) -> Vec<Sent> {
    let client = Server::client();
    let mut sent = Vec::new();
    let mut n = 0;
    while Instant::now() < until {
        let key = format!("sender-{sender}-event-{n}");
        n += 1;
        let event = json!({"remote": remote, "key": key, "ms": 200});
        let at = Instant::now();
        let answer = client
            .post(&url)
            .json(&event)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("the server answers, with or without its store");
        let status = answer.status().as_u16();
        if status != 202 {
            let body: Value = answer.json().await.expect("a JSON refusal");
            assert!(body["error"]["message"].is_string(), "{status}: {body}");
        }
        sent.push(Sent {
            key,
            sent: at,
            status,
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sent
}

/// PostgreSQL stopped and started again under streams of webhooks: events sent while it is
/// down wait for it (or, past the pool's wait, are refused with a 503 their senders send
/// again), every accepted event is run to its end, including the jobs that were running,
/// and the server never needed a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_restart_loses_no_accepted_event() {
    let Some(postgres) = OwnPostgres::start() else {
        return;
    };
    let Some(server) = Server::start_on_database(&postgres.url(), &["--job-lease", "5s"]).await
    else {
        return;
    };
    let (remote, calls) = Remote::start();
    server.save_recipe(WORK).await;

    let until = Instant::now() + Duration::from_secs(6);
    let senders: Vec<_> = (0..4)
        .map(|sender| {
            tokio::spawn(send_events_until(
                server.url("/hooks/work"),
                remote.clone(),
                sender,
                until,
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stopped = Instant::now();
    let stopped_at = chrono::Utc::now();
    tokio::task::block_in_place(|| postgres.stop());
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let restarted = Instant::now();
    tokio::task::block_in_place(|| postgres.start_again());
    let mut sent = Vec::new();
    for sender in senders {
        sent.extend(sender.await.expect("a sender ends"));
    }
    assert!(
        sent.iter()
            .any(|event| event.sent > stopped && event.sent < restarted),
        "no event was sent while PostgreSQL was down"
    );
    let refused: Vec<u16> = sent
        .iter()
        .map(|event| event.status)
        .filter(|status| *status != 202 && *status != 503)
        .collect();
    assert!(
        refused.is_empty(),
        "answers other than 202 and 503: {refused:?}"
    );

    let accepted: Vec<&String> = sent
        .iter()
        .filter(|event| event.status == 202)
        .map(|event| &event.key)
        .collect();
    let began = Instant::now();
    loop {
        let seen = calls.seen();
        let missing: Vec<&&String> = accepted
            .iter()
            .filter(|key| !seen.contains_key(key.as_str()))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "accepted events never ran: {missing:?}\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    until_queue_is_empty(&server, Duration::from_secs(60)).await;
    assert!(failed_jobs(&server).await.is_empty());
    let seen = calls.seen();
    let twice: Vec<&String> = accepted
        .iter()
        .copied()
        .filter(|key| seen[key.as_str()].calls != 1)
        .collect();
    assert!(
        twice.is_empty(),
        "jobs ran again after the restart: {twice:?}"
    );
    // Jobs were running when the database went: their records were written after it.
    let running_then = accepted
        .iter()
        .filter(|key| {
            let call = &seen[key.as_str()];
            call.began.is_some_and(|began| began < stopped_at)
                && call.ended.is_some_and(|ended| ended > stopped_at)
        })
        .count();
    assert!(
        running_then > 0,
        "no job was running when PostgreSQL stopped: the restart proved nothing"
    );
}

/// A poll reset through a web process is polled at once by the scheduler process that leads,
/// though its next poll is an hour away.
#[tokio::test]
async fn a_poll_reset_in_a_web_process_is_polled_at_once_by_the_leader() {
    let Some(web) = Server::start_with(Backend::Postgres, &["--role", "web"]).await else {
        return;
    };
    let _scheduler = web.another_process_as("scheduler", &[]);
    let api = crate::support::http_server::TestServer::start();
    web.save_connection(
        json!({ "name": "api", "connector": "http", "fields": { "base_url": api.base } }),
    )
    .await;
    let recipe = "name: Feed\ntrigger:\n  poll:\n    every: 1h\n    action: http.request\n    connection: api\n    input: { url: /track/feed }\n    items: '[]'\n    key: .id\nsteps:\n  - id: n\n    transform: .trigger\n";
    let created = web.save_recipe(recipe).await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        crate::polls::arrivals_reach(&api, "feed", 1).await.len(),
        1,
        "the first poll"
    );
    let (status, body) = web
        .api(
            Method::POST,
            &format!("/api/v1/recipes/{id}/poll/reset"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        crate::polls::arrivals_reach(&api, "feed", 2).await.len(),
        2,
        "the leader did not poll again after the reset"
    );
}

/// PostgreSQL out of reach at start: `weft serve` says so and exits at once, instead of
/// serving without a store or waiting silently.
#[test]
fn serve_fails_fast_and_clearly_when_postgresql_is_unreachable() {
    let unused_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap();
    let began = Instant::now();
    let output = crate::support::weft()
        .args(["serve", "--listen", "127.0.0.1:0", "--database"])
        .arg(format!(
            "postgres://weft:secret@127.0.0.1:{unused_port}/weft"
        ))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        began.elapsed() < weft_store::CONNECT_WAIT,
        "it took {:?}",
        began.elapsed()
    );
    assert!(said.contains("PostgreSQL refused the connection"), "{said}");
    assert!(said.contains("is it running"), "{said}");
    assert!(!said.contains("secret"), "the password is shown: {said}");
}

/// A process in a role needs PostgreSQL: on SQLite it refuses to start and says why.
#[test]
fn roles_need_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let output = crate::support::weft()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--role",
            "worker",
            "--data",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(said.contains("--role worker needs PostgreSQL"), "{said}");
}
