//! Fills a Weft server's job history for the data-subject benchmark (`bench/subjects.sh`):
//! posts `count` events to a webhook, `concurrency` at a time, each a different person's;
//! every `every`-th event holds the subject's email instead (in the event's `email`, and in
//! a note in another case).
//!
//!   cargo run --release --example bench_load -- http://127.0.0.1:18555/hooks/crm 100000 16 1000 subject@example.com

use anyhow::Context;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, count, concurrency, every, subject] = args.as_slice() else {
        anyhow::bail!("usage: bench_load <webhook url> <count> <concurrency> <every> <subject>");
    };
    let count: u64 = count.parse().context("count")?;
    let concurrency: usize = concurrency.parse().context("concurrency")?;
    let every: u64 = every.parse().context("every")?;
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    for _ in 0..concurrency {
        let (client, next, failures) = (client.clone(), next.clone(), failures.clone());
        let (url, subject) = (url.clone(), subject.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    break;
                }
                let body = if n % every == every - 1 {
                    json!({ "email": subject, "name": format!("Person {n}"),
                            "note": format!("write to {} please", subject.to_uppercase()) })
                } else {
                    json!({ "email": format!("person-{n}@example.com"), "name": format!("Person {n}"),
                            "note": "nothing to say" })
                };
                let sent = client.post(&url).json(&body).send().await;
                if !sent.is_ok_and(|response| response.status().is_success()) {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for sender in senders {
        sender.await?;
    }
    let failed = failures.load(Ordering::Relaxed);
    println!("sent {count} events, {failed} failed");
    anyhow::ensure!(failed == 0, "{failed} events were not accepted");
    Ok(())
}
