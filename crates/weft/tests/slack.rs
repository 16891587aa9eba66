//! The slack connector against a stand-in for Slack's Web API: a message posted and updated,
//! text uploaded as a file to a channel, and Slack's refusals as connector errors.

use serde_json::{Value, json};

use crate::support::slack_server::{BOT_TOKEN, SlackServer};
use crate::support::{Ran, run_with, write_recipe};

fn run_steps(slack: &SlackServer, token: &str, steps: &str) -> Ran {
    let (folder, recipe) = write_recipe(&format!(
        "name: Slack\ntrigger: {{ manual: {{}} }}\nsteps:\n{steps}"
    ));
    let connections = folder.path().join("connections.yaml");
    std::fs::write(
        &connections,
        format!(
            "team:\n  connector: slack\n  token: {token}\n  base_url: {}/api\n",
            slack.base
        ),
    )
    .unwrap();
    run_with(
        &recipe,
        &json!({ "report": "id,total\n1,9.50\n" }),
        &["--connections", connections.to_str().unwrap()],
    )
}

fn state(slack: &SlackServer) -> Value {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            reqwest::get(format!("{}/state", slack.base))
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        })
}

#[test]
fn messages_are_posted_updated_and_files_uploaded() {
    let slack = SlackServer::start();
    let ran = run_steps(
        &slack,
        BOT_TOKEN,
        "  - id: post\n    action: slack.post_message\n    connection: team\n    input: { channel: C123, text: Deploying… }\n  - id: done\n    action: slack.update_message\n    connection: team\n    input: { channel: C123, ts: '{{ steps.post.output.ts }}', text: Deployed }\n  - id: report\n    action: slack.upload_text\n    connection: team\n    input: { channel: C123, filename: report.csv, content: '{{ trigger.report }}', comment: Today's orders }\n",
    );
    assert_eq!(ran.code, 0, "{:#}\n{}", ran.record, ran.stderr);
    assert_eq!(
        ran.step("report")["output"]["files"][0]["title"],
        "report.csv"
    );
    let seen = state(&slack);
    assert_eq!(seen["messages"].as_array().unwrap().len(), 1);
    assert_eq!(seen["messages"][0]["text"], "Deployed");
    let file = &seen["files"]["F1"];
    assert_eq!(file["content"], "id,total\n1,9.50\n");
    assert_eq!(
        (file["channel"].as_str(), file["comment"].as_str()),
        (Some("C123"), Some("Today's orders"))
    );
}

#[test]
fn slacks_refusals_are_connector_errors() {
    let slack = SlackServer::start();
    let step = "  - id: post\n    action: slack.post_message\n    connection: team\n    input: { channel: C404, text: Hello }\n";
    let ran = run_steps(&slack, BOT_TOKEN, step);
    assert_eq!(ran.record["error"]["kind"], "connector", "{:#}", ran.record);
    assert!(
        ran.record["error"]["message"]
            .as_str()
            .unwrap()
            .contains("channel_not_found")
    );
    let ran = run_steps(&slack, "xoxb-wrong-4411", &step.replace("C404", "C123"));
    assert!(
        ran.record["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid_auth"),
        "{:#}",
        ran.record
    );
    assert!(!ran.record.to_string().contains("xoxb-wrong-4411"));
}
