//! One test suite, run against both backends: SQLite in a temporary data folder, and the real
//! PostgreSQL server (its own schema per test). PostgreSQL tests skip with a printed reason
//! when no server answers, unless `WEFT_REQUIRE_SERVICES=1`.

use chrono::Utc;
use serde_json::json;
use std::time::Duration;

use crate::{
    AuditEvent, AuditFilter, DEFAULT_WORKSPACE, JobFilter, JobRecord, JobStatus, NewToken, Role,
    Store, StoreError,
};

async fn sqlite() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = Store::open_data_folder(&dir.path().join("data"))
        .await
        .expect("SQLite opens");
    store.migrate().await.expect("the schema is created");
    (dir, store)
}

/// A store in a fresh, empty PostgreSQL schema, or `None` (with the reason printed) without a
/// server.
async fn postgres_unmigrated() -> Option<Store> {
    let url = crate::testing::postgres_schema_url().await?;
    Some(Store::connect(&url).await.expect("PostgreSQL connects"))
}

/// A store in a fresh PostgreSQL schema with the current schema, or `None` without a server.
async fn postgres() -> Option<Store> {
    let store = postgres_unmigrated().await?;
    store.migrate().await.expect("the schema is created");
    Some(store)
}

/// Runs a test body against SQLite, then PostgreSQL.
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                let (_dir, store) = super::sqlite().await;
                ($body)(store).await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(store) = super::postgres().await {
                    ($body)(store).await;
                }
            }
        }
    };
}

both_backends!(migrations_run_twice, |store: Store| async move {
    store.migrate().await.expect("a second run changes nothing");
    assert!(store.ping().await);
});

both_backends!(users_and_tokens, |store: Store| async move {
    let user = store
        .create_user("ann@example.com", "Ann", "hash")
        .await
        .unwrap();
    let again = store
        .create_user("ann@example.com", "Other", "hash")
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::Conflict(_)), "{again}");
    assert_eq!(
        store
            .user_by_email("ann@example.com")
            .await
            .unwrap()
            .unwrap()
            .id,
        user.id
    );
    let token = |role, expires_at| NewToken {
        user_id: &user.id,
        workspace_id: DEFAULT_WORKSPACE,
        role,
        name: "ci",
        expires_at,
    };
    store
        .create_scoped_token("tokenhash", &token(Role::Builder, None))
        .await
        .unwrap();
    // Not a member (yet): the token opens nothing.
    assert!(
        store
            .caller_by_token_hash("tokenhash")
            .await
            .unwrap()
            .is_none()
    );
    store
        .set_membership(DEFAULT_WORKSPACE, &user.id, Role::Admin)
        .await
        .unwrap();
    let caller = store
        .caller_by_token_hash("tokenhash")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(caller.user.email, "ann@example.com");
    assert_eq!(caller.role, Role::Builder, "the token's own role is lower");
    // A demotion reaches the token at once.
    store
        .set_membership(DEFAULT_WORKSPACE, &user.id, Role::Viewer)
        .await
        .unwrap();
    let caller = store
        .caller_by_token_hash("tokenhash")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(caller.role, Role::Viewer);
    assert!(store.caller_by_token_hash("other").await.unwrap().is_none());

    // An expired token opens nothing; a revoked one neither.
    let past = Some(Utc::now() - chrono::Duration::seconds(1));
    store
        .create_scoped_token("expired", &token(Role::Viewer, past))
        .await
        .unwrap();
    assert!(
        store
            .caller_by_token_hash("expired")
            .await
            .unwrap()
            .is_none()
    );
    let listed = store
        .tokens(DEFAULT_WORKSPACE, Some(&user.id))
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        store
            .revoke_token(DEFAULT_WORKSPACE, caller.credential_id())
            .await
            .unwrap()
    );
    assert!(
        store
            .caller_by_token_hash("tokenhash")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !store
            .revoke_token("elsewhere", &listed[0].id)
            .await
            .unwrap()
    );
});

both_backends!(recipes_keep_numbered_versions, |store: Store| async move {
    let created = store
        .create_recipe("default", "Orders", "name: Orders v1", Some("orders/new"))
        .await
        .unwrap();
    assert_eq!(created.version, 1);
    let updated = store
        .update_recipe(&created.id, "Orders", "name: Orders v2", Some("orders/new"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.source, "name: Orders v2");
    let versions = store.recipe_versions(&created.id).await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(
        store
            .recipe_version(&created.id, 1)
            .await
            .unwrap()
            .unwrap()
            .source,
        "name: Orders v1"
    );
    assert_eq!(
        store
            .recipe_for_webhook("default", "orders/new")
            .await
            .unwrap()
            .unwrap()
            .id,
        created.id
    );

    let taken = store
        .create_recipe("default", "Other", "x", Some("orders/new"))
        .await
        .unwrap_err();
    assert!(
        taken
            .to_string()
            .contains("webhook path `orders/new` is taken"),
        "{taken}"
    );
    let named = store
        .create_recipe("default", "Orders", "x", None)
        .await
        .unwrap_err();
    assert!(
        named
            .to_string()
            .contains("a recipe named `Orders` already exists"),
        "{named}"
    );

    // Another workspace has names and webhook paths of its own.
    let owner = store.create_user("o@acme.test", "O", "hash").await.unwrap();
    store
        .create_workspace("acme", "Acme", &owner.id)
        .await
        .unwrap();
    let theirs = store
        .create_recipe("acme", "Orders", "name: Orders", Some("orders/new"))
        .await
        .unwrap();
    let found = store
        .recipe_for_webhook("acme", "orders/new")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.id.as_str(), found.workspace_id.as_str()),
        (theirs.id.as_str(), "acme")
    );
    let ours = store
        .recipe_by_name("default", "Orders")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ours.id, created.id);
    let listed: Vec<String> = store
        .recipes_in("acme")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, vec![theirs.id.clone()]);
    let taken = store
        .create_workspace("acme", "Again", &owner.id)
        .await
        .unwrap_err();
    assert!(taken.to_string().contains("`acme` is taken"), "{taken}");

    assert!(store.set_recipe_enabled(&created.id, false).await.unwrap());
    assert!(
        store
            .recipe_for_webhook("default", "orders/new")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.delete_recipe(&created.id).await.unwrap());
    assert!(store.recipe(&created.id).await.unwrap().is_none());
    assert!(
        store
            .update_recipe(&created.id, "Orders", "x", None)
            .await
            .unwrap()
            .is_none()
    );
});

both_backends!(
    jobs_are_queued_claimed_once_and_recorded,
    |store: Store| async move {
        let recipe = store
            .create_recipe("default", "Orders", "name: Orders", None)
            .await
            .unwrap();
        let first = store.enqueue_job(&recipe, &json!({"n": 1})).await.unwrap();
        let second = store.enqueue_job(&recipe, &json!({"n": 2})).await.unwrap();
        assert_eq!(store.unfinished_jobs().await.unwrap().queued, 2);

        let claimed = store
            .claim_job("worker-a", Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.id, first);
        assert_eq!(claimed.trigger, json!({"n": 1}));
        assert_eq!(claimed.attempt, 1);
        let next = store
            .claim_job("worker-b", Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next.id, second);
        assert!(
            store
                .claim_job("worker-c", Duration::from_secs(60))
                .await
                .unwrap()
                .is_none()
        );

        let now = crate::record::now();
        let record = JobRecord {
            id: first.clone(),
            recipe: "Orders".into(),
            recipe_version: None,
            status: JobStatus::Succeeded,
            output: json!({"ok": true}),
            trigger: json!({"n": 1}),
            error: None,
            started_at: now,
            finished_at: Some(now),
            steps: vec![crate::StepRecord {
                id: "a".into(),
                status: crate::StepStatus::Succeeded,
                index: None,
                path: None,
                attempts: 1,
                input: json!(null),
                output: json!(42),
                error: None,
                started_at: now,
                finished_at: now,
            }],
            rerun_of: None,
            called_by: None,
            held: None,
            tasks: None,
        };
        assert!(
            !store.finish_job(&record, "someone-else", 0).await.unwrap(),
            "a worker without the lease wrote"
        );
        assert!(store.finish_job(&record, "worker-a", 0).await.unwrap());
        let stored = store.job(&first).await.unwrap().unwrap();
        assert_eq!(stored.status, JobStatus::Succeeded);
        assert_eq!(stored.output, json!({"ok": true}));
        assert_eq!(stored.steps, record.steps);

        let all = store
            .jobs(&JobFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            all.iter().map(|job| job.id.clone()).collect::<Vec<_>>(),
            vec![second.clone(), first.clone()]
        );
        let done = store
            .jobs(&JobFilter {
                status: Some(JobStatus::Succeeded),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(done.len(), 1);
        let page = store
            .jobs(&JobFilter {
                before: Some(second.clone()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page[0].id, first);
    }
);

both_backends!(
    a_job_whose_lease_ran_out_is_claimed_again,
    |store: Store| async move {
        let recipe = store
            .create_recipe("default", "Orders", "name: Orders", None)
            .await
            .unwrap();
        let id = store.enqueue_job(&recipe, &json!({})).await.unwrap();
        let first = store
            .claim_job("dies", Duration::from_millis(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.id, id);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let again = store
            .claim_job("survives", Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.id, id);
        assert_eq!(again.attempt, 2);
    }
);

fn step(id: &str, output: serde_json::Value) -> crate::StepRecord {
    let now = crate::record::now();
    crate::StepRecord {
        id: id.into(),
        status: crate::StepStatus::Succeeded,
        index: None,
        path: None,
        attempts: 1,
        input: json!(null),
        output,
        error: None,
        started_at: now,
        finished_at: now,
    }
}

both_backends!(
    a_started_job_is_its_owners_until_its_lease_runs_out,
    |store: Store| async move {
        let recipe = store
            .create_recipe("default", "Orders", "name: Orders", None)
            .await
            .unwrap();
        let id = crate::new_id();
        store
            .start_job(
                &id,
                &recipe,
                &json!({"n": 1}),
                "web-1",
                Duration::from_millis(300),
            )
            .await
            .unwrap();
        let summary = store
            .jobs(&JobFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(summary[0].status, JobStatus::Running);
        assert!(
            store
                .claim_job("other", Duration::from_secs(60))
                .await
                .unwrap()
                .is_none(),
            "a job under a live lease was claimed"
        );
        // One statement renews every lease of the owner, and only that owner's.
        assert_eq!(
            store
                .renew_leases("web-1", Duration::from_secs(60))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .renew_leases("nobody", Duration::from_secs(60))
                .await
                .unwrap(),
            0
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            store
                .claim_job("other", Duration::from_secs(60))
                .await
                .unwrap()
                .is_none(),
            "the renewed lease was not honoured"
        );
        store
            .renew_leases("web-1", Duration::from_millis(1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let taken = store
            .claim_job("other", Duration::from_secs(60))
            .await
            .unwrap()
            .expect("a job whose owner stopped renewing is taken over");
        assert_eq!((taken.id.as_str(), taken.attempt), (id.as_str(), 2));
        assert_eq!(taken.trigger, json!({"n": 1}));
    }
);

both_backends!(
    only_the_owner_puts_a_job_to_sleep_with_its_steps,
    |store: Store| async move {
        let recipe = store
            .create_recipe("default", "Orders", "name: Orders", None)
            .await
            .unwrap();
        let id = crate::new_id();
        store
            .start_job(&id, &recipe, &json!({}), "web-1", Duration::from_secs(60))
            .await
            .unwrap();
        let finished = [
            step("first", json!(1)),
            step("pause", json!({"waited_ms": 5000})),
        ];
        let until = Utc::now() + chrono::Duration::milliseconds(50);
        assert!(
            !store
                .suspend_job(&id, "intruder", until, &finished, 0)
                .await
                .unwrap()
        );
        // A job asked to stop does not go to sleep; its owner learns why.
        let other = crate::new_id();
        store
            .start_job(
                &other,
                &recipe,
                &json!({}),
                "web-1",
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert!(
            store
                .request_cancel(&other, "cancelled by ann")
                .await
                .unwrap()
        );
        assert!(
            !store
                .suspend_job(&other, "web-1", until, &finished, 0)
                .await
                .unwrap()
        );
        assert_eq!(
            store
                .cancel_reason(&other, "web-1")
                .await
                .unwrap()
                .as_deref(),
            Some("cancelled by ann")
        );
        // Nor does a worker that lost the job note its steps.
        assert!(
            !store
                .log_step(&id, "first", &finished[0], "intruder")
                .await
                .unwrap()
        );
        assert!(store.job_progress(&id).await.unwrap().is_empty());
        assert!(
            store
                .suspend_job(&id, "web-1", until, &finished, 0)
                .await
                .unwrap()
        );
        let progress = store.job_progress(&id).await.unwrap();
        assert_eq!(progress.len(), 2);
        assert_eq!(progress["pause"].output, json!({"waited_ms": 5000}));
        tokio::time::sleep(Duration::from_millis(80)).await;
        let woken = store
            .claim_job("worker", Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (woken.id, woken.attempt),
            (id, 1),
            "waking is not a new attempt"
        );
    }
);

both_backends!(
    concurrent_jobs_are_each_committed_once,
    |store: Store| async move {
        let recipe = store
            .create_recipe("default", "Orders", "name: Orders", None)
            .await
            .unwrap();
        // Many jobs at once: on SQLite they share commits; each must still be whole.
        let jobs = (0..200).map(|n| {
            let store = store.clone();
            let recipe = recipe.clone();
            tokio::spawn(async move {
                let id = crate::new_id();
                store
                    .start_job(
                        &id,
                        &recipe,
                        &json!({"n": n}),
                        "web-1",
                        Duration::from_secs(60),
                    )
                    .await
                    .unwrap();
                assert!(
                    store
                        .log_step(&id, "call", &step("call", json!(n)), "web-1")
                        .await
                        .unwrap()
                );
                let now = crate::record::now();
                let record = JobRecord {
                    id: id.clone(),
                    recipe: "Orders".into(),
                    recipe_version: None,
                    status: JobStatus::Succeeded,
                    output: json!(n),
                    trigger: json!({"n": n}),
                    error: None,
                    started_at: now,
                    finished_at: Some(now),
                    steps: vec![step("call", json!(n)), step("shape", json!({"n": n}))],
                    rerun_of: None,
                    called_by: None,
                    held: None,
                    tasks: None,
                };
                assert!(store.finish_job(&record, "web-1", 0).await.unwrap());
                (id, n)
            })
        });
        for job in jobs.collect::<Vec<_>>() {
            let (id, n) = job.await.unwrap();
            let stored = store.job(&id).await.unwrap().unwrap();
            assert_eq!(stored.status, JobStatus::Succeeded);
            assert_eq!(stored.output, json!(n));
            assert_eq!(stored.steps.len(), 2);
            assert_eq!(stored.steps[1].output, json!({"n": n}));
            assert!(store.job_progress(&id).await.unwrap().is_empty());
        }
        let done = store
            .jobs(&JobFilter {
                status: Some(JobStatus::Succeeded),
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(done.len(), 200);
    }
);

both_backends!(
    the_history_is_narrowed_to_a_time_range,
    |store: Store| async move {
        let recipe = store
            .create_recipe("default", "Orders", "name: Orders", None)
            .await
            .unwrap();
        let mut ids = Vec::new();
        for n in 0..3 {
            ids.push(store.enqueue_job(&recipe, &json!({"n": n})).await.unwrap());
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        let all = store
            .jobs(&JobFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        let second_created = all.iter().find(|job| job.id == ids[1]).unwrap().created_at;
        let listed = |filter: JobFilter| {
            let store = store.clone();
            async move {
                let mut found: Vec<String> = store
                    .jobs(&filter)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|job| job.id)
                    .collect();
                found.reverse();
                found
            }
        };
        let since = listed(JobFilter {
            since: Some(second_created),
            limit: 10,
            ..Default::default()
        })
        .await;
        assert_eq!(since, ids[1..].to_vec());
        let until = listed(JobFilter {
            until: Some(second_created),
            limit: 10,
            ..Default::default()
        })
        .await;
        assert_eq!(until, ids[..1].to_vec());
        let later = listed(JobFilter {
            since: Some(Utc::now() + chrono::Duration::minutes(1)),
            limit: 10,
            ..Default::default()
        })
        .await;
        assert!(later.is_empty());
        let day = listed(JobFilter {
            since: Some(Utc::now() - chrono::Duration::days(1)),
            until: Some(Utc::now() + chrono::Duration::days(1)),
            limit: 10,
            ..Default::default()
        })
        .await;
        assert_eq!(day, ids);
    }
);

#[test]
fn the_first_id_of_a_time_sorts_before_every_id_made_then() {
    let now = crate::record::now();
    let id = crate::new_id();
    let after = Utc::now() + chrono::Duration::milliseconds(1);
    assert!(crate::db::first_id_at(now - chrono::Duration::milliseconds(1)) <= id);
    assert!(id < crate::db::first_id_at(after + chrono::Duration::milliseconds(1)));
}

/// Jobs recorded by the layout before migration 7 (one row a step in `job_steps`) keep their
/// steps, in order, when the schema is brought up to date.
async fn steps_survive_the_move_into_the_job_row(store: Store) {
    let finished = "INSERT INTO jobs (id, recipe_id, recipe_name, recipe_version, status, trigger, attempt, created_at, run_after) \
                    VALUES ('j1', 'r', 'Orders', 1, 'succeeded', '{}', 1, '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')";
    let old_step = "INSERT INTO job_steps (job_id, seq, record) VALUES ('j1', $1, $2)";
    // The schema as it was before migration 7, and a finished job recorded in it.
    macro_rules! old_layout {
        ($pool:expr, $migrations:literal) => {{
            let mut migrator = sqlx::migrate!($migrations);
            migrator.migrations = migrator
                .migrations
                .iter()
                .filter(|m| m.version < 7)
                .cloned()
                .collect();
            migrator.run($pool).await.unwrap();
            sqlx::query(finished).execute($pool).await.unwrap();
            for (seq, id) in ["b", "a", "c"].iter().enumerate() {
                sqlx::query(old_step)
                    .bind(seq as i64)
                    .bind(sqlx::types::Json(step(id, json!(id))))
                    .execute($pool)
                    .await
                    .unwrap();
            }
        }};
    }
    match &*store.backend {
        crate::db::Backend::Sqlite(pool) => old_layout!(pool, "migrations/sqlite"),
        crate::db::Backend::Postgres(pool) => old_layout!(pool, "migrations/postgres"),
    }
    store.migrate().await.unwrap();
    let job = store.job("j1").await.unwrap().unwrap();
    let ids: Vec<&str> = job.steps.iter().map(|step| step.id.as_str()).collect();
    assert_eq!(ids, ["b", "a", "c"]);
    assert_eq!(job.steps[1].output, json!("a"));
}

#[tokio::test]
async fn steps_survive_the_move_into_the_job_row_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = Store::open_data_folder(&dir.path().join("data"))
        .await
        .unwrap();
    steps_survive_the_move_into_the_job_row(store).await;
}

#[tokio::test]
async fn steps_survive_the_move_into_the_job_row_on_postgres() {
    if let Some(store) = postgres_unmigrated().await {
        steps_survive_the_move_into_the_job_row(store).await;
    }
}

/// Jobs written before migration 9, with their times as text, keep them to the microsecond
/// once SQLite holds them as integers, whatever the digits of a second and the offset; and
/// the steps a running job had finished stay with it.
#[tokio::test]
async fn sqlite_job_times_survive_the_move_to_integers() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = Store::open_data_folder(&dir.path().join("data"))
        .await
        .unwrap();
    let crate::db::Backend::Sqlite(pool) = &*store.backend else {
        unreachable!("a data folder is SQLite")
    };
    let mut migrator = sqlx::migrate!("migrations/sqlite");
    migrator.migrations = migrator
        .migrations
        .iter()
        .filter(|m| m.version < 9)
        .cloned()
        .collect();
    // The layout before migration 9, made by the migrations before it.
    migrator.run(pool).await.unwrap();
    let times = [
        (
            "nine",
            "2026-12-03T17:08:41.242631705+00:00",
            1_796_317_721_242_631_i64,
        ),
        (
            "six",
            "2026-12-03T17:08:41.242631+00:00",
            1_796_317_721_242_631,
        ),
        (
            "three",
            "2026-12-03T17:08:41.242+00:00",
            1_796_317_721_242_000,
        ),
        ("none", "2026-12-03T17:08:41+00:00", 1_796_317_721_000_000),
        ("zulu", "2026-12-03T17:08:41.5Z", 1_796_317_721_500_000),
        (
            "offset",
            "2026-12-03T19:08:41.242631+02:00",
            1_796_317_721_242_631,
        ),
    ];
    let insert = "INSERT INTO jobs (id, recipe_id, recipe_name, recipe_version, status, trigger, attempt, \
                  created_at, run_after, started_at, finished_at, lease_owner, lease_until) \
                  VALUES ($1, 'r', 'Orders', 1, 'running', '{}', 1, $2, $2, $2, NULL, 'worker-a', $2)";
    for (id, text, _) in times {
        sqlx::query(insert)
            .bind(id)
            .bind(text)
            .execute(pool)
            .await
            .unwrap();
    }
    sqlx::query("INSERT INTO job_progress (job_id, path, record) VALUES ('six', 'a', $1)")
        .bind(sqlx::types::Json(step("a", json!(1))))
        .execute(pool)
        .await
        .unwrap();

    store.migrate().await.unwrap();
    for (id, text, micros) in times {
        let row: (i64, i64, i64, Option<i64>, i64) = sqlx::query_as(
            "SELECT created_at, run_after, started_at, finished_at, lease_until FROM jobs WHERE id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(row, (micros, micros, micros, None, micros), "{text}");
    }
    let finished = store.job_progress("six").await.unwrap();
    assert_eq!(finished["a"].output, json!(1));
    // The progress table still belongs to the job table: a job's removal takes its steps.
    sqlx::query("DELETE FROM jobs WHERE id = 'six'")
        .execute(pool)
        .await
        .unwrap();
    assert!(store.job_progress("six").await.unwrap().is_empty());
}

/// A setting of a SQLite store's connections, read with `PRAGMA name`.
async fn sqlite_pragma(store: &Store, name: &str) -> i64 {
    let crate::db::Backend::Sqlite(pool) = &*store.backend else {
        unreachable!("a data folder is SQLite")
    };
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("PRAGMA {name}")))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_new_sqlite_database_has_pages_that_fit_many_job_rows() {
    let (_dir, store) = sqlite().await;
    assert_eq!(sqlite_pragma(&store, "page_size").await, 16 * 1024);
}

#[tokio::test]
async fn sqlite_commits_are_synced_to_disk_when_asked() {
    for (durability, expected) in [(crate::Durability::Normal, 1), (crate::Durability::Full, 2)] {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let store = Store::open_data_folder_with(&dir.path().join("data"), durability)
            .await
            .unwrap();
        // `PRAGMA synchronous`: 1 is NORMAL, 2 is FULL.
        let synchronous = sqlite_pragma(&store, "synchronous").await;
        assert_eq!(synchronous, expected, "{durability:?}");
    }
}

#[tokio::test]
async fn sqlite_copies_committed_jobs_into_the_database_file_in_the_background() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let data = dir.path().join("data");
    let store = Store::open_data_folder(&data).await.unwrap();
    store.migrate().await.unwrap();
    let recipe = store
        .create_recipe("default", "Orders", "name: Orders", None)
        .await
        .unwrap();
    let big = "x".repeat(2_000);
    for n in 0..200 {
        store
            .enqueue_job(&recipe, &json!({"n": n, "padding": big}))
            .await
            .unwrap();
    }
    // The writer never checkpoints in a commit; the checkpoint thread does, soon after: a
    // copy of the database file alone, without its WAL, then holds the jobs. (Its size tells
    // nothing: the migrations leave free pages that new rows fill first.)
    let in_the_file = || {
        let copy = dir.path().join("copy.db");
        std::fs::copy(data.join("weft.db"), &copy).unwrap();
        let _ = std::fs::remove_file(dir.path().join("copy.db-wal"));
        rusqlite::Connection::open(&copy)
            .and_then(|file| {
                file.query_row("SELECT COUNT(*) FROM jobs", [], |row| row.get::<_, i64>(0))
            })
            .unwrap_or(0)
    };
    let mut found = 0;
    for _ in 0..50 {
        found = in_the_file();
        if found == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(found, 200, "the database file did not take the new jobs");
}

/// A recipe with `count` queued jobs.
async fn queued_jobs(store: &Store, name: &str, count: usize) -> crate::StoredRecipe {
    let recipe = store
        .create_recipe("default", name, name, None)
        .await
        .unwrap();
    for n in 0..count {
        store.enqueue_job(&recipe, &json!({"n": n})).await.unwrap();
    }
    recipe
}

/// `workers` workers (as of several processes) claim at once, each until it finds nothing,
/// and never finish a job: the ids of the jobs they hold.
async fn claim_at_once(store: &Store, workers: usize) -> Vec<String> {
    let workers = (0..workers).map(|worker| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(job) = store
                .claim_job(&format!("w{worker}"), Duration::from_secs(60))
                .await
                .unwrap()
            {
                mine.push(job.id);
            }
            mine
        })
    });
    let mut claimed = Vec::new();
    for worker in workers.collect::<Vec<_>>() {
        claimed.extend(worker.await.unwrap());
    }
    claimed
}

#[tokio::test]
async fn postgres_claims_each_job_once_under_concurrent_workers() {
    let Some(store) = postgres().await else {
        return;
    };
    queued_jobs(&store, "Orders", 200).await;
    let claimed = claim_at_once(&store, 8).await;
    let unique: std::collections::HashSet<_> = claimed.iter().collect();
    assert_eq!(claimed.len(), 200);
    assert_eq!(unique.len(), 200);
}

#[tokio::test]
async fn postgres_never_runs_more_of_a_recipe_than_its_concurrency() {
    let Some(store) = postgres().await else {
        return;
    };
    let recipe = queued_jobs(&store, "One at a time", 40).await;
    store
        .set_recipe_concurrency(&recipe.id, Some(1))
        .await
        .unwrap();
    // No more than one of sixteen workers may hold a job of it.
    assert_eq!(claim_at_once(&store, 16).await.len(), 1);
}

#[test]
fn both_backends_have_the_same_migration_versions() {
    let versions = |folder: &str| {
        let mut names: Vec<String> =
            std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(folder))
                .expect("the migrations folder")
                .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                .map(|name| name.split('_').next().unwrap_or_default().to_owned())
                .collect();
        names.sort();
        names
    };
    assert_eq!(
        versions("migrations/sqlite"),
        versions("migrations/postgres")
    );
}

/// Every statement about unfinished jobs reads them through one of the queue's partial indexes: a
/// scan of the whole history, run every few seconds (lease renewals) or at every claim, grows
/// with every job ever kept.
#[tokio::test]
async fn statements_about_unfinished_jobs_use_the_queue_index() {
    let (_dir, store) = sqlite().await;
    let crate::db::Backend::Sqlite(pool) = &*store.backend else {
        unreachable!("a data folder is SQLite")
    };
    for statement in [
        crate::db::PICK_READY_JOB,
        crate::db::RENEW_LEASES,
        crate::db::CANCEL_REQUESTS,
        crate::db::UNFINISHED_JOBS,
    ] {
        let explain = sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {statement}"));
        let plan: Vec<String> = sqlx::query(explain)
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|row| sqlx::Row::get::<String, _>(row, 3))
            .collect();
        // `SCAN table …` or `SEARCH table …`, where `j`, `k` and `jobs` name the job table.
        let reads_jobs = plan.iter().filter(|step| {
            let mut words = step.split(' ');
            matches!(words.next(), Some("SCAN" | "SEARCH"))
                && matches!(words.next(), Some("jobs" | "j" | "k"))
        });
        for step in reads_jobs {
            assert!(
                step.contains("jobs_ready")
                    || step.contains("jobs_due")
                    || step.contains("jobs_held"),
                "{statement}\nreads jobs without the queue's indexes: {plan:?}"
            );
        }
    }
}

fn connection_named(name: &str, secrets: Option<crate::vault::Sealed>) -> crate::StoredConnection {
    let now = Utc::now();
    crate::StoredConnection {
        id: crate::new_id(),
        workspace_id: "default".to_owned(),
        name: name.to_owned(),
        connector: "http".to_owned(),
        fields: json!({ "base_url": "https://api.example.com" })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        secrets,
        limits: Some(json!({ "requests": 10, "per": "1s" })),
        created_at: now,
        updated_at: now,
    }
}

both_backends!(
    connections_are_kept_by_id_and_name,
    |store: Store| async move {
        let crm = connection_named("crm", None);
        store.create_connection(&crm).await.unwrap();
        let by_id = store
            .connection("default", &crm.id)
            .await
            .unwrap()
            .expect("found by id");
        assert_eq!(by_id.name, "crm");
        assert_eq!(by_id.fields, crm.fields);
        assert_eq!(by_id.limits, crm.limits);
        let by_name = store
            .connection("default", "crm")
            .await
            .unwrap()
            .expect("found by name");
        assert_eq!(by_name.id, crm.id);
        assert!(matches!(
            store.create_connection(&connection_named("crm", None)).await,
            Err(StoreError::Conflict(message)) if message.contains("crm")
        ));
        let mut renamed = by_id.clone();
        renamed.name = "sales".to_owned();
        assert!(store.update_connection(&renamed).await.unwrap());
        assert!(store.connection("default", "crm").await.unwrap().is_none());
        assert_eq!(store.connections("default").await.unwrap().len(), 1);
        assert!(store.delete_connection(&crm.id).await.unwrap());
        assert!(!store.delete_connection(&crm.id).await.unwrap());
        assert!(store.connections("default").await.unwrap().is_empty());
    }
);

both_backends!(
    secrets_are_sealed_under_a_data_key_and_survive_a_rotation,
    |store: Store| async move {
        use crate::vault::{MasterKey, Vault, VaultError, rotate_master_key};
        let master = MasterKey::generate();
        let vault = Vault::open(store.clone(), master.clone()).await.unwrap();
        let crm = connection_named("crm", None);
        let sealed = vault
            .seal(
                &format!("connection {}", crm.id),
                br#"{"token":"tok-4242"}"#,
            )
            .await
            .unwrap();
        assert!(!sealed.text.contains("tok-4242"));
        let crm = crate::StoredConnection {
            secrets: Some(sealed),
            ..crm
        };
        store.create_connection(&crm).await.unwrap();
        let row = format!("connection {}", crm.id);
        let stored = store.connection("default", &crm.id).await.unwrap().unwrap();
        let secrets = stored.secrets.clone().unwrap();
        assert_eq!(
            vault.open_sealed(&row, &secrets).await.unwrap().as_slice(),
            br#"{"token":"tok-4242"}"#
        );
        // Another row's name does not open it: a sealed value cannot be moved.
        assert!(
            vault
                .open_sealed("connection other", &secrets)
                .await
                .is_err()
        );

        // After a rotation only the new key opens the store.
        let new = MasterKey::generate();
        assert_eq!(rotate_master_key(&store, &master, &new).await.unwrap(), 1);
        assert!(matches!(
            Vault::open(store.clone(), master.clone()).await,
            Err(VaultError::WrongMasterKey { .. })
        ));
        let reopened = Vault::open(store.clone(), new.clone()).await.unwrap();
        assert_eq!(
            reopened
                .open_sealed(&row, &secrets)
                .await
                .unwrap()
                .as_slice(),
            br#"{"token":"tok-4242"}"#
        );
        // A rotation that is run again (it stopped before its key was swapped) changes nothing.
        assert_eq!(rotate_master_key(&store, &master, &new).await.unwrap(), 0);
    }
);

both_backends!(
    a_lease_has_one_holder_until_it_runs_out,
    |store: Store| async move {
        let long = std::time::Duration::from_secs(60);
        assert!(store.take_lease("subscribe r1", "a", long).await.unwrap());
        assert!(!store.take_lease("subscribe r1", "b", long).await.unwrap());
        // The holder renews its own lease; other names are free.
        assert!(store.take_lease("subscribe r1", "a", long).await.unwrap());
        assert!(store.take_lease("subscribe r2", "b", long).await.unwrap());

        // A lease that ran out goes to the next process that asks.
        let short = std::time::Duration::from_millis(50);
        assert!(store.take_lease("subscribe r3", "a", short).await.unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(120)).await;
        assert!(store.take_lease("subscribe r3", "b", long).await.unwrap());
        assert!(!store.take_lease("subscribe r3", "a", long).await.unwrap());

        // A released lease is free at once; another holder cannot release it.
        store.release_lease("subscribe r1", "b").await.unwrap();
        assert!(!store.take_lease("subscribe r1", "b", long).await.unwrap());
        store.release_lease("subscribe r1", "a").await.unwrap();
        assert!(store.take_lease("subscribe r1", "b", long).await.unwrap());

        // Live processes count themselves; one that stops renewing drops out.
        let brief = std::time::Duration::from_secs(2);
        assert_eq!(store.processes_alive("p1", long).await.unwrap(), 1);
        assert_eq!(store.processes_alive("p2", brief).await.unwrap(), 2);
        assert_eq!(store.processes_alive("p1", long).await.unwrap(), 2);
        tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
        assert_eq!(store.processes_alive("p1", long).await.unwrap(), 1);
    }
);

both_backends!(
    the_audit_log_pages_filters_and_forgets,
    |store: Store| async move {
        for n in 0..5 {
            let mut event = AuditEvent::new(
                DEFAULT_WORKSPACE,
                Some("u1"),
                "ann@example.com",
                if n % 2 == 0 {
                    "recipe.update"
                } else {
                    "token.create"
                },
            );
            event.target_id = Some(format!("r{n}"));
            event.details =
                Some(json!({ "before": { "version": n }, "after": { "version": n + 1 } }));
            event.ip = Some("127.0.0.1".to_owned());
            store.record_audit(&event).await.unwrap();
        }
        let mut elsewhere = AuditEvent::new("other", None, "weft admin", "recipe.update");
        elsewhere.target_id = Some("r0".to_owned());
        store.record_audit(&elsewhere).await.unwrap();

        let page = |filter: AuditFilter| {
            let store = store.clone();
            async move {
                store
                    .audit_events(DEFAULT_WORKSPACE, &filter)
                    .await
                    .unwrap()
            }
        };
        let all = page(AuditFilter {
            limit: 10,
            ..AuditFilter::default()
        })
        .await;
        assert_eq!(all.len(), 5, "another workspace's events are not shown");
        assert_eq!(all[0].target_id.as_deref(), Some("r4"), "newest first");
        assert_eq!(
            all[0].details,
            Some(json!({ "before": { "version": 4 }, "after": { "version": 5 } }))
        );
        let first = page(AuditFilter {
            limit: 2,
            ..AuditFilter::default()
        })
        .await;
        let next = page(AuditFilter {
            limit: 2,
            before: Some(first[1].id.clone()),
            ..AuditFilter::default()
        })
        .await;
        assert_eq!(next[0].target_id.as_deref(), Some("r2"));
        let updates = page(AuditFilter {
            limit: 10,
            action: Some("recipe.update".to_owned()),
            ..AuditFilter::default()
        })
        .await;
        assert_eq!(updates.len(), 3);
        let of_r1 = page(AuditFilter {
            limit: 10,
            target_id: Some("r1".to_owned()),
            ..AuditFilter::default()
        })
        .await;
        assert_eq!(of_r1.len(), 1);

        assert_eq!(
            store
                .forget_audit_before(Utc::now() + chrono::Duration::seconds(1))
                .await
                .unwrap(),
            6
        );
        assert!(
            page(AuditFilter {
                limit: 10,
                ..AuditFilter::default()
            })
            .await
            .is_empty()
        );
    }
);

/// With a long queue (here 100,000 jobs), PostgreSQL's claim reads the queue's `jobs_due`
/// index in due order and stops at the first job, instead of sorting the whole queue.
#[tokio::test]
async fn a_claim_on_a_long_queue_reads_the_due_index() {
    let Some(store) = postgres().await else {
        return;
    };
    let recipe = store
        .create_recipe("default", "Busy", "name: Busy", None)
        .await
        .unwrap();
    let crate::db::Backend::Postgres(pool) = &*store.backend else {
        unreachable!("a PostgreSQL store")
    };
    sqlx::query(
        "INSERT INTO jobs (id, recipe_id, recipe_name, recipe_version, status, trigger, attempt, created_at, run_after, workspace_id) \
         SELECT gen_random_uuid()::text, $1, 'Busy', 1, 'queued', '{}', 0, now() - g * interval '1 ms', now() - g * interval '1 ms', 'default' \
         FROM generate_series(1, 100000) g",
    )
    .bind(&recipe.id)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE jobs").execute(pool).await.unwrap();
    let explain = sqlx::AssertSqlSafe(format!("EXPLAIN {}", crate::db::PICK_READY_JOB_TO_LOCK));
    let plan: Vec<String> = sqlx::query_scalar(explain)
        .bind(chrono::Utc::now())
        .fetch_all(pool)
        .await
        .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("jobs_due"), "{plan}");
    assert!(!plan.contains("Sort"), "{plan}");
    let claimed = store
        .claim_job("worker", std::time::Duration::from_secs(30))
        .await
        .unwrap()
        .expect("a job");
    assert_eq!(claimed.recipe_id, recipe.id);
}

/// One process at a time leads: a second bid waits while the first holds; when the first
/// gives up (or, on PostgreSQL, its connection ends), the second takes the lead.
#[tokio::test]
async fn one_process_at_a_time_leads() {
    let Some(first) = postgres().await else {
        return;
    };
    let url = first_url(&first).await;
    let second = Store::connect(&url).await.unwrap();
    let period = std::time::Duration::from_secs(30);
    let mut leader = first.leadership("scheduler", "first", period);
    let mut standby = second.leadership("scheduler", "second", period);
    assert!(leader.hold().await.unwrap());
    assert!(!standby.hold().await.unwrap());
    assert!(leader.hold().await.unwrap(), "the leader keeps the lead");
    assert!(!standby.hold().await.unwrap());
    // Another installation in another schema of the same database leads its own platform.
    let Some(elsewhere) = postgres().await else {
        return;
    };
    let mut other = elsewhere.leadership("scheduler", "other", period);
    assert!(other.hold().await.unwrap());
    leader.give_up().await;
    assert!(
        standby.hold().await.unwrap(),
        "the lead is free once given up"
    );
    // A leader whose session ends (its process died) lets the lead go at once.
    drop(standby);
    let mut third = first.leadership("scheduler", "third", period);
    let began = std::time::Instant::now();
    while !third.hold().await.unwrap() {
        assert!(
            began.elapsed() < std::time::Duration::from_secs(5),
            "the lead of a closed session was not let go"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The URL a test store was opened with, to open a second one on the same schema.
async fn first_url(store: &Store) -> String {
    let crate::db::Backend::Postgres(pool) = &*store.backend else {
        unreachable!("a PostgreSQL store")
    };
    let schema: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(pool)
        .await
        .unwrap();
    let url = crate::testing::postgres_url();
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-csearch_path%3D{schema}")
}

// On SQLite the lead is a lease: held by one holder until given up or run out.
#[tokio::test]
async fn on_sqlite_the_lead_is_a_lease() {
    let (_dir, store) = sqlite().await;
    let period = std::time::Duration::from_secs(30);
    let mut leader = store.leadership("scheduler", "first", period);
    let mut standby = store.leadership("scheduler", "second", period);
    assert!(leader.hold().await.unwrap());
    assert!(!standby.hold().await.unwrap());
    leader.give_up().await;
    assert!(standby.hold().await.unwrap());
}

both_backends!(
    an_answer_left_for_a_waiting_caller_is_taken_once,
    |store: Store| async move {
        let recipe = store
            .create_recipe("default", "Echo", "name: Echo", Some("echo"))
            .await
            .unwrap();
        let job = store.enqueue_job(&recipe, &json!({})).await.unwrap();
        store
            .post_answer(&job, &json!({"status": 201, "body": "first"}))
            .await
            .unwrap();
        store
            .post_answer(&job, &json!({"status": 200, "body": "second"}))
            .await
            .unwrap();
        assert_eq!(
            store.take_answer(&job).await.unwrap(),
            Some(json!({"status": 201, "body": "first"})),
            "the first answer stands"
        );
        assert_eq!(store.take_answer(&job).await.unwrap(), None);
        store
            .post_answer(&job, &json!({"status": 200}))
            .await
            .unwrap();
        assert_eq!(
            store
                .forget_answers_older_than(std::time::Duration::ZERO)
                .await
                .unwrap(),
            1
        );
        assert_eq!(store.take_answer(&job).await.unwrap(), None);
    }
);

/// What one process says reaches the others listening on the same schema: queued jobs,
/// answers and polls due, each by its own channel.
#[tokio::test]
async fn processes_hear_queued_jobs_and_answers() {
    let Some(speaker) = postgres().await else {
        return;
    };
    let listener_store = Store::connect(&first_url(&speaker).await).await.unwrap();
    let mut events = listener_store
        .platform_events(crate::Listening {
            jobs: true,
            answers: true,
            polls: true,
        })
        .expect("PostgreSQL has a platform");
    let wait = std::time::Duration::from_secs(5);
    assert_eq!(
        tokio::time::timeout(wait, events.next()).await.unwrap(),
        crate::PlatformEvent::Resumed,
        "listening begins"
    );
    speaker.announce_jobs();
    assert_eq!(
        tokio::time::timeout(wait, events.next()).await.unwrap(),
        crate::PlatformEvent::JobsQueued
    );
    let recipe = speaker
        .create_recipe("default", "Echo", "name: Echo", Some("echo"))
        .await
        .unwrap();
    let job = speaker.enqueue_job(&recipe, &json!({})).await.unwrap();
    speaker
        .post_answer(&job, &json!({"status": 200}))
        .await
        .unwrap();
    assert_eq!(
        tokio::time::timeout(wait, events.next()).await.unwrap(),
        crate::PlatformEvent::Answered(job)
    );
    speaker.announce_poll_due(&recipe.id).await.unwrap();
    assert_eq!(
        tokio::time::timeout(wait, events.next()).await.unwrap(),
        crate::PlatformEvent::PollDue(recipe.id.clone())
    );
    let (_dir, sqlite) = sqlite().await;
    assert!(
        sqlite
            .platform_events(crate::Listening {
                jobs: true,
                answers: true,
                polls: true,
            })
            .is_none(),
        "SQLite has one process: nobody to listen to"
    );
}

both_backends!(
    an_older_release_starts_on_a_schema_a_newer_one_brought_further,
    |store: Store| async move {
        let record = "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) \
                      VALUES (99999, 'from a newer release', CURRENT_TIMESTAMP, TRUE, X'00', 0)";
        match &*store.backend {
            crate::db::Backend::Sqlite(pool) => {
                sqlx::query(record).execute(pool).await.unwrap();
            }
            crate::db::Backend::Postgres(pool) => {
                let record = record.replace("X'00'", "'\\x00'::bytea");
                sqlx::query(sqlx::AssertSqlSafe(record))
                    .execute(pool)
                    .await
                    .unwrap();
            }
        }
        store
            .migrate()
            .await
            .expect("a schema with a migration this release does not know still opens");
    }
);
