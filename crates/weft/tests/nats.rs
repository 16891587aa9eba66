//! The nats connector against the real NATS server (with JetStream) on loopback: publish and
//! request through `weft run`, and subscriptions of `weft serve` to a subject and to a stream
//! through a durable consumer.

use serde_json::{Value, json};

use crate::support::own_server::OwnServer;
use crate::support::server::{Backend, Server};
use crate::support::{Ran, run_with, service_answers, write_recipe};

const NATS: &str = "bus:\n  connector: nats\n  host: 127.0.0.1\n";

fn nats_answers() -> bool {
    service_answers("NATS", "127.0.0.1:4222")
}

fn fresh(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|time| time.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}{}x{nanos}", std::process::id())
}

fn nats_step(action: &str, input: &Value) -> Ran {
    nats_step_through(NATS, action, input)
}

/// Runs one step of the nats connector on the server `connections` names `bus`.
fn nats_step_through(connections: &str, action: &str, input: &Value) -> Ran {
    let (folder, recipe) = write_recipe(&format!(
        "name: Nats\ntrigger: {{ manual: {{}} }}\nsteps:\n  - id: step\n    action: nats.{action}\n    connection: bus\n    input: '{{{{ trigger }}}}'\n"
    ));
    let file = folder.path().join("connections.yaml");
    std::fs::write(&file, connections).unwrap();
    run_with(&recipe, input, &["--connections", file.to_str().unwrap()])
}

async fn test_client() -> async_nats::Client {
    async_nats::connect("127.0.0.1:4222")
        .await
        .expect("NATS answers")
}

#[tokio::test]
async fn publish_and_request_reach_the_subject() {
    if !nats_answers() {
        return;
    }
    let client = test_client().await;
    let subject = fresh("weft.test.");
    // A responder, as a service on the bus would be.
    let mut requests = client.subscribe(format!("{subject}.ask")).await.unwrap();
    let responder = client.clone();
    tokio::spawn(async move {
        use futures::StreamExt as _;
        while let Some(request) = requests.next().await {
            if let Some(reply) = request.reply {
                let body: Value = serde_json::from_slice(&request.payload).unwrap_or(Value::Null);
                let answer = json!({ "doubled": body["n"].as_i64().unwrap_or_default() * 2 });
                let _ = responder.publish(reply, answer.to_string().into()).await;
            }
        }
    });
    client.flush().await.unwrap();
    let ran = tokio::task::spawn_blocking({
        let subject = subject.clone();
        move || {
            nats_step(
                "request",
                &json!({ "subject": format!("{subject}.ask"), "message": { "n": 21 } }),
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(ran.code, 0, "{:#}", ran.record);
    assert_eq!(
        ran.step("step")["output"],
        json!({ "reply": { "doubled": 42 } })
    );

    let silent = tokio::task::spawn_blocking({
        let subject = subject.clone();
        move || nats_step("request", &json!({ "subject": format!("{subject}.nobody"), "message": "hi", "timeout": "300ms" }))
    })
    .await
    .unwrap();
    assert_eq!(silent.code, 1, "{:#}", silent.record);
    assert_ne!(
        silent.record["error"]["kind"], "validation",
        "{:#}",
        silent.record
    );

    let mut published = client.subscribe(format!("{subject}.news")).await.unwrap();
    client.flush().await.unwrap();
    let ran = tokio::task::spawn_blocking({
        let subject = subject.clone();
        move || {
            nats_step(
                "publish",
                &json!({ "subject": format!("{subject}.news"), "message": { "n": 1 } }),
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(ran.step("step")["output"], json!({ "published": true }));
    use futures::StreamExt as _;
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), published.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&got.payload).unwrap(),
        json!({ "n": 1 })
    );
}

/// A stream's messages make one job each through a durable consumer, acknowledged: a restart
/// of the server reads none again, and those published while it was down arrive when it is back.
#[tokio::test]
async fn each_stream_message_makes_one_job_across_a_restart() {
    if !nats_answers() {
        return;
    }
    let client = test_client().await;
    let jetstream = async_nats::jetstream::new(client.clone());
    let name = fresh("WEFT_TEST_");
    let subject = format!("weft.stream.{name}");
    jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![format!("{subject}.>")],
            ..Default::default()
        })
        .await
        .unwrap();
    let publish = |n: i64| {
        let js = jetstream.clone();
        let subject = format!("{subject}.order");
        async move {
            js.publish(subject, json!({ "n": n }).to_string().into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    };
    let mut server = Server::start_with(Backend::Sqlite, &[]).await.unwrap();
    server
        .save_connection(
            json!({ "name": "bus", "connector": "nats", "fields": { "host": "127.0.0.1" } }),
        )
        .await;
    let recipe = format!(
        "name: Orders\ntrigger:\n  subscribe: {{ connector: nats, connection: bus, stream: {name}, durable: shipping }}\nsteps:\n  - id: n\n    transform: .trigger.payload.n\n"
    );
    let id = server.save_recipe(&recipe).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for n in 1..=3 {
        publish(n).await;
    }
    let found = server.job_triggers(&id, 3, |_| true).await;
    let numbers: Vec<&Value> = found
        .iter()
        .map(|trigger| &trigger["payload"]["n"])
        .collect();
    assert_eq!(numbers, vec![&json!(1), &json!(2), &json!(3)]);

    server.terminate();
    server.wait();
    publish(4).await;
    server.start_again();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let found = server.job_triggers(&id, 4, |_| true).await;
    assert_eq!(found.len(), 4, "{found:#?}");
    assert_eq!(found[3]["payload"], json!({ "n": 4 }));
    let _ = jetstream.delete_stream(&name).await;
}

on_both_backends!(
    each_message_on_a_subject_makes_one_job,
    |server: Server| async move {
        if !nats_answers() {
            return;
        }
        let client = test_client().await;
        server
            .save_connection(
                json!({ "name": "bus", "connector": "nats", "fields": { "host": "127.0.0.1" } }),
            )
            .await;
        let subject = fresh("weft.news.");
        let recipe = format!(
            "name: News\ntrigger:\n  subscribe: {{ connector: nats, connection: bus, subject: '{subject}.*' }}\nsteps:\n  - id: n\n    transform: .trigger.payload\n"
        );
        let id = server.save_recipe(&recipe).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let probe = |_| {
            nats_step(
                "publish",
                &json!({ "subject": format!("{subject}.probe"), "message": { "n": 0 } }),
            );
        };
        let heard = server.probe_until_heard(&id, probe).await;
        assert!(heard.is_some(), "no message made a job");
        for n in 1..=3 {
            client
                .publish(
                    format!("{subject}.item"),
                    json!({ "n": n }).to_string().into(),
                )
                .await
                .unwrap();
        }
        client.flush().await.unwrap();
        let found = server
            .job_triggers(&id, 3, |trigger| trigger["payload"]["n"] != 0)
            .await;
        let numbers: Vec<&Value> = found
            .iter()
            .map(|trigger| &trigger["payload"]["n"])
            .collect();
        assert_eq!(numbers, vec![&json!(1), &json!(2), &json!(3)]);
    }
);

/// A subscription whose NATS server goes away (one of the test's own, killed and started
/// again) comes back when the server does.
#[tokio::test]
async fn a_subscription_recovers_when_its_server_comes_back() {
    let nats_args = |port: u16| {
        let port = port.to_string();
        ["-a", "127.0.0.1", "-p", &port].map(str::to_owned).to_vec()
    };
    let Some(mut nats) = OwnServer::start("nats-server", nats_args) else {
        return;
    };
    let server = Server::start_with(Backend::Sqlite, &[]).await.unwrap();
    let fields = json!({ "host": "127.0.0.1", "port": nats.port });
    server
        .save_connection(json!({ "name": "bus", "connector": "nats", "fields": fields }))
        .await;
    let subject = fresh("weft.recover.");
    let recipe = format!(
        "name: News\ntrigger:\n  subscribe: {{ connector: nats, connection: bus, subject: '{subject}' }}\nsteps:\n  - id: n\n    transform: .trigger.payload\n"
    );
    let id = server.save_recipe(&recipe).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let connections = format!(
        "bus:\n  connector: nats\n  host: 127.0.0.1\n  port: {}\n",
        nats.port
    );
    let send = |n: i64| {
        nats_step_through(
            &connections,
            "publish",
            &json!({ "subject": subject, "message": { "n": n } }),
        );
    };
    assert!(
        server.probe_until_heard(&id, send).await.is_some(),
        "the subscription never started"
    );

    nats.stop();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    nats.run();
    assert!(
        server.probe_until_heard(&id, send).await.is_some(),
        "the subscription did not come back with its server"
    );
}
