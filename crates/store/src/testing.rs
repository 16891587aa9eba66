//! For tests, this crate's and those of the crates above it, that need a real PostgreSQL:
//! a fresh schema each; without a server, a printed reason to skip, or a failure under
//! `WEFT_REQUIRE_SERVICES=1`. Not part of the store's interface.

use std::io::Write;
use std::time::Duration;

use crate::Store;

/// Test schemas older than this were left by earlier runs, and are dropped.
const LEFT_OVER_AFTER: Duration = Duration::from_secs(60 * 60);

/// Where the PostgreSQL of the tests is: `WEFT_TEST_POSTGRES_URL`, or the local server.
pub fn postgres_url() -> String {
    std::env::var("WEFT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_owned())
}

/// A database URL on a fresh, empty schema of the tests' PostgreSQL, or `None` when no server
/// answers (the reason is printed where the test harness does not swallow it).
///
/// # Panics
/// When PostgreSQL is required (`WEFT_REQUIRE_SERVICES=1`) and does not answer, or when the
/// schema cannot be made.
pub async fn postgres_schema_url() -> Option<String> {
    let url = postgres_url();
    let admin = match Store::connect(&url).await {
        Ok(store) => store,
        Err(error) => {
            assert!(
                std::env::var("WEFT_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "PostgreSQL is required (WEFT_REQUIRE_SERVICES=1) but {url} cannot be reached: {error}"
            );
            // Straight to stderr: the harness captures `eprintln!` of a passing test.
            let _ = writeln!(
                std::io::stderr(),
                "skipped: PostgreSQL at {url} cannot be reached ({error})"
            );
            return None;
        }
    };
    drop_left_over_schemas(&admin).await;
    let schema = format!("weft_test_{}", crate::new_id().replace('-', "_"));
    admin
        .create_schema(&schema)
        .await
        .unwrap_or_else(|error| panic!("cannot create the test schema {schema}: {error}"));
    let separator = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{separator}options=-csearch_path%3D{schema}"))
}

/// Drops the test schemas of runs long over: their names hold the time they were made (a
/// UUIDv7), and a run takes minutes.
async fn drop_left_over_schemas(admin: &Store) {
    let cutoff = crate::db::first_id_at(
        chrono::Utc::now() - chrono::Duration::from_std(LEFT_OVER_AFTER).unwrap_or_default(),
    )
    .replace('-', "_");
    let crate::db::Backend::Postgres(pool) = &*admin.backend else {
        return;
    };
    let old: Vec<String> = sqlx::query_scalar(
        "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'weft\\_test\\_%' AND nspname < $1",
    )
    .bind(format!("weft_test_{cutoff}"))
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    for schema in old {
        // Another run may be dropping it too.
        let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
        let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(pool).await;
    }
}
