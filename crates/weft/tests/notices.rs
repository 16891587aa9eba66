//! Failure notices: a storm of failed jobs sends each address one digest, to the recipe's
//! `on_failure.notify` and to the workspace's owners, naming jobs but holding none of their data.

use serde_json::json;

use crate::support::server::{Backend, Server};
use crate::support::smtp_server::{PASSWORD as SMTP_PASSWORD, SmtpServer, USER as SMTP_USER};

const FLAKY: &str = "name: Flaky\ntrigger:\n  webhook: { path: flaky }\non_failure: { notify: [oncall@example.com] }\nsteps:\n  - id: boom\n    transform: 'error(\"refused \" + .trigger.body.secret)'\n";
const QUIET: &str = "name: Quiet\ntrigger:\n  webhook: { path: quiet }\nsteps:\n  - id: boom\n    transform: 'error(\"no\")'\n";
const STORM: usize = 20;
const ALERTS: &str = "ann.alerts@example.com";

/// How many failures the mails to `to` list, and how many mails there were.
fn listed_to(smtp: &SmtpServer, to: &str, recipe: &str) -> (usize, usize) {
    let mails: Vec<String> = smtp
        .received()
        .into_iter()
        .filter(|mail| mail.to.iter().any(|address| address.contains(to)))
        .map(|mail| mail.data.replace("=\r\n", "").replace("=3D", "="))
        .collect();
    let listed = mails
        .iter()
        .map(|mail| mail.matches(&format!(" {recipe}: http")).count())
        .sum();
    (listed, mails.len())
}

async fn a_storm_of_failures_sends_one_digest(backend: Backend) {
    let smtp = SmtpServer::start();
    let options = ["--mail-connection", "mailer", "--notify-every", "2s"];
    let Some(server) = Server::start_with(backend, &options).await else {
        return;
    };
    server
        .save_connection(json!({
            "name": "mailer", "connector": "email",
            "fields": {
                "host": "127.0.0.1", "port": smtp.port, "security": "none",
                "username": SMTP_USER, "password": SMTP_PASSWORD, "from": "Weft <weft@example.com>"
            }
        }))
        .await;
    // The owner (ann@example.com) gives an address for notices: they go there instead.
    let (status, _) = server
        .api(
            reqwest::Method::PATCH,
            "/api/v1/me",
            Some(json!({ "notification_emails": [ALERTS] }).to_string()),
        )
        .await;
    assert_eq!(status, 200);
    server.save_recipe(FLAKY).await;
    server.save_recipe(QUIET).await;
    let mut jobs = Vec::new();
    for n in 0..STORM {
        let accepted = server
            .hook(
                "/hooks/flaky",
                json!({ "secret": format!("payload-7{n:03}") }),
            )
            .await;
        jobs.push(accepted["job_id"].as_str().unwrap().to_owned());
    }
    let quiet = server.hook("/hooks/quiet", json!({})).await;
    jobs.push(quiet["job_id"].as_str().unwrap().to_owned());
    for id in &jobs {
        assert_eq!(server.finished_job(id).await["status"], "failed");
    }
    for _ in 0..100 {
        if listed_to(&smtp, "oncall@example.com", "Flaky").0 == STORM
            && listed_to(&smtp, ALERTS, "Quiet").0 == 1
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Give a wrong second round the time to come.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (listed, mails) = listed_to(&smtp, "oncall@example.com", "Flaky");
    assert_eq!(listed, STORM, "every failure is told once");
    // One digest a round: a burst that straddles rounds makes a few, never one a failure.
    assert!(
        mails <= STORM / 4,
        "{mails} mails for one storm of {STORM} failures"
    );
    assert_eq!(
        listed_to(&smtp, "oncall@example.com", "Quiet").0,
        0,
        "not its recipe"
    );
    let (listed, _) = listed_to(&smtp, ALERTS, "Flaky");
    assert_eq!(listed, STORM, "the owner hears of every failure");
    assert_eq!(listed_to(&smtp, ALERTS, "Quiet").0, 1);
    assert_eq!(
        listed_to(&smtp, "ann@example.com", "Quiet").1,
        0,
        "not at the account's email"
    );
    let everything: String = smtp
        .received()
        .iter()
        .map(|mail| mail.data.clone())
        .collect();
    assert!(
        !everything.contains("payload-7"),
        "a notice holds no job data"
    );
}

#[tokio::test]
async fn a_storm_of_failures_sends_one_digest_sqlite() {
    a_storm_of_failures_sends_one_digest(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_storm_of_failures_sends_one_digest_postgres() {
    a_storm_of_failures_sends_one_digest(Backend::Postgres).await;
}
