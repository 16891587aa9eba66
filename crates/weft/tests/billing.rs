//! Plans, usage metering and billing records: tasks counted exactly once across concurrent
//! jobs, retries, reruns and crashes; jobs held over a plan's task limit and released;
//! structural limits refused; the billing provider's signed webhook, keeping no card data.

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use std::time::Duration;

use crate::support::http_server::TestServer;
use crate::support::server::{Backend, Server};

/// Per job: `fetch`, and `post` once for each of three items; the transform, the `if` and
/// its skipped branch are not tasks.
const METERED: &str = "name: Metered\ntrigger:\n  webhook: { path: metered }\nsteps:\n  - id: shape\n    transform: .trigger.body\n  - id: fetch\n    action: http.request\n    input: { url: \"{{ trigger.body.api }}/json\" }\n  - id: each\n    for_each: trigger.body.items\n    steps:\n      - id: post\n        action: http.request\n        input: { url: \"{{ trigger.body.api }}/json\" }\n  - id: never\n    if: 'false'\n    then:\n      - id: skipped\n        action: http.request\n        input: { url: \"{{ trigger.body.api }}/json\" }\n";
const TASKS_PER_METERED_JOB: i64 = 4;

/// One task a job.
const ONE_TASK: &str = "name: One task\ntrigger:\n  webhook: { path: one }\nsteps:\n  - id: call\n    action: http.request\n    input: { url: \"{{ trigger.body.api }}/json\" }\n";

const SECRET: &str = "whsec_test_5b1f0c9e";

/// A plans file in a folder that lives as long as the returned guard.
fn plans_file(yaml: &str) -> (tempfile::TempDir, String) {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("plans.yaml");
    std::fs::write(&path, yaml).unwrap();
    let path = path.display().to_string();
    (folder, path)
}

async fn usage(server: &Server) -> Value {
    let (status, usage) = server.api(Method::GET, "/api/v1/usage", None).await;
    assert_eq!(status, 200, "{usage}");
    usage
}

/// Waits (up to 15 s) until the usage answer satisfies `ready`, and returns it.
async fn usage_when(server: &Server, ready: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..150 {
        let now = usage(server).await;
        if ready(&now) {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("usage never got there: {}", usage(server).await);
}

async fn job(server: &Server, id: &str) -> Value {
    let (status, job) = server
        .api(Method::GET, &format!("/api/v1/jobs/{id}"), None)
        .await;
    assert_eq!(status, 200, "{job}");
    job
}

/// Posts to a webhook and returns the answer's status and body.
async fn post_hook(server: &Server, path: &str, body: Value) -> (u16, Value) {
    let response = Server::client()
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

on_both_backends!(
    concurrent_jobs_are_charged_every_action_step_they_run_once,
    |server: Server| async move {
        let api = TestServer::start();
        server.save_recipe(METERED).await;
        let event = json!({ "api": api.base, "items": [1, 2, 3] });
        let sent = (0..30).map(|_| server.hook("/hooks/metered", event.clone()));
        let accepted = futures::future::join_all(sent).await;
        for answer in &accepted {
            let job = server
                .finished_job(answer["job_id"].as_str().unwrap())
                .await;
            assert_eq!(job["status"], "succeeded", "{job}");
            assert_eq!(job["tasks"], TASKS_PER_METERED_JOB, "{job}");
        }
        let usage = usage(&server).await;
        assert_eq!(
            usage["usage"]["tasks"],
            30 * TASKS_PER_METERED_JOB,
            "{usage}"
        );
        assert_eq!(usage["usage"]["jobs"], 30, "{usage}");
        assert_eq!(usage["usage"]["active_recipes"], 1, "{usage}");
        assert_eq!(usage["plan"]["name"], "unlimited", "{usage}");
        assert_eq!(usage["limits"]["tasks"]["limit"], Value::Null, "{usage}");
        assert!(
            usage["usage"]["history_bytes"].as_i64().unwrap() > 0,
            "{usage}"
        );
        let csv = Server::client()
            .get(server.url("/api/v1/usage/csv"))
            .bearer_auth(&server.token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut lines = csv.lines();
        assert_eq!(
            lines.next(),
            Some("period,tasks,jobs,history_bytes,active_recipes,connections,members")
        );
        let line = lines.next().unwrap();
        let period = usage["period"].as_str().unwrap();
        assert!(line.starts_with(&format!("{period},120,30,")), "{csv}");

        let printed = crate::support::weft()
            .args(["usage", "--server", &server.base, "--token", &server.token])
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&printed.stdout);
        assert!(printed.contains("plan unlimited"), "{printed}");
        assert!(printed.contains("120 (no limit)"), "{printed}");

        // What is counted ends in the month's counters: on PostgreSQL the leader folds the
        // entries the jobs appended, each once; on SQLite the jobs add to the counters directly.
        let folded = format!(
            "SELECT tasks || ',' || jobs FROM usage_months WHERE workspace_id = 'default' AND period = '{period}'"
        );
        let entries_folded = || async {
            for _ in 0..100 {
                if server.sql_text("SELECT COUNT(*) FROM usage_entries") == "0" {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        };
        assert!(entries_folded().await);
        assert_eq!(server.sql_text(&folded), "120,30");
        // An entry written by an older release is folded too, on either backend.
        server.sql(&format!(
            "INSERT INTO usage_entries (workspace_id, period, tasks, jobs) VALUES ('default', '{period}', 5, 1)"
        ));
        assert!(entries_folded().await);
        assert_eq!(server.sql_text(&folded), "125,31");
        assert_eq!(self::usage(&server).await["usage"]["tasks"], 125);
    }
);

/// Two workers on one PostgreSQL charge each task once between them.
#[tokio::test]
async fn workers_in_two_processes_charge_each_task_once() {
    let Some(web) = Server::start_with(Backend::Postgres, &["--role", "web"]).await else {
        return;
    };
    let _workers = [
        web.another_process_as("worker", &[]),
        web.another_process_as("worker", &[]),
    ];
    let api = TestServer::start();
    web.save_recipe(METERED).await;
    let event = json!({ "api": api.base, "items": [1, 2, 3] });
    let accepted =
        futures::future::join_all((0..60).map(|_| web.hook("/hooks/metered", event.clone()))).await;
    for answer in &accepted {
        let job = web.finished_job(answer["job_id"].as_str().unwrap()).await;
        assert_eq!(job["tasks"], TASKS_PER_METERED_JOB, "{job}");
    }
    let usage = usage(&web).await;
    assert_eq!(
        usage["usage"]["tasks"],
        60 * TASKS_PER_METERED_JOB,
        "{usage}"
    );
    assert_eq!(usage["usage"]["jobs"], 60, "{usage}");
}

on_both_backends!(
    a_retried_step_counts_once_and_a_rerun_counts_what_it_runs_again,
    |server: Server| async move {
        let remote = TestServer::start();
        let recipe = "name: Retried\ntrigger:\n  webhook: { path: retried }\nretry: { attempts: 3, backoff: fixed, delay: 100ms }\nsteps:\n  - id: once\n    action: http.request\n    input: { url: \"{{ trigger.body.counter }}\" }\n  - id: flaky\n    action: http.request\n    input: { url: \"{{ trigger.body.flaky }}\" }\n";
        server.save_recipe(recipe).await;
        let (once, flaky) = (weft_store::new_id(), weft_store::new_id());
        let accepted = server.hook("/hooks/retried", json!({"counter": format!("{}/flaky/{once}/0", remote.base), "flaky": format!("{}/flaky/{flaky}/2", remote.base)})).await;
        let first = accepted["job_id"].as_str().unwrap().to_owned();
        let done = server.finished_job(&first).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        // Three attempts of the job, the flaky step run three times: two tasks.
        assert_eq!(done["tasks"], 2, "{done}");
        assert_eq!(usage(&server).await["usage"]["tasks"], 2);

        // A rerun from the start runs both steps again, and is charged for them.
        let (status, again) = server
            .api(
                Method::POST,
                &format!("/api/v1/jobs/{first}/rerun"),
                Some(json!({ "from": "start" }).to_string()),
            )
            .await;
        assert_eq!(status, 202, "{again}");
        let rerun = server.finished_job(again["job_id"].as_str().unwrap()).await;
        assert_eq!(rerun["rerun_of"], first.as_str());
        assert_eq!(rerun["tasks"], 2, "{rerun}");

        // A rerun from `flaky` takes `once` over without running it: one task.
        let (status, again) = server
            .api(
                Method::POST,
                &format!("/api/v1/jobs/{first}/rerun"),
                Some(json!({ "from": "flaky" }).to_string()),
            )
            .await;
        assert_eq!(status, 202, "{again}");
        let partial = server.finished_job(again["job_id"].as_str().unwrap()).await;
        assert_eq!(partial["status"], "succeeded", "{partial}");
        assert_eq!(partial["tasks"], 1, "{partial}");
        let usage = usage(&server).await;
        assert_eq!(usage["usage"]["tasks"], 5, "{usage}");
        assert_eq!(usage["usage"]["jobs"], 3, "{usage}");
    }
);

on_both_backends!(
    a_job_cut_off_by_a_crash_is_charged_once_for_each_step,
    |server: Server| async move {
        let mut server = server;
        let remote = TestServer::start();
        server.save_recipe(crate::serve::SLOW_SECOND_STEP).await;
        let mut ids = Vec::new();
        for _ in 0..4 {
            let key = weft_store::new_id();
            let event = json!({"counter": format!("{}/flaky/{key}/0", remote.base), "slow": format!("{}/slow", remote.base)});
            ids.push(
                server.hook("/hooks/slow", event).await["job_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        // Each job's first step is done and its second (3 s) under way when the server dies;
        // after the restart each runs its second step again.
        tokio::time::sleep(Duration::from_millis(800)).await;
        server.crash_and_restart();
        for id in &ids {
            let job = server.finished_job(id).await;
            assert_eq!(job["status"], "succeeded", "{job}");
            assert_eq!(job["tasks"], 2, "{job}");
        }
        let usage = usage(&server).await;
        assert_eq!(usage["usage"]["tasks"], 8, "{usage}");
        assert_eq!(usage["usage"]["jobs"], 4, "{usage}");
    }
);

async fn quota_holds_jobs_and_releases_them(backend: Backend) {
    let (_plans, path) =
        plans_file("default: free\nplans:\n  free: { tasks: 3 }\n  team: { tasks: 1000 }\n");
    let Some(server) = Server::start_with(backend, &["--plans", &path]).await else {
        return;
    };
    let api = TestServer::start();
    let created = server.save_recipe(ONE_TASK).await;
    let recipe_id = created["id"].as_str().unwrap().to_owned();
    let event = json!({ "api": api.base });
    for _ in 0..3 {
        let accepted = server.hook("/hooks/one", event.clone()).await;
        server
            .finished_job(accepted["job_id"].as_str().unwrap())
            .await;
    }
    let full = usage_when(&server, |usage| usage["held"] == true).await;
    assert_eq!(full["plan"]["name"], "free");
    assert_eq!(
        full["limits"]["tasks"],
        json!({ "used": 3, "limit": 3, "percent": 100.0 })
    );
    let warning = &full["warnings"][0];
    assert_eq!(warning["measure"], "tasks", "{full}");
    assert_eq!(warning["level"], 100, "{full}");
    assert!(
        warning["message"].as_str().unwrap().contains("held"),
        "{full}"
    );
    // The banner's lighter answer says the same.
    let (status, banner) = server
        .api(Method::GET, "/api/v1/usage/warnings", None)
        .await;
    assert_eq!(status, 200, "{banner}");
    assert_eq!(banner["warnings"], full["warnings"], "{banner}");
    assert_eq!(
        (&banner["plan"], &banner["held"]),
        (&json!("free"), &json!(true))
    );

    // Over the limit: events are still accepted (202), and their jobs held, not run.
    let mut held = Vec::new();
    for _ in 0..2 {
        let (status, answer) = post_hook(&server, "/hooks/one", event.clone()).await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["held"], "quota", "{answer}");
        held.push(answer["job_id"].as_str().unwrap().to_owned());
    }
    let (status, manual) = server
        .api(
            Method::POST,
            &format!("/api/v1/recipes/{recipe_id}/run"),
            Some(json!({ "body": event }).to_string()),
        )
        .await;
    assert_eq!(status, 202, "{manual}");
    assert_eq!(manual["held"], "quota", "{manual}");
    held.push(manual["job_id"].as_str().unwrap().to_owned());
    tokio::time::sleep(Duration::from_secs(3)).await;
    for id in &held {
        let job = job(&server, id).await;
        assert_eq!(job["status"], "held", "{job}");
        assert_eq!(job["held"], "quota", "{job}");
    }
    let (_, listed) = server
        .api(Method::GET, "/api/v1/jobs?status=held", None)
        .await;
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 3, "{listed}");
    assert_eq!(usage(&server).await["held_jobs"], 3);

    // A larger plan mid-month: the held jobs run.
    let said = server.admin(&[
        "set-plan",
        "team",
        "--workspace",
        "default",
        "--plans",
        &path,
    ]);
    assert!(said.contains("team"), "{said}");
    for id in &held {
        assert_eq!(server.finished_job(id).await["status"], "succeeded");
    }
    let now = usage_when(&server, |usage| usage["held"] == false).await;
    assert_eq!(now["plan"]["name"], "team");
    assert_eq!(now["usage"]["tasks"], 6);
    assert_eq!(now["warnings"], json!([]));

    // Back to the small plan, still over it: held again; an operator releases what is held,
    // and new jobs are held still.
    server.admin(&[
        "set-plan",
        "--default",
        "--workspace",
        "default",
        "--plans",
        &path,
    ]);
    usage_when(&server, |usage| usage["held"] == true).await;
    let (_, answer) = post_hook(&server, "/hooks/one", event.clone()).await;
    let released = answer["job_id"].as_str().unwrap().to_owned();
    assert_eq!(job(&server, &released).await["status"], "held");
    let said = server.admin(&["release-held", "--workspace", "default"]);
    assert!(said.contains("released 1"), "{said}");
    assert_eq!(server.finished_job(&released).await["status"], "succeeded");
    let (_, answer) = post_hook(&server, "/hooks/one", event.clone()).await;
    assert_eq!(answer["held"], "quota", "{answer}");
    let last = answer["job_id"].as_str().unwrap().to_owned();

    // The month turns: its counts, folded or not, belong to a past month now.
    server.sql(
        "UPDATE usage_months SET period = '2000-01'; UPDATE usage_entries SET period = '2000-01'; UPDATE quota_holds SET period = '2000-01'",
    );
    assert_eq!(server.finished_job(&last).await["status"], "succeeded");
    let turned = usage_when(&server, |usage| usage["held"] == false).await;
    assert_eq!(turned["usage"]["tasks"], 1, "{turned}");
    assert_eq!(turned["months"][1]["period"], "2000-01", "{turned}");
}

#[tokio::test]
async fn quota_holds_jobs_and_releases_them_on_sqlite() {
    quota_holds_jobs_and_releases_them(Backend::Sqlite).await;
}

#[tokio::test]
async fn quota_holds_jobs_and_releases_them_on_postgres() {
    quota_holds_jobs_and_releases_them(Backend::Postgres).await;
}

/// An invitation accepted while the workspace has no room is refused without spending its
/// link: once a member leaves, the same link lets the invitee in.
#[tokio::test]
async fn an_invitation_refused_for_want_of_room_keeps_its_link() {
    let (_plans, path) = plans_file("plans:\n  pair: { members: 2 }\n");
    let server = Server::start_with(Backend::Sqlite, &["--plans", &path])
        .await
        .unwrap();
    let (status, invited) = server
        .api(
            Method::POST,
            "/api/v1/invitations",
            Some(json!({ "email": "kim@example.com", "role": "viewer" }).to_string()),
        )
        .await;
    assert_eq!(status, 201, "{invited}");
    let token = invited["link"]
        .as_str()
        .unwrap()
        .rsplit('=')
        .next()
        .unwrap()
        .to_owned();
    // A second member, made by an operator, fills the plan before Kim accepts.
    let bo = server.create_user_and_token("bo@example.com", "viewer");
    let accept = || {
        let body = json!({ "token": token, "name": "Kim", "password": "kim's own password" });
        server.api_as(
            "",
            Method::POST,
            "/api/v1/invitations/accept",
            Some(body.to_string()),
        )
    };
    let (status, refused) = accept().await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"]["code"], "plan_limit", "{refused}");

    let (_, listed) = server.api(Method::GET, "/api/v1/members", None).await;
    let bo_id = listed["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|member| member["email"] == "bo@example.com")
        .unwrap()["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, left) = server
        .api_as(
            &bo,
            Method::DELETE,
            &format!("/api/v1/members/{bo_id}"),
            None,
        )
        .await;
    assert!(status < 300, "{left}");
    let (status, joined) = accept().await;
    assert_eq!(status, 200, "{joined}");
    let (status, _) = accept().await;
    assert_eq!(status, 410, "a link still works only once");
}

/// A plan's structural limits refuse the change that would pass them, naming the limit; its
/// concurrency and history ceilings bound what recipes ask.
#[tokio::test]
async fn a_plans_structural_limits_and_ceilings_hold() {
    let (_plans, path) = plans_file(
        "plans:\n  small: { active_recipes: 1, connections: 1, members: 1, concurrency: 1, history_keep: 2s }\n",
    );
    let server = Server::start_with(
        Backend::Sqlite,
        &["--plans", &path, "--retention-every", "1s"],
    )
    .await
    .unwrap();
    let first = server
        .save_recipe("name: Paced\ntrigger:\n  webhook: { path: paced }\nsteps:\n  - id: pause\n    wait: 300ms\n")
        .await;
    let second = "name: Second\ntrigger: { manual: {} }\nsteps:\n  - id: s\n    set: { a: 1 }\n";
    let (status, refused) = server
        .api(Method::POST, "/api/v1/recipes", Some(second.to_owned()))
        .await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"]["code"], "plan_limit");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`active_recipes`") && message.contains("`small`"),
        "{message}"
    );

    // Three jobs of a recipe that sets no concurrency run one at a time under the plan.
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            server.hook("/hooks/paced", Value::Null).await["job_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut spans = Vec::new();
    for id in &ids {
        let job = server.finished_job(id).await;
        let at = |field: &str| {
            job[field]
                .as_str()
                .unwrap()
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap()
        };
        spans.push((at("started_at"), at("finished_at")));
    }
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "two jobs ran at once: {spans:?}");
    }
    // History past the plan's ceiling (2 s) is deleted, though the server keeps 30 days.
    let mut gone = false;
    for _ in 0..100 {
        let (status, _) = server
            .api(Method::GET, &format!("/api/v1/jobs/{}", ids[0]), None)
            .await;
        if status == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "a job outlived the plan's history ceiling");

    // Turning the first off makes room for the second; turning it on again is refused.
    let first_id = first["id"].as_str().unwrap();
    let (status, _) = server
        .api(
            Method::POST,
            &format!("/api/v1/recipes/{first_id}/disable"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    server.save_recipe(second).await;
    let (status, refused) = server
        .api(
            Method::POST,
            &format!("/api/v1/recipes/{first_id}/enable"),
            None,
        )
        .await;
    assert_eq!(status, 403, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allows 1 active recipe (limit `active_recipes`)"),
        "{refused}"
    );

    server.save_connection(json!({ "name": "one", "connector": "http", "fields": { "base_url": "http://127.0.0.1:9" } })).await;
    let (status, refused) = server
        .api(Method::POST, "/api/v1/connections", Some(json!({ "name": "two", "connector": "http", "fields": { "base_url": "http://127.0.0.1:9" } }).to_string()))
        .await;
    assert_eq!(status, 403, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`connections`"),
        "{refused}"
    );

    let (status, refused) = server
        .api(
            Method::POST,
            "/api/v1/invitations",
            Some(json!({ "email": "bob@example.com", "role": "viewer" }).to_string()),
        )
        .await;
    assert_eq!(status, 403, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`members`"),
        "{refused}"
    );

    // Without a billing secret the provider's endpoint is off.
    let response = Server::client()
        .post(server.url("/billing/stripe"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "billing_off");
}

/// Stripe's signature: `t=TIME,v1=HMAC(secret, "TIME.BODY")`.
fn signature(secret: &str, at: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{at}.{body}").as_bytes());
    format!("t={at},v1={}", hex::encode(mac.finalize().into_bytes()))
}

async fn send_event(server: &Server, event: &Value) -> (u16, Value) {
    let body = event.to_string();
    let signed = signature(SECRET, chrono::Utc::now().timestamp(), &body);
    send_signed(server, &body, Some(&signed)).await
}

async fn send_signed(server: &Server, body: &str, signed: Option<&str>) -> (u16, Value) {
    let mut request = Server::client()
        .post(server.url("/billing/stripe"))
        .body(body.to_owned());
    if let Some(signed) = signed {
        request = request.header("stripe-signature", signed);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn subscription_event(id: &str, kind: &str, created: i64, status: &str, price: &str) -> Value {
    json!({
        "id": id, "type": kind, "created": created, "object": "event",
        "data": { "object": {
            "id": "sub_1Weft", "object": "subscription", "customer": "cus_Weft42", "status": status,
            "cancel_at_period_end": false,
            "metadata": { "weft_workspace": "default" },
            "items": { "data": [{
                "price": { "id": price, "lookup_key": null, "unit_amount": 4900 },
                "current_period_start": 1_764_547_200, "current_period_end": 1_767_225_600
            }] },
            "default_payment_method": { "id": "pm_1", "card": { "number": "4242424242424242", "fingerprint": "Xt5EWLLDS7FJjR1c", "exp_month": 11, "exp_year": 2031 } }
        } }
    })
}

/// Card and bank details an event may carry; none may be stored.
const PAYMENT_SECRETS: [&str; 5] = [
    "4242424242424242",
    "Xt5EWLLDS7FJjR1c",
    "DE89370400440532013000",
    "Carla Cardholder",
    "payer-7781@example.com",
];

async fn billing_records_subscriptions_and_never_card_data(backend: Backend) {
    let (_plans, path) = plans_file(
        "default: free\nplans:\n  free: { tasks: 1 }\n  team: { tasks: 1000, stripe_prices: [price_team] }\n",
    );
    let options = ["--plans", path.as_str(), "--billing-webhook-secret", SECRET];
    let Some(server) = Server::start_with(backend, &options).await else {
        return;
    };
    let api = TestServer::start();
    server.save_recipe(ONE_TASK).await;
    let event = json!({ "api": api.base });
    let first = server.hook("/hooks/one", event.clone()).await;
    server.finished_job(first["job_id"].as_str().unwrap()).await;
    usage_when(&server, |usage| usage["held"] == true).await;
    let (_, answer) = post_hook(&server, "/hooks/one", event.clone()).await;
    assert_eq!(answer["held"], "quota", "{answer}");
    let held = answer["job_id"].as_str().unwrap().to_owned();

    // Signatures: none, another secret's, too old, or of another body are refused.
    let now = chrono::Utc::now().timestamp();
    let created = subscription_event(
        "evt_1",
        "customer.subscription.created",
        now - 60,
        "trialing",
        "price_team",
    );
    let body = created.to_string();
    for (signed, why) in [
        (None, "no `stripe-signature` header"),
        (Some(signature("whsec_other", now, &body)), "does not match"),
        (
            Some(signature(SECRET, now - 600, &body)),
            "five minutes old",
        ),
        (
            Some(signature(SECRET, now, &body.replace("trialing", "active"))),
            "does not match",
        ),
    ] {
        let (status, refused) = send_signed(&server, &body, signed.as_deref()).await;
        assert_eq!(status, 401, "{refused}");
        assert_eq!(refused["error"]["code"], "bad_signature");
        assert!(
            refused["error"]["message"].as_str().unwrap().contains(why),
            "{refused}"
        );
    }
    let (status, _) = server.api(Method::GET, "/api/v1/billing", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        server.api(Method::GET, "/api/v1/billing", None).await.1["subscription"],
        Value::Null
    );

    // A subscription to the team plan: the workspace has that plan now, and its held job runs.
    let (status, taken) = send_event(&server, &created).await;
    assert_eq!(status, 200, "{taken}");
    assert_eq!(taken["applied"], "subscription");
    assert_eq!(server.finished_job(&held).await["status"], "succeeded");
    let (_, billing) = server.api(Method::GET, "/api/v1/billing", None).await;
    let subscription = &billing["subscription"];
    assert_eq!(subscription["subscription_id"], "sub_1Weft", "{billing}");
    assert_eq!(subscription["customer_id"], "cus_Weft42");
    assert_eq!(subscription["status"], "trialing");
    assert_eq!(subscription["plan"], "team");
    assert_eq!(subscription["period_start"], "2025-12-01T00:00:00Z");
    assert_eq!(billing["plan"]["name"], "team");
    // Delivered again: nothing changes.
    let (_, again) = send_event(&server, &created).await;
    assert_eq!(again["applied"], "duplicate");

    // An older event arriving late does not undo a newer one.
    send_event(
        &server,
        &subscription_event(
            "evt_2",
            "customer.subscription.updated",
            now,
            "active",
            "price_team",
        ),
    )
    .await;
    send_event(
        &server,
        &subscription_event(
            "evt_3",
            "customer.subscription.updated",
            now - 30,
            "past_due",
            "price_team",
        ),
    )
    .await;
    let (_, billing) = server.api(Method::GET, "/api/v1/billing", None).await;
    assert_eq!(billing["subscription"]["status"], "active", "{billing}");

    // An invoice and its payment, mirrored, with card and bank details left behind.
    let invoice = json!({
        "id": "evt_4", "type": "invoice.paid", "created": now, "data": { "object": {
            "id": "in_1Weft", "object": "invoice", "number": "WEFT-0001", "status": "paid", "currency": "eur",
            "amount_due": 4900, "amount_paid": 4900, "created": now - 10, "due_date": null,
            "period_start": 1_764_547_200, "period_end": 1_767_225_600,
            "hosted_invoice_url": "https://invoice.stripe.com/i/acct_1/test_inv",
            "status_transitions": { "paid_at": now - 5 },
            "subscription": "sub_1Weft", "customer": "cus_Weft42",
            "customer_name": "Carla Cardholder", "customer_email": "payer-7781@example.com",
            "customer_address": { "line1": "1 Main St" }
        } }
    });
    let (status, taken) = send_event(&server, &invoice).await;
    assert_eq!(status, 200, "{taken}");
    let charge = json!({
        "id": "evt_5", "type": "charge.succeeded", "created": now, "data": { "object": {
            "id": "ch_1Weft", "object": "charge", "amount": 4900, "currency": "eur", "status": "succeeded",
            "created": now - 4, "invoice": "in_1Weft", "customer": "cus_Weft42",
            "billing_details": { "name": "Carla Cardholder", "email": "payer-7781@example.com" },
            "payment_method_details": {
                "card": { "number": "4242424242424242", "fingerprint": "Xt5EWLLDS7FJjR1c", "last4": "4242" },
                "sepa_debit": { "iban": "DE89370400440532013000" }
            }
        } }
    });
    let (status, taken) = send_event(&server, &charge).await;
    assert_eq!(status, 200, "{taken}");
    assert_eq!(taken["applied"], "payment");
    let (_, billing) = server.api(Method::GET, "/api/v1/billing", None).await;
    let invoice = &billing["invoices"][0];
    assert_eq!(invoice["number"], "WEFT-0001", "{billing}");
    assert_eq!(invoice["amount_paid"], 4900);
    assert_eq!(invoice["currency"], "eur");
    assert_eq!(invoice["status"], "paid");
    assert_eq!(
        invoice["hosted_invoice_url"],
        "https://invoice.stripe.com/i/acct_1/test_inv"
    );
    assert!(invoice["paid_at"].is_string(), "{invoice}");
    let payment = &billing["payments"][0];
    assert_eq!(payment["id"], "ch_1Weft");
    assert_eq!(payment["invoice_id"], "in_1Weft");
    assert_eq!(payment["amount"], 4900);
    let stored = server.everything_stored();
    assert!(
        stored.contains("WEFT-0001"),
        "the search would find what is there"
    );
    for secret in PAYMENT_SECRETS {
        assert!(!stored.contains(secret), "`{secret}` is stored");
        assert!(!billing.to_string().contains(secret), "`{secret}` is shown");
    }

    // An invoice of a customer nobody knows yet is refused, to come again later.
    let stranger = json!({
        "id": "evt_6", "type": "invoice.created", "created": now, "data": { "object": {
            "id": "in_2", "currency": "eur", "created": now, "customer": "cus_nobody", "subscription": "sub_nobody"
        } }
    });
    let (status, refused) = send_event(&server, &stranger).await;
    assert_eq!(status, 404, "{refused}");
    assert_eq!(refused["error"]["code"], "unknown_customer");

    // Canceled: back to the default plan, and the workspace's termination grace begins.
    let (status, _) = send_event(
        &server,
        &subscription_event(
            "evt_7",
            "customer.subscription.deleted",
            now + 1,
            "canceled",
            "price_team",
        ),
    )
    .await;
    assert_eq!(status, 200);
    let (_, billing) = server.api(Method::GET, "/api/v1/billing", None).await;
    assert_eq!(billing["subscription"]["status"], "canceled");
    assert_eq!(billing["plan"]["name"], "free");
    let (status, refused) = server
        .api(
            Method::POST,
            "/api/v1/recipes",
            Some(
                "name: Late\ntrigger: { manual: {} }\nsteps:\n  - id: s\n    set: { a: 1 }\n"
                    .to_owned(),
            ),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "workspace_closing", "{refused}");

    // Subscribing again keeps the workspace: it is no longer closing, and has the paid plan.
    let mut again = subscription_event(
        "evt_8",
        "customer.subscription.created",
        now + 2,
        "active",
        "price_team",
    );
    again["data"]["object"]["id"] = json!("sub_2Weft");
    let (status, _) = send_event(&server, &again).await;
    assert_eq!(status, 200);
    let (_, billing) = server.api(Method::GET, "/api/v1/billing", None).await;
    assert_eq!(billing["subscription"]["subscription_id"], "sub_2Weft");
    assert_eq!(billing["plan"]["name"], "team");
    let (status, created) = server
        .api(
            Method::POST,
            "/api/v1/recipes",
            Some(
                "name: Late\ntrigger: { manual: {} }\nsteps:\n  - id: s\n    set: { a: 1 }\n"
                    .to_owned(),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
}

#[tokio::test]
async fn billing_records_subscriptions_and_never_card_data_on_sqlite() {
    billing_records_subscriptions_and_never_card_data(Backend::Sqlite).await;
}

#[tokio::test]
async fn billing_records_subscriptions_and_never_card_data_on_postgres() {
    billing_records_subscriptions_and_never_card_data(Backend::Postgres).await;
}

/// Owners are mailed once at 80 % of the monthly tasks and once at 100 %.
#[tokio::test]
async fn owners_are_warned_at_eighty_and_a_hundred_percent() {
    use crate::support::smtp_server::{PASSWORD, SmtpServer, USER};
    let smtp = SmtpServer::start();
    let (_plans, path) = plans_file("plans:\n  small: { tasks: 5 }\n");
    let options = [
        "--plans",
        path.as_str(),
        "--mail-connection",
        "mailer",
        "--notify-every",
        "1s",
    ];
    let server = Server::start_with(Backend::Sqlite, &options).await.unwrap();
    server
        .save_connection(json!({
            "name": "mailer", "connector": "email",
            "fields": { "host": "127.0.0.1", "port": smtp.port, "security": "none",
                        "username": USER, "password": PASSWORD, "from": "Weft <weft@example.com>" }
        }))
        .await;
    let api = TestServer::start();
    server.save_recipe(ONE_TASK).await;
    let warned = |level: &str| {
        smtp.received()
            .iter()
            .filter(|mail| {
                mail.to.iter().any(|to| to.contains("ann@example.com"))
                    && mail.data.contains(&format!("reached {level}%"))
            })
            .count()
    };
    let run = |count: usize| {
        let (server, event) = (&server, json!({ "api": api.base }));
        async move {
            for _ in 0..count {
                let accepted = server.hook("/hooks/one", event.clone()).await;
                server
                    .finished_job(accepted["job_id"].as_str().unwrap())
                    .await;
            }
        }
    };
    run(4).await;
    for _ in 0..100 {
        if warned("80") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(warned("80"), 1);
    assert_eq!(warned("100"), 0);
    let (_, banner) = server
        .api(Method::GET, "/api/v1/usage/warnings", None)
        .await;
    assert_eq!(banner["warnings"][0]["level"], 80, "{banner}");
    assert_eq!(banner["warnings"], usage(&server).await["warnings"]);
    run(1).await;
    for _ in 0..100 {
        if warned("100") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!((warned("80"), warned("100")), (1, 1), "each warning once");
}

/// A workspace's own plan bounds its recipes, not the default plan: here the default limits
/// nothing, and `acme`'s plan runs one job of a recipe at a time.
#[tokio::test]
async fn each_workspace_is_bound_by_its_own_plan() {
    let (_plans, path) =
        plans_file("default: open\nplans:\n  open: {}\n  paced: { concurrency: 1 }\n");
    let server = Server::start_with(Backend::Sqlite, &["--plans", &path])
        .await
        .unwrap();
    let token = server.create_user_and_token_in("acme", "bob@example.com", "owner");
    server.admin(&["set-plan", "paced", "--workspace", "acme", "--plans", &path]);
    // Servers apply a plan set with `weft admin` within a round of metering.
    let mut plan = Value::Null;
    for _ in 0..50 {
        plan = server
            .api_as(&token, Method::GET, "/api/v1/usage", None)
            .await
            .1["plan"]["name"]
            .clone();
        if plan == "paced" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(plan, "paced");
    let recipe = "name: Paced\ntrigger:\n  webhook: { path: paced }\nsteps:\n  - id: pause\n    wait: 300ms\n";
    let (status, _) = server
        .api_as(
            &token,
            Method::POST,
            "/api/v1/recipes",
            Some(recipe.to_owned()),
        )
        .await;
    assert_eq!(status, 201);
    let mut spans = Vec::new();
    let sent = futures::future::join_all(
        (0..3).map(|_| post_hook(&server, "/w/acme/hooks/paced", Value::Null)),
    )
    .await;
    for (_, answer) in sent {
        let id = answer["job_id"].as_str().unwrap().to_owned();
        let mut job = Value::Null;
        for _ in 0..100 {
            job = server
                .api_as(&token, Method::GET, &format!("/api/v1/jobs/{id}"), None)
                .await
                .1;
            if job["status"] == "succeeded" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let at = |field: &str| {
            job[field]
                .as_str()
                .unwrap()
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap()
        };
        spans.push((at("started_at"), at("finished_at")));
    }
    spans.sort();
    for pair in spans.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "two jobs of acme ran at once: {spans:?}"
        );
    }
}
