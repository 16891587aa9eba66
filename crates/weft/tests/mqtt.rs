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

/// A CA and a certificate for 127.0.0.1 signed by it, made with the `openssl` command in
/// `folder`; false (with the reason printed) when the machine has no `openssl`.
fn make_certificates(folder: &std::path::Path) -> bool {
    let openssl = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .current_dir(folder)
            .output()
    };
    let Ok(version) = openssl(&["version"]) else {
        assert!(
            std::env::var("WEFT_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "openssl is required (WEFT_REQUIRE_SERVICES=1) but is not installed"
        );
        eprintln!("skipped: no openssl to make certificates with");
        return false;
    };
    assert!(version.status.success());
    std::fs::write(
        folder.join("server.ext"),
        "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    let steps: [Vec<&str>; 3] = [
        [
            &[
                "req",
                "-x509",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=Weft test CA",
            ][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
        [
            &["req", "-nodes", "-subj", "/CN=127.0.0.1"][..],
            &ec,
            &["-keyout", "server.key", "-out", "server.csr"],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    ];
    for step in steps {
        let made = openssl(&step).unwrap();
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
    }
    true
}

/// Over TLS, a broker whose certificate comes from a CA of its own is reached when the
/// connection names that CA, and refused with a reason when it does not.
#[test]
fn a_broker_is_reached_over_tls_with_its_own_ca() {
    let folder = tempfile::tempdir().unwrap();
    if !make_certificates(folder.path()) {
        return;
    }
    let config = folder.path().join("mosquitto.conf");
    let path = |name: &str| folder.path().join(name).display().to_string();
    let mosquitto_args = |port: u16| {
        std::fs::write(
            &config,
            format!(
                "user root\nlistener {port} 127.0.0.1\ncertfile {}\nkeyfile {}\nallow_anonymous true\n",
                path("server.pem"),
                path("server.key")
            ),
        )
        .unwrap();
        vec!["-c".to_owned(), config.display().to_string()]
    };
    let Some(mosquitto) = OwnServer::start("mosquitto", mosquitto_args) else {
        return;
    };
    let ca = std::fs::read_to_string(folder.path().join("ca.pem")).unwrap();
    let indented: String = ca.lines().map(|line| format!("    {line}\n")).collect();
    let trusted = format!(
        "broker:\n  connector: mqtt\n  host: 127.0.0.1\n  port: {}\n  tls: true\n  ca_certificate: |\n{indented}",
        mosquitto.port
    );
    let ran = publish_through(&trusted, "weft/test/tls", &json!({ "n": 1 }), 1);
    assert_eq!(ran.code, 0, "{:#}", ran.record);
    assert_eq!(ran.step("send")["output"], json!({ "acknowledged": true }));

    let untrusted = format!(
        "broker:\n  connector: mqtt\n  host: 127.0.0.1\n  port: {}\n  tls: true\n",
        mosquitto.port
    );
    let ran = publish_through(&untrusted, "weft/test/tls", &json!({ "n": 2 }), 1);
    assert_eq!(ran.record["error"]["kind"], "connector", "{:#}", ran.record);
    let message = ran.record["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("certificate"), "{message}");
}
