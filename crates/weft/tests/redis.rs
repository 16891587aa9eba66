//! The redis connector against the real Redis on loopback: its actions through `weft run`,
//! and its subscriptions (a channel, a stream through a consumer group) on `weft serve`.

use serde_json::{Value, json};

use crate::support::own_server::OwnServer;
use crate::support::server::{Backend, Server};
use crate::support::{Ran, run_with, service_answers, write_recipe};

const CACHE: &str = "cache:\n  connector: redis\n  host: 127.0.0.1\n";

fn redis_answers() -> bool {
    service_answers("Redis", "127.0.0.1:6379")
}

/// A name no other run uses.
fn fresh(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|time| time.subsec_nanos())
        .unwrap_or_default();
    format!("weft_test_{prefix}_{}_{nanos}", std::process::id())
}

/// Runs one step of the redis connector with `input` (a YAML flow mapping).
fn redis_step(action: &str, input: &str, connections: &str) -> Ran {
    let (folder, recipe) = write_recipe(&format!(
        "name: Redis\ntrigger: {{ manual: {{}} }}\nsteps:\n  - id: step\n    action: redis.{action}\n    connection: cache\n    input: {input}\n"
    ));
    let file = folder.path().join("connections.yaml");
    std::fs::write(&file, connections).unwrap();
    run_with(
        &recipe,
        &json!({}),
        &["--connections", file.to_str().unwrap()],
    )
}

fn output_of(action: &str, input: &str) -> Value {
    let ran = redis_step(action, input, CACHE);
    assert_eq!(ran.code, 0, "{action}: {:#}", ran.record);
    ran.step("step")["output"].clone()
}

#[test]
fn redis_actions_read_and_write_keys_channels_and_streams() {
    if !redis_answers() {
        return;
    }
    let key = fresh("key");
    assert_eq!(
        output_of("get", &format!("{{ key: {key} }}")),
        json!({ "value": null })
    );
    assert_eq!(
        output_of(
            "set",
            &format!("{{ key: {key}, value: {{ n: 1 }}, ttl: 1 }}")
        ),
        json!({ "written": true })
    );
    assert_eq!(
        output_of("get", &format!("{{ key: {key} }}")),
        json!({ "value": "{\"n\":1}" })
    );
    assert_eq!(
        output_of(
            "set",
            &format!("{{ key: {key}, value: again, only_if_absent: true }}")
        ),
        json!({ "written": false })
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(
        output_of("get", &format!("{{ key: {key} }}")),
        json!({ "value": null }),
        "expired"
    );
    output_of("set", &format!("{{ key: {key}, value: kept }}"));
    assert_eq!(
        output_of("delete", &format!("{{ keys: [{key}, {key}_other] }}")),
        json!({ "deleted": 1 })
    );
    assert_eq!(
        output_of(
            "publish",
            &format!("{{ channel: {}, message: hello }}", fresh("nobody"))
        ),
        json!({ "receivers": 0 })
    );
    let added = output_of(
        "stream_add",
        &format!("{{ stream: {}, fields: {{ order: 7 }} }}", fresh("stream")),
    );
    assert!(added["id"].as_str().unwrap().contains('-'), "{added}");
    // A missing input is found when the recipe is checked, before anything runs.
    let refused = redis_step("set", "{ key: x }", CACHE);
    assert_eq!(refused.code, 2, "{:#}", refused.record);
    assert!(refused.stderr.contains("value"), "{}", refused.stderr);
    let refused = redis_step("set", "{ key: x, value: 1, ttl: -5 }", CACHE);
    assert_eq!(
        refused.record["error"]["kind"], "validation",
        "{:#}",
        refused.record
    );
}

#[test]
fn a_wrong_redis_password_is_a_connector_error_without_the_password() {
    if !redis_answers() {
        return;
    }
    let ran = redis_step(
        "get",
        "{ key: x }",
        "cache:\n  connector: redis\n  host: 127.0.0.1\n  username: nobody_weft\n  password: pw-93b1e7\n",
    );
    assert_eq!(ran.code, 1, "{:#}", ran.record);
    assert_eq!(ran.record["error"]["kind"], "connector", "{:#}", ran.record);
    let text = ran.record.to_string() + &ran.stderr;
    assert!(!text.contains("pw-93b1e7"), "{text}");
    let ran = redis_step(
        "get",
        "{ key: x }",
        "cache:\n  connector: redis\n  host: 127.0.0.1\n  port: 1\n",
    );
    assert_eq!(ran.record["error"]["kind"], "connector", "{:#}", ran.record);
}

async fn save_cache_connection(server: &Server) {
    let connection =
        json!({ "name": "cache", "connector": "redis", "fields": { "host": "127.0.0.1" } });
    server.save_connection(connection).await;
}

/// The payloads of a recipe's jobs, once there are at least `count` and a second passed.
async fn payloads(server: &Server, recipe_id: &str, count: usize) -> Vec<Value> {
    server.job_triggers(recipe_id, count, |_| true).await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let triggers = server.job_triggers(recipe_id, count, |_| true).await;
    triggers
        .into_iter()
        .map(|trigger| trigger["payload"].clone())
        .collect()
}

/// Stream entries become one job each, and are acknowledged: a restart reads none again;
/// entries added while the server is down are read when it is back.
#[tokio::test]
async fn each_stream_entry_makes_one_job_across_a_restart() {
    if !redis_answers() {
        return;
    }
    let mut server = Server::start_with(Backend::Sqlite, &[]).await.unwrap();
    save_cache_connection(&server).await;
    let stream = fresh("orders");
    let recipe = format!(
        "name: Orders\ntrigger:\n  subscribe: {{ connector: redis, connection: cache, stream: {stream}, group: shipping }}\nsteps:\n  - id: n\n    transform: .trigger.payload.order\n"
    );
    let id = server.save_recipe(&recipe).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The group is made at the stream's end when the consumer starts: wait for it.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    for order in 1..=3 {
        output_of(
            "stream_add",
            &format!("{{ stream: {stream}, fields: {{ order: {order} }} }}"),
        );
    }
    let found = payloads(&server, &id, 3).await;
    assert_eq!(
        found,
        vec![
            json!({ "order": "1" }),
            json!({ "order": "2" }),
            json!({ "order": "3" })
        ]
    );

    // An idle stream keeps its consumer: a blocking read that waits for entries is no failure.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let logs = server.logs();
    assert!(!logs.contains("a subscription stopped"), "{logs}");

    server.terminate();
    server.wait();
    output_of(
        "stream_add",
        &format!("{{ stream: {stream}, fields: {{ order: 4 }} }}"),
    );
    server.start_again();
    let found = payloads(&server, &id, 4).await;
    assert_eq!(found.len(), 4, "{found:#?}");
    assert_eq!(found[3], json!({ "order": "4" }));
}

on_both_backends!(
    each_published_message_makes_one_job,
    |server: Server| async move {
        if !redis_answers() {
            return;
        }
        save_cache_connection(&server).await;
        let channel = fresh("news");
        let recipe = format!(
            "name: News\ntrigger:\n  subscribe: {{ connector: redis, connection: cache, channel: {channel} }}\nsteps:\n  - id: n\n    transform: .trigger.payload\n"
        );
        let id = server.save_recipe(&recipe).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        // Until the consumer subscribes, nobody receives: publish until someone does.
        let mut receivers = 0;
        for _ in 0..50 {
            receivers = output_of(
                "publish",
                &format!("{{ channel: {channel}, message: {{ n: 0 }} }}"),
            )["receivers"]
                .as_i64()
                .unwrap_or_default();
            if receivers > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert_eq!(receivers, 1, "the subscription never started");
        for n in 1..=3 {
            output_of(
                "publish",
                &format!("{{ channel: {channel}, message: {{ n: {n} }} }}"),
            );
        }
        let found = payloads(&server, &id, 4).await;
        assert_eq!(
            found,
            vec![
                json!({ "n": 0 }),
                json!({ "n": 1 }),
                json!({ "n": 2 }),
                json!({ "n": 3 })
            ]
        );
    }
);

/// A subscription whose broker goes away comes back by itself when the broker does.
#[tokio::test]
async fn a_subscription_recovers_when_its_broker_comes_back() {
    let redis_args = |port: u16| {
        let port = port.to_string();
        [
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let Some(mut redis) = OwnServer::start("redis-server", redis_args) else {
        return;
    };
    let connections = format!(
        "cache:\n  connector: redis\n  host: 127.0.0.1\n  port: {}\n",
        redis.port
    );
    let server = Server::start_with(Backend::Sqlite, &[]).await.unwrap();
    server
        .save_connection(json!({ "name": "cache", "connector": "redis", "fields": { "host": "127.0.0.1", "port": redis.port } }))
        .await;
    let channel = fresh("recover");
    let recipe = format!(
        "name: News\ntrigger:\n  subscribe: {{ connector: redis, connection: cache, channel: {channel} }}\nsteps:\n  - id: n\n    transform: .trigger.payload\n"
    );
    let id = server.save_recipe(&recipe).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let publish_until_heard = |n: i64| {
        for _ in 0..150 {
            let ran = redis_step(
                "publish",
                &format!("{{ channel: {channel}, message: {{ n: {n} }} }}"),
                &connections,
            );
            if ran.step("step")["output"]["receivers"]
                .as_i64()
                .unwrap_or_default()
                > 0
            {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        false
    };
    assert!(publish_until_heard(1), "the subscription never started");

    redis.stop();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    redis.run();
    assert!(
        publish_until_heard(2),
        "the subscription did not come back with its broker"
    );
    let found = server.job_triggers(&id, 2, |_| true).await;
    let numbers: Vec<&Value> = found
        .iter()
        .map(|trigger| &trigger["payload"]["n"])
        .collect();
    assert_eq!(numbers, vec![&json!(1), &json!(2)]);
    assert!(
        server.logs().contains("a subscription stopped"),
        "{}",
        server.logs()
    );
}

/// On a platform of two processes, a channel (which hands each message to every subscriber)
/// is consumed by one of them, so that each message makes one job; when that process dies,
/// the other takes the subscription over.
#[tokio::test]
async fn a_subscription_is_consumed_by_one_process_of_several() {
    if !redis_answers() {
        return;
    }
    let Some(mut first) = Server::start_with(Backend::Postgres, &[]).await else {
        return;
    };
    save_cache_connection(&first).await;
    let channel = fresh("shared");
    let recipe = format!(
        "name: Shared\ntrigger:\n  subscribe: {{ connector: redis, connection: cache, channel: {channel} }}\nsteps:\n  - id: n\n    transform: .trigger.payload\n"
    );
    let id = first.save_recipe(&recipe).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let publish = |n: i64| {
        output_of(
            "publish",
            &format!("{{ channel: {channel}, message: {{ n: {n} }} }}"),
        )["receivers"]
            .as_i64()
            .unwrap_or_default()
    };
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(200));
    let mut heard = Vec::new();
    let mut n = 0;
    while heard.is_empty() && n < 50 {
        n += 1;
        match publish(n) {
            0 => pause().await,
            receivers => {
                assert_eq!(receivers, 1);
                heard.push(n);
            }
        }
    }
    assert!(!heard.is_empty(), "the subscription never started");

    // A second process looks at the subscriptions every second, and leaves this one alone.
    let second = first.another_process();
    for _ in 0..8 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        n += 1;
        assert_eq!(publish(n), 1, "more than one process consumes the channel");
        heard.push(n);
    }

    // The first process dies; once its lease has run out, the second consumes the channel.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    first.crash();
    let mut taken_over = false;
    for _ in 0..100 {
        n += 1;
        match publish(n) {
            0 => pause().await,
            receivers => {
                assert_eq!(receivers, 1);
                heard.push(n);
                taken_over = true;
                break;
            }
        }
    }
    assert!(
        taken_over,
        "the second process never took the subscription over"
    );
    for _ in 0..3 {
        n += 1;
        assert_eq!(publish(n), 1);
        heard.push(n);
    }

    // Each message heard made one job, whichever process heard it.
    second.job_triggers(&id, heard.len(), |_| true).await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let mut made: Vec<i64> = second
        .job_triggers(&id, heard.len(), |_| true)
        .await
        .iter()
        .map(|trigger| trigger["payload"]["n"].as_i64().unwrap_or_default())
        .collect();
    made.sort_unstable();
    assert_eq!(made, heard);
}
