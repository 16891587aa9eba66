//! Subscribe triggers on a real `weft serve`: a consumer per enabled recipe, a job per
//! message, stopped when the recipe is disabled; options checked when the recipe is saved.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::server::{Backend, Server};
use crate::support::{run_with, write_recipe};

const EVENTS: &str = "events:\n  connector: postgres\n  host: 127.0.0.1\n  database: test\n  user: root\n  sslmode: disable\n";

/// Sends `NOTIFY channel, payload` through the postgres connector, as a user's app would.
fn notify(channel: &str, payload: &Value) {
    let (folder, recipe) = write_recipe(
        "name: Notify\ntrigger: { manual: {} }\nsteps:\n  - id: send\n    action: postgres.query\n    connection: events\n    input: { sql: 'SELECT pg_notify($1, $2)', params: ['{{ trigger.channel }}', '{{ trigger.payload }}'] }\n",
    );
    let connections = folder.path().join("connections.yaml");
    std::fs::write(&connections, EVENTS).unwrap();
    let ran = run_with(
        &recipe,
        &json!({ "channel": channel, "payload": payload.to_string() }),
        &["--connections", connections.to_str().unwrap()],
    );
    assert_eq!(ran.code, 0, "{:#}", ran.record);
}

/// The `n` of the payload of every job of a recipe.
async fn payloads(server: &Server, recipe_id: &str) -> Vec<i64> {
    let (_, listed) = server
        .api(
            Method::GET,
            &format!("/api/v1/jobs?recipe={recipe_id}"),
            None,
        )
        .await;
    let mut found = Vec::new();
    for job in listed["jobs"].as_array().cloned().unwrap_or_default() {
        let job = server.finished_job(job["id"].as_str().unwrap()).await;
        found.push(job["trigger"]["payload"]["n"].as_i64().unwrap_or(-1));
    }
    found.sort_unstable();
    found
}

on_both_backends!(
    each_postgres_notification_makes_one_job,
    |server: Server| async move {
        if !crate::support::service_answers("PostgreSQL", "127.0.0.1:5432") {
            return;
        }
        let connection = json!({
            "name": "events", "connector": "postgres",
            "fields": { "host": "127.0.0.1", "database": "test", "user": "root", "sslmode": "disable" }
        });
        server.save_connection(connection).await;
        // The connection test pings the database; a wrong port is a failed test with a reason.
        let (_, tested) = server
            .api(Method::POST, "/api/v1/connections/events/test", None)
            .await;
        assert_eq!(tested, json!({ "ok": true }));
        server
            .save_connection(json!({
                "name": "nowhere", "connector": "postgres",
                "fields": { "host": "127.0.0.1", "port": 1, "database": "test", "user": "root", "sslmode": "disable" }
            }))
            .await;
        let (_, tested) = server
            .api(Method::POST, "/api/v1/connections/nowhere/test", None)
            .await;
        assert_eq!(tested["ok"], false, "{tested}");
        assert!(
            tested["message"]
                .as_str()
                .unwrap()
                .contains("cannot connect"),
            "{tested}"
        );
        let channel = format!("weft_test_{}", std::process::id() ^ rand_suffix());
        let recipe = format!(
            "name: Listen\ntrigger:\n  subscribe: {{ connector: postgres, connection: events, channel: {channel} }}\nsteps:\n  - id: n\n    transform: .trigger.payload.n\n"
        );
        let saved = server.save_recipe(&recipe).await;
        let id = saved["id"].as_str().unwrap().to_owned();

        // Until the consumer listens, notifications go unseen: probe until one makes a job.
        let mut listening = false;
        for _ in 0..50 {
            notify(&channel, &json!({ "n": 0 }));
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            if !payloads(&server, &id).await.is_empty() {
                listening = true;
                break;
            }
        }
        assert!(listening, "no notification made a job");
        for n in 1..=5 {
            notify(&channel, &json!({ "n": n }));
        }
        let mut found = Vec::new();
        for _ in 0..100 {
            found = payloads(&server, &id).await;
            if found.iter().filter(|n| **n > 0).count() >= 5 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let messages: Vec<i64> = found.into_iter().filter(|n| *n > 0).collect();
        assert_eq!(messages, vec![1, 2, 3, 4, 5]);

        // A disabled recipe's consumer stops.
        server
            .api(Method::POST, &format!("/api/v1/recipes/{id}/disable"), None)
            .await;
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        notify(&channel, &json!({ "n": 99 }));
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert!(!payloads(&server, &id).await.contains(&99));
    }
);

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|time| time.subsec_nanos())
        .unwrap_or_default()
}

#[tokio::test]
async fn subscription_options_are_checked_when_saved() {
    let server = Server::start_with(Backend::Sqlite, &[])
        .await
        .expect("SQLite is always there");
    let cases = [
        (
            "subscribe: { connector: postgres, connection: events, chanel: x }",
            "no option `chanel`",
        ),
        (
            "subscribe: { connector: postgres, connection: events }",
            "needs `channel`",
        ),
        (
            "subscribe: { connector: postgres, channel: x }",
            "needs a `connection`",
        ),
        (
            "subscribe: { connector: http, channel: x }",
            "cannot feed a subscribe trigger",
        ),
    ];
    for (trigger, reason) in cases {
        let recipe =
            format!("name: Listen\ntrigger:\n  {trigger}\nsteps:\n  - id: n\n    transform: .\n");
        let (status, refused) = server
            .api(Method::POST, "/api/v1/recipes", Some(recipe))
            .await;
        assert_eq!(status, 422, "{trigger}: {refused}");
        let problems = refused["error"]["problems"].to_string();
        assert!(problems.contains(reason), "{trigger}: {problems}");
        assert_eq!(refused["error"]["problems"][0]["line"], 3, "{refused}");
    }
}
