//! The local HTTP sink of the server benchmark W2 (`bench/server.sh`): answers every POST
//! with a small JSON body, as fast as it can.
//!
//!   cargo run --release --example bench_sink -- 127.0.0.1:18557

use axum::Router;
use axum::routing::post;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18557".to_owned());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    let app = Router::new().route(
        "/{*path}",
        post(|| async { ([("content-type", "application/json")], r#"{"ok":true}"#) }),
    );
    axum::serve(listener, app).await?;
    Ok(())
}
