//! Poll triggers on a real `weft serve`, polling a SQLite file through the `sqlite`
//! connector: each new or updated row makes one job once, across an edit of the recipe,
//! disable and enable, and a crash; a reset makes every row a job again.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::server::{Backend, Server};

/// The source: a SQLite file with an `orders` table the test changes as a user's app would.
struct Source {
    _folder: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl Source {
    fn new() -> Source {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("shop.db");
        let source = Source {
            _folder: folder,
            path,
        };
        source.sql("CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT, updated_at TEXT)");
        source
    }

    fn sql(&self, statement: &str) {
        let connection = rusqlite::Connection::open(&self.path).unwrap();
        connection.execute_batch(statement).unwrap();
    }
}

fn recipe(step: &str) -> String {
    format!(
        r#"name: New orders
trigger:
  poll:
    every: 10m
    action: sqlite.query
    connection: shop
    input:
      sql: SELECT id, email, updated_at FROM orders WHERE updated_at > ? ORDER BY updated_at LIMIT 100
      params: ['{{{{ cursor }}}}']
    items: .rows
    key: '"\(.id)@\(.updated_at)"'
    cursor:
      initial: ''
      next: .rows | last | .updated_at
steps:
  - id: note
    transform: '{step}'
"#
    )
}

/// The triggers of a recipe's jobs, once there are `count` of them and no more come within
/// a second: each is a row as the poll saw it.
async fn jobs_settle_at(server: &Server, recipe_id: &str, count: usize) -> Vec<Value> {
    let list = || async {
        let (_, listed) = server
            .api(
                Method::GET,
                &format!("/api/v1/jobs?recipe={recipe_id}"),
                None,
            )
            .await;
        listed["jobs"].as_array().cloned().unwrap_or_default()
    };
    for _ in 0..300 {
        if list().await.len() >= count {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let jobs = list().await;
    assert_eq!(jobs.len(), count, "{jobs:#?}");
    let mut triggers = Vec::new();
    for job in jobs {
        let finished = server.finished_job(job["id"].as_str().unwrap()).await;
        triggers.push(finished["trigger"].clone());
    }
    triggers.sort_by_key(|trigger| (trigger["id"].as_i64(), trigger["updated_at"].to_string()));
    triggers
}

on_both_backends!(
    each_new_or_updated_row_makes_one_job_once,
    |mut server: Server| async move {
        let source = Source::new();
        source.sql("INSERT INTO orders VALUES (1, 'ann@example.com', '2026-12-01T10:00'), (2, 'bob@example.com', '2026-12-01T11:00')");
        let connection = json!({
            "name": "shop",
            "connector": "sqlite",
            "fields": { "path": source.path.display().to_string() }
        });
        server.save_connection(connection).await;
        let saved = server.save_recipe(&recipe(".trigger.email")).await;
        let id = saved["id"].as_str().unwrap().to_owned();
        let triggers = jobs_settle_at(&server, &id, 2).await;
        assert_eq!(
            triggers,
            vec![
                json!({ "id": 1, "email": "ann@example.com", "updated_at": "2026-12-01T10:00" }),
                json!({ "id": 2, "email": "bob@example.com", "updated_at": "2026-12-01T11:00" }),
            ]
        );

        // A new row and an updated one; an edit of the recipe polls at once, from the same
        // cursor: two jobs more, none again for the rows seen.
        source.sql("INSERT INTO orders VALUES (3, 'cy@example.com', '2026-12-01T12:00'); UPDATE orders SET updated_at = '2026-12-01T13:00' WHERE id = 1");
        let (status, _) = server
            .api(
                Method::PUT,
                &format!("/api/v1/recipes/{id}"),
                Some(recipe(".trigger.id")),
            )
            .await;
        assert_eq!(status, 200);
        let triggers = jobs_settle_at(&server, &id, 4).await;
        assert_eq!(
            triggers[1]["updated_at"], "2026-12-01T13:00",
            "{triggers:#?}"
        );
        assert_eq!(triggers[3]["id"], 3, "{triggers:#?}");

        // Disabled, a row arrives; enabled again, only that row makes a job.
        server
            .api(Method::POST, &format!("/api/v1/recipes/{id}/disable"), None)
            .await;
        source.sql("INSERT INTO orders VALUES (4, 'di@example.com', '2026-12-01T14:00')");
        server
            .api(Method::POST, &format!("/api/v1/recipes/{id}/enable"), None)
            .await;
        let triggers = jobs_settle_at(&server, &id, 5).await;
        assert_eq!(
            triggers.iter().filter(|trigger| trigger["id"] == 4).count(),
            1
        );

        // A crash and a start: the poll runs again at start, from the stored cursor.
        source.sql("INSERT INTO orders VALUES (5, 'ed@example.com', '2026-12-01T15:00')");
        server.crash_and_restart();
        let triggers = jobs_settle_at(&server, &id, 6).await;
        assert_eq!(
            triggers.iter().filter(|trigger| trigger["id"] == 5).count(),
            1
        );

        // A reset forgets the cursor and the keys: every row makes a job again.
        let (status, reset) = server
            .api(
                Method::POST,
                &format!("/api/v1/recipes/{id}/poll/reset"),
                None,
            )
            .await;
        assert_eq!((status, reset), (200, json!({ "reset": true })));
        jobs_settle_at(&server, &id, 11).await;
    }
);

on_both_backends!(
    a_failing_poll_is_retried_and_loses_nothing,
    |server: Server| async move {
        let source = Source::new();
        let connection = json!({
            "name": "shop",
            "connector": "sqlite",
            "fields": { "path": source.path.display().to_string() }
        });
        server.save_connection(connection).await;
        // The table is missing at first: every poll fails, and no job is made.
        source.sql("DROP TABLE orders");
        let saved = server.save_recipe(&recipe(".trigger.email")).await;
        let id = saved["id"].as_str().unwrap().to_owned();
        jobs_settle_at(&server, &id, 0).await;
        let logs = server.logs();
        assert!(
            logs.contains("a poll failed") && logs.contains("no such table"),
            "{logs}"
        );
        let (status, refused) = server
            .api(Method::POST, "/api/v1/recipes/nobody/poll/reset", None)
            .await;
        assert_eq!(status, 404, "{refused}");
        // With the table back, the next poll (an edit polls at once) finds its rows.
        source.sql("CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT, updated_at TEXT); INSERT INTO orders VALUES (1, 'ann@example.com', '2026-12-01T10:00')");
        server
            .api(
                Method::PUT,
                &format!("/api/v1/recipes/{id}"),
                Some(recipe(".trigger.id")),
            )
            .await;
        jobs_settle_at(&server, &id, 1).await;
    }
);

/// The times `/track/{key}` of the stand-in API was called, in milliseconds.
async fn arrivals(api: &crate::support::http_server::TestServer, key: &str) -> Vec<i64> {
    let seen: Value = reqwest::get(format!("{}/tracked/{key}", api.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    seen["arrivals_ms"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_i64)
        .collect()
}

/// Waits up to ten seconds for `/track/{key}` to have been called `count` times; then what
/// it saw.
pub(crate) async fn arrivals_reach(
    api: &crate::support::http_server::TestServer,
    key: &str,
    count: usize,
) -> Vec<i64> {
    for _ in 0..100 {
        if arrivals(api, key).await.len() >= count {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    arrivals(api, key).await
}

/// On a platform of two processes, a trigger is polled by one of them (the one that runs the
/// schedules and polls), and by the other once the first dies.
#[tokio::test]
async fn a_trigger_is_polled_by_one_process_of_several() {
    let Some(mut first) = Server::start_with(Backend::Postgres, &[]).await else {
        return;
    };
    let api = crate::support::http_server::TestServer::start();
    first
        .save_connection(
            json!({ "name": "api", "connector": "http", "fields": { "base_url": api.base } }),
        )
        .await;
    let recipe = "name: Feed\ntrigger:\n  poll:\n    every: 1h\n    action: http.request\n    connection: api\n    input: { url: /track/feed }\n    items: '[]'\n    key: .id\nsteps:\n  - id: n\n    transform: .trigger\n";
    first.save_recipe(recipe).await;
    assert_eq!(arrivals_reach(&api, "feed", 1).await.len(), 1);

    // A process that polled every trigger would poll this one at once.
    let second = first.another_process();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        arrivals(&api, "feed").await.len(),
        1,
        "the second process polled too"
    );

    // When the first dies, the second takes over once the lease has run out, and polls.
    first.crash();
    let polled = arrivals_reach(&api, "feed", 2).await;
    assert_eq!(
        polled.len(),
        2,
        "the other process did not take the polls over"
    );
    drop(second);
}
