//! The amqp connector against the real RabbitMQ on loopback: publishing through `weft run`,
//! and a queue consumed by `weft serve` with each message acknowledged once its job is
//! committed. The test declares and inspects its queues with its own AMQP client.

use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use serde_json::{Value, json};

use crate::support::server::{Backend, Server};
use crate::support::{run_with, service_answers, write_recipe};

const RABBIT: &str =
    "rabbit:\n  connector: amqp\n  host: 127.0.0.1\n  username: guest\n  password: guest\n";

fn rabbit_answers() -> bool {
    service_answers("RabbitMQ", "127.0.0.1:5672")
}

/// A channel of the test's own, to declare, inspect and delete queues.
async fn test_channel() -> (lapin::Connection, lapin::Channel) {
    let connection = lapin::Connection::connect(
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("RabbitMQ answers");
    let channel = connection.create_channel().await.unwrap();
    (connection, channel)
}

/// A fresh queue; returns its name.
async fn fresh_queue(channel: &lapin::Channel, prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|time| time.subsec_nanos())
        .unwrap_or_default();
    let name = format!("weft_test_{prefix}_{}_{nanos}", std::process::id());
    channel
        .queue_declare(
            name.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    name
}

/// Messages ready in a queue (not counting those delivered and not acknowledged).
async fn ready(channel: &lapin::Channel, queue: &str) -> u32 {
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .unwrap()
        .message_count()
}

/// Publishes through the amqp connector, as a recipe step does.
fn publish(queue: &str, message: &Value) {
    let (folder, recipe) = write_recipe(
        "name: Publish\ntrigger: { manual: {} }\nsteps:\n  - id: send\n    action: amqp.publish\n    connection: rabbit\n    input: { routing_key: '{{ trigger.queue }}', message: '{{ trigger.message }}', headers: { source: weft-test, attempt: 1 } }\n",
    );
    let connections = folder.path().join("connections.yaml");
    std::fs::write(&connections, RABBIT).unwrap();
    let ran = run_with(
        &recipe,
        &json!({ "queue": queue, "message": message }),
        &["--connections", connections.to_str().unwrap()],
    );
    assert_eq!(ran.code, 0, "{:#}", ran.record);
    assert_eq!(ran.step("send")["output"], json!({ "confirmed": true }));
}

#[tokio::test]
async fn a_published_message_arrives_with_its_headers() {
    if !rabbit_answers() {
        return;
    }
    let (_connection, channel) = test_channel().await;
    let queue = fresh_queue(&channel, "publish").await;
    publish(&queue, &json!({ "order": 7 }));
    let got = channel
        .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("a message in the queue");
    let body: Value = serde_json::from_slice(&got.delivery.data).unwrap();
    assert_eq!(body, json!({ "order": 7 }));
    let properties = &got.delivery.properties;
    assert_eq!(
        properties.content_type().as_ref().map(|t| t.as_str()),
        Some("application/json")
    );
    assert_eq!(*properties.delivery_mode(), Some(2));
    let headers = properties.headers().as_ref().unwrap().inner();
    match headers.get("source") {
        Some(lapin::types::AMQPValue::LongString(text)) => {
            assert_eq!(text.to_string(), "weft-test")
        }
        other => panic!("header source: {other:?}"),
    }
    assert!(
        matches!(
            headers.get("attempt"),
            Some(lapin::types::AMQPValue::LongLongInt(1))
        ),
        "{headers:?}"
    );
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
}

/// The payloads of a recipe's jobs once there are `count`.
async fn payloads(server: &Server, recipe_id: &str, count: usize) -> Vec<Value> {
    let triggers = server.job_triggers(recipe_id, count, |_| true).await;
    triggers
        .into_iter()
        .map(|trigger| trigger["payload"].clone())
        .collect()
}

/// Each message makes one job and is acknowledged: after the server stops, nothing comes
/// back to the queue; messages sent while it is down are consumed when it is back.
#[tokio::test]
async fn each_queued_message_makes_one_job_and_is_acknowledged() {
    if !rabbit_answers() {
        return;
    }
    let (_connection, channel) = test_channel().await;
    let queue = fresh_queue(&channel, "orders").await;
    let mut server = Server::start_with(Backend::Sqlite, &[]).await.unwrap();
    let connection = json!({
        "name": "rabbit", "connector": "amqp",
        "fields": { "host": "127.0.0.1", "username": "guest", "password": "guest" }
    });
    server.save_connection(connection).await;
    let recipe = format!(
        "name: Orders\ntrigger:\n  subscribe: {{ connector: amqp, connection: rabbit, queue: {queue} }}\nsteps:\n  - id: n\n    transform: .trigger.payload.order\n"
    );
    let id = server.save_recipe(&recipe).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for order in 1..=3 {
        publish(&queue, &json!({ "order": order }));
    }
    let found = payloads(&server, &id, 3).await;
    assert_eq!(
        found,
        vec![
            json!({ "order": 1 }),
            json!({ "order": 2 }),
            json!({ "order": 3 })
        ]
    );

    server.terminate();
    server.wait();
    assert_eq!(
        ready(&channel, &queue).await,
        0,
        "a message was not acknowledged"
    );
    publish(&queue, &json!({ "order": 4 }));
    assert_eq!(ready(&channel, &queue).await, 1);
    server.start_again();
    let found = payloads(&server, &id, 4).await;
    assert_eq!(found.len(), 4, "{found:#?}");
    assert_eq!(found[3], json!({ "order": 4 }));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(ready(&channel, &queue).await, 0);
    drop(server);
    let _ = channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
}

#[test]
fn a_wrong_broker_password_is_a_connector_error_without_the_password() {
    if !rabbit_answers() {
        return;
    }
    let (folder, recipe) = write_recipe(
        "name: Publish\ntrigger: { manual: {} }\nsteps:\n  - id: send\n    action: amqp.publish\n    connection: rabbit\n    input: { routing_key: nowhere, message: hi }\n",
    );
    let connections = folder.path().join("connections.yaml");
    std::fs::write(
        &connections,
        "rabbit:\n  connector: amqp\n  host: 127.0.0.1\n  username: guest\n  password: pw-5c2e81\n",
    )
    .unwrap();
    let ran = run_with(
        &recipe,
        &json!({}),
        &["--connections", connections.to_str().unwrap()],
    );
    assert_eq!(ran.code, 1, "{:#}", ran.record);
    assert_eq!(ran.record["error"]["kind"], "connector", "{:#}", ran.record);
    let text = ran.record.to_string() + &ran.stderr;
    assert!(!text.contains("pw-5c2e81"), "{text}");
}

/// A subscription whose broker connection drops (a proxy in front of RabbitMQ is cut, as a
/// network fault or a broker restart would) comes back by itself; messages sent meanwhile
/// wait in the queue, and each makes one job once it is back.
#[tokio::test]
async fn a_subscription_recovers_when_its_broker_connection_drops() {
    if !rabbit_answers() {
        return;
    }
    let proxy = crate::support::tcp_proxy::TcpProxy::start("127.0.0.1:5672");
    let port = proxy.address.rsplit(':').next().unwrap().to_owned();
    let (_connection, channel) = test_channel().await;
    let queue = fresh_queue(&channel, "dropped").await;
    let server = Server::start_with(Backend::Sqlite, &[]).await.unwrap();
    let connection = json!({
        "name": "rabbit", "connector": "amqp",
        "fields": { "host": "127.0.0.1", "port": port, "username": "guest", "password": "guest" }
    });
    server.save_connection(connection).await;
    let recipe = format!(
        "name: Orders\ntrigger:\n  subscribe: {{ connector: amqp, connection: rabbit, queue: {queue} }}\nsteps:\n  - id: n\n    transform: .trigger.payload.order\n"
    );
    let id = server.save_recipe(&recipe).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    publish(&queue, &json!({ "order": 1 }));
    assert_eq!(payloads(&server, &id, 1).await, vec![json!({ "order": 1 })]);

    proxy.cut();
    publish(&queue, &json!({ "order": 2 }));
    publish(&queue, &json!({ "order": 3 }));
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        ready(&channel, &queue).await,
        2,
        "nobody consumes while cut"
    );
    proxy.restore();
    let found = payloads(&server, &id, 3).await;
    assert_eq!(
        found,
        vec![
            json!({ "order": 1 }),
            json!({ "order": 2 }),
            json!({ "order": 3 })
        ]
    );
    assert!(
        server.logs().contains("a subscription stopped"),
        "{}",
        server.logs()
    );
    drop(server);
    let _ = channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
}
