//! The mqtt connector against the real Mosquitto on loopback: publishing through `weft run`,
//! and a topic filter consumed by `weft serve`, with messages sent while it is away delivered
//! when it is back.

use serde_json::{Value, json};

use crate::support::own_server::OwnServer;
use crate::support::server::{Backend, Server};
use crate::support::{Ran, run_with, service_answers, write_recipe};

const BROKER: &str = "broker:\n  connector: mqtt\n  host: 127.0.0.1\n";

fn mosquitto_answers() -> bool {
    service_answers("Mosquitto", "127.0.0.1:1883")
}

fn publish(topic: &str, message: &Value, qos: u8) -> Ran {
    publish_through(BROKER, topic, message, qos)
}

/// Publishes through the mqtt connector to the broker `connections` names `broker`.
fn publish_through(connections: &str, topic: &str, message: &Value, qos: u8) -> Ran {
    let (folder, recipe) = write_recipe(&format!(
        "name: Publish\ntrigger: {{ manual: {{}} }}\nsteps:\n  - id: send\n    action: mqtt.publish\n    connection: broker\n    input: {{ topic: '{{{{ trigger.topic }}}}', message: '{{{{ trigger.message }}}}', qos: {qos} }}\n"
    ));
    let file = folder.path().join("connections.yaml");
    std::fs::write(&file, connections).unwrap();
    run_with(
        &recipe,
        &json!({ "topic": topic, "message": message }),
        &["--connections", file.to_str().unwrap()],
    )
}

fn fresh_topic() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|time| time.subsec_nanos())
        .unwrap_or_default();
    format!("weft/test/{}-{nanos}", std::process::id())
}

#[test]
fn publishing_waits_for_the_broker_with_qos_1() {
    if !mosquitto_answers() {
        return;
    }
    let topic = fresh_topic();
    let ran = publish(&format!("{topic}/a"), &json!({ "n": 1 }), 1);
    assert_eq!(ran.code, 0, "{:#}", ran.record);
    assert_eq!(ran.step("send")["output"], json!({ "acknowledged": true }));
    let ran = publish(&format!("{topic}/a"), &json!({ "n": 1 }), 0);
    assert_eq!(ran.step("send")["output"], json!({ "acknowledged": false }));
    let ran = publish(&format!("{topic}/+"), &json!({ "n": 1 }), 1);
    assert_eq!(
        ran.record["error"]["kind"], "validation",
        "{:#}",
        ran.record
    );
}

/// The payloads of a recipe's jobs other than the probes (`n` 0), once there are `count`.
async fn messages(server: &Server, recipe_id: &str, count: usize) -> Vec<Value> {
    let triggers = server
        .job_triggers(recipe_id, count, |trigger| trigger["payload"]["n"] != 0)
        .await;
    triggers
        .into_iter()
        .map(|trigger| trigger["payload"].clone())
        .collect()
}

#[tokio::test]
async fn each_message_on_a_topic_filter_makes_one_job_also_while_away() {
    if !mosquitto_answers() {
        return;
    }
    let mut server = Server::start_with(Backend::Sqlite, &[]).await.unwrap();
    let connection =
        json!({ "name": "broker", "connector": "mqtt", "fields": { "host": "127.0.0.1" } });
    server.save_connection(connection).await;
    let topic = fresh_topic();
    let recipe = format!(
        "name: Sensors\ntrigger:\n  subscribe: {{ connector: mqtt, connection: broker, topic: '{topic}/+' }}\nsteps:\n  - id: n\n    transform: .trigger.payload.n\n"
    );
    let id = server.save_recipe(&recipe).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let heard = server
        .probe_until_heard(&id, |_| {
            publish(&format!("{topic}/probe"), &json!({ "n": 0 }), 1);
        })
        .await;
    assert!(heard.is_some(), "no message made a job");
    for n in 1..=3 {
        publish(&format!("{topic}/room{n}"), &json!({ "n": n }), 1);
    }
    let found = messages(&server, &id, 3).await;
    assert_eq!(
        found,
        vec![json!({ "n": 1 }), json!({ "n": 2 }), json!({ "n": 3 })]
    );

    // Away: the broker keeps the QoS 1 message for the recipe's session.
    server.terminate();
    server.wait();
    publish(&format!("{topic}/room4"), &json!({ "n": 4 }), 1);
    server.start_again();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let found = messages(&server, &id, 4).await;
    assert_eq!(found.len(), 4, "{found:#?}");
    assert_eq!(found[3], json!({ "n": 4 }));
}

/// A subscription whose broker goes away (a Mosquitto of the test's own, killed and started
/// again) comes back by itself when the broker does.
#[tokio::test]
async fn a_subscription_recovers_when_its_broker_comes_back() {
    let mosquitto_args = |port: u16| vec!["-p".to_owned(), port.to_string()];
    let Some(mut mosquitto) = OwnServer::start("mosquitto", mosquitto_args) else {
        return;
    };
    let server = Server::start_with(Backend::Sqlite, &[]).await.unwrap();
    let fields = json!({ "host": "127.0.0.1", "port": mosquitto.port });
    server
        .save_connection(json!({ "name": "broker", "connector": "mqtt", "fields": fields }))
        .await;
    let topic = fresh_topic();
    let recipe = format!(
        "name: Sensors\ntrigger:\n  subscribe: {{ connector: mqtt, connection: broker, topic: '{topic}/+' }}\nsteps:\n  - id: n\n    transform: .trigger.payload.n\n"
    );
    let id = server.save_recipe(&recipe).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let connections = format!(
        "broker:\n  connector: mqtt\n  host: 127.0.0.1\n  port: {}\n",
        mosquitto.port
    );
    let send = |n: i64| {
        publish_through(
            &connections,
            &format!("{topic}/probe"),
            &json!({ "n": n }),
            1,
        );
    };
    assert!(
        server.probe_until_heard(&id, send).await.is_some(),
        "the subscription never started"
    );

    mosquitto.stop();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    mosquitto.run();
    assert!(
        server.probe_until_heard(&id, send).await.is_some(),
        "the subscription did not come back with its broker"
    );
    assert!(
        server.logs().contains("a subscription stopped"),
        "{}",
        server.logs()
    );
}
