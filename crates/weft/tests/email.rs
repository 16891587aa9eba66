//! The email connector against an SMTP server the test starts: authentication, text and
//! HTML parts, attachments from job data, and refusals as connector errors without secrets.

use base64::Engine as _;
use serde_json::json;

use crate::support::smtp_server::{PASSWORD, SmtpServer, USER};
use crate::support::{Ran, run_with, write_recipe};

fn send(server: &SmtpServer, password: &str, input: &str) -> Ran {
    let (folder, recipe) = write_recipe(&format!(
        "name: Mail\ntrigger: {{ manual: {{}} }}\nsteps:\n  - id: mail\n    action: email.send\n    connection: smtp\n    input: {input}\n"
    ));
    let connections = folder.path().join("connections.yaml");
    std::fs::write(
        &connections,
        format!(
            "smtp:\n  connector: email\n  host: 127.0.0.1\n  port: {}\n  security: none\n  username: {USER}\n  password: {password}\n  from: Weft <weft@example.com>\n",
            server.port
        ),
    )
    .unwrap();
    run_with(
        &recipe,
        &json!({ "orders": "id,total\n1,9.50\n" }),
        &["--connections", connections.to_str().unwrap()],
    )
}

#[test]
fn a_message_goes_out_with_its_parts_and_attachments() {
    let server = SmtpServer::start();
    let ran = send(
        &server,
        PASSWORD,
        "{ to: [ann@example.com, 'Bob <bob@example.com>'], bcc: audit@example.com, subject: Orders of the day, text: 'See the file.', html: '<p>See the <b>file</b>.</p>', attachments: [ { filename: orders.csv, content: '{{ trigger.orders }}', content_type: text/csv } ] }",
    );
    assert_eq!(ran.code, 0, "{:#}\n{}", ran.record, ran.stderr);
    let output = &ran.step("mail")["output"];
    assert_eq!(output["recipients"], 3);
    let received = server.received();
    assert_eq!(received.len(), 1);
    let mail = &received[0];
    assert_eq!(mail.from, "<weft@example.com>");
    assert_eq!(
        mail.to,
        vec![
            "<ann@example.com>",
            "<bob@example.com>",
            "<audit@example.com>"
        ]
    );
    let data = &mail.data;
    assert!(data.contains("Subject: Orders of the day"), "{data}");
    assert!(
        !data.contains("audit@example.com"),
        "Bcc stays out of the message: {data}"
    );
    assert!(
        data.contains("multipart/alternative") && data.contains("text/html"),
        "{data}"
    );
    assert!(
        data.contains("filename=\"orders.csv\"") || data.contains("filename=orders.csv"),
        "{data}"
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode("id,total\n1,9.50\n");
    assert!(
        data.contains(&encoded) || data.contains("id,total"),
        "{data}"
    );
    let message_id = output["message_id"].as_str().unwrap();
    assert!(
        data.contains(&format!("Message-ID: {message_id}")),
        "{data}"
    );
}

#[test]
fn a_refused_login_is_a_connector_error_without_the_password() {
    let server = SmtpServer::start();
    let ran = send(
        &server,
        "wrong-pw-71c3",
        "{ to: ann@example.com, subject: Hi, text: Hello }",
    );
    assert_eq!(ran.code, 1, "{:#}", ran.record);
    assert_eq!(ran.record["error"]["kind"], "connector", "{:#}", ran.record);
    let text = ran.record.to_string() + &ran.stderr;
    assert!(!text.contains("wrong-pw-71c3"), "{text}");
    assert!(server.received().is_empty());
    let ran = send(
        &server,
        PASSWORD,
        "{ to: not-an-address, subject: Hi, text: Hello }",
    );
    assert_eq!(
        ran.record["error"]["kind"], "validation",
        "{:#}",
        ran.record
    );
}
