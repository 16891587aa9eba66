//! The local HTTP sink of the server benchmarks (`bench/server.sh`, `bench/scale.sh`): answers
//! every POST with a small JSON body, as fast as it can, or after `?ms=N` milliseconds, as a
//! remote API that takes its time.
//!
//!   cargo run --release --example bench_sink -- 127.0.0.1:18557

use axum::Router;
use axum::extract::Query;
use axum::routing::post;
use std::collections::HashMap;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18557".to_owned());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    let app = Router::new().route(
        "/{*path}",
        post(|Query(query): Query<HashMap<String, String>>| async move {
            let ms = query.get("ms").and_then(|ms| ms.parse().ok()).unwrap_or(0);
            if ms > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            ([("content-type", "application/json")], r#"{"ok":true}"#)
        }),
    );
    axum::serve(listener, app).await?;
    Ok(())
}
