//! The `email` connector: sends mail through an SMTP server, with TLS (or STARTTLS) and
//! authentication, text and HTML parts, and attachments made from job data.

use async_trait::async_trait;
use base64::Engine as _;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{Map, Value, json};
use std::time::Duration;

use crate::connection::Connection;
use crate::connector::{ActionSpec, CallContext, ConnectionField, Connector};
use crate::error::ConnectorError;

/// How long sending one message may take, when the step sets no timeout.
const SEND_TIME: Duration = Duration::from_secs(30);

pub struct EmailConnector;

#[async_trait]
impl Connector for EmailConnector {
    fn name(&self) -> &'static str {
        "email"
    }

    fn description(&self) -> &'static str {
        "Sends email through an SMTP server."
    }

    fn needs_connection(&self) -> bool {
        true
    }

    fn connection_fields(&self) -> Vec<ConnectionField> {
        let field = ConnectionField::new;
        vec![
            field("host", "SMTP server host name.", true, false),
            field(
                "port",
                "Port (default 587 with starttls, 465 with tls, 25 with none).",
                false,
                false,
            ),
            field(
                "security",
                "starttls (default), tls, or none (only for a server on a trusted network).",
                false,
                false,
            ),
            field(
                "username",
                "User name, when the server asks for one.",
                false,
                false,
            ),
            field("password", "Password.", false, true),
            field(
                "from",
                "Default sender, such as `Weft <weft@example.com>`.",
                false,
                false,
            ),
        ]
    }

    fn actions(&self) -> Vec<ActionSpec> {
        let addresses = json!({ "type": ["string", "array"], "items": { "type": "string" }, "description": "An address, or a list of them (`Name <address>` allowed)." });
        vec![ActionSpec {
            name: "send",
            description: "Sends one message, with a text part, an HTML part or both, and attachments.",
            input_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "to": addresses,
                    "cc": addresses,
                    "bcc": addresses,
                    "from": { "type": "string", "description": "Default: the connection's `from`." },
                    "reply_to": { "type": "string" },
                    "subject": { "type": "string" },
                    "text": { "type": "string" },
                    "html": { "type": "string" },
                    "attachments": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "filename": { "type": "string" },
                                "content": { "description": "Text as it is; anything else as its JSON." },
                                "content_base64": { "type": "string", "description": "Bytes, instead of `content`." },
                                "content_type": { "type": "string", "description": "Default: text/plain, or application/octet-stream for bytes." },
                            },
                            "required": ["filename"],
                        },
                    },
                },
                "required": ["to", "subject"],
            }),
            output_schema: json!({
                "type": "object",
                "properties": {
                    "message_id": { "type": "string" },
                    "recipients": { "type": "integer" },
                    "server_said": { "type": "string" },
                },
                "required": ["message_id", "recipients"],
            }),
        }]
    }

    fn check_connection(&self, connection: &Connection) -> Result<(), ConnectorError> {
        transport(connection).map(|_| ())
    }

    async fn test_connection(&self, connection: &Connection) -> Result<(), ConnectorError> {
        match transport(connection)?.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(ConnectorError::remote(
                "the SMTP server did not answer as one",
            )),
            Err(error) => Err(refused(connection, error)),
        }
    }

    async fn call(
        &self,
        action: &str,
        connection: Option<&Connection>,
        input: Value,
        context: &CallContext,
    ) -> Result<Value, ConnectorError> {
        let connection = connection.ok_or_else(|| {
            ConnectorError::validation("the email connector needs a `connection`")
        })?;
        if action != "send" {
            return Err(ConnectorError::validation(format!(
                "no action `{action}` (the email connector has send)"
            )));
        }
        let input = input
            .as_object()
            .ok_or_else(|| ConnectorError::validation("email.send input must be an object"))?;
        let (message, message_id) = message(input, connection, &context.idempotency_key)?;
        let recipients = message.envelope().to().len();
        let mailer = transport(connection)?;
        let limit = context.timeout.unwrap_or(SEND_TIME);
        let sent = tokio::time::timeout(limit, mailer.send(message))
            .await
            .map_err(|_| ConnectorError::timeout("the SMTP server did not finish in time"))?
            .map_err(|error| refused(connection, error))?;
        Ok(json!({
            "message_id": message_id,
            "recipients": recipients,
            "server_said": sent.message().collect::<Vec<_>>().join(" "),
        }))
    }
}

fn transport(
    connection: &Connection,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, ConnectorError> {
    let host = connection.required_text("host")?;
    let security = connection.text("security").unwrap_or("starttls");
    let (builder, default_port) = match security {
        "starttls" => (
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
            587,
        ),
        "tls" => (AsyncSmtpTransport::<Tokio1Executor>::relay(host), 465),
        "none" => (
            Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                host,
            )),
            25,
        ),
        other => {
            return Err(ConnectorError::validation(format!(
                "connection `{}`: security must be starttls, tls or none, not `{other}`",
                connection.name
            )));
        }
    };
    let mut builder = builder
        .map_err(|error| ConnectorError::validation(format!("cannot use `{host}`: {error}")))?
        .port(connection.port(default_port)?)
        .timeout(Some(SEND_TIME));
    if let Some(username) = connection.text("username") {
        builder = builder.credentials(Credentials::new(
            username.to_owned(),
            connection.text("password").unwrap_or_default().to_owned(),
        ));
    }
    Ok(builder.build())
}

fn refused(connection: &Connection, error: lettre::transport::smtp::Error) -> ConnectorError {
    ConnectorError::remote(format!(
        "the SMTP server of connection `{}` refused or failed: {error}",
        connection.name
    ))
}

fn mailbox(text: &str, what: &str) -> Result<Mailbox, ConnectorError> {
    text.parse().map_err(|error| {
        ConnectorError::validation(format!("`{what}`: `{text}` is not an address: {error}"))
    })
}

fn mailboxes(value: Option<&Value>, what: &str) -> Result<Vec<Mailbox>, ConnectorError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![mailbox(text, what)?]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .ok_or_else(|| {
                        ConnectorError::validation(format!("`{what}` lists addresses, as text"))
                    })
                    .and_then(|text| mailbox(text, what))
            })
            .collect(),
        Some(_) => Err(ConnectorError::validation(format!(
            "`{what}` is an address or a list of them"
        ))),
    }
}

/// The message, with a Message-ID made from the call's idempotency key, so that a step sent
/// again after a crash carries the same id (receivers and archives can tell the copies).
fn message(
    input: &Map<String, Value>,
    connection: &Connection,
    idempotency_key: &str,
) -> Result<(Message, String), ConnectorError> {
    let from = input
        .get("from")
        .and_then(Value::as_str)
        .or(connection.text("from"))
        .ok_or_else(|| {
            ConnectorError::validation("`from` is needed, in the input or the connection")
        })?;
    let to = mailboxes(input.get("to"), "to")?;
    if to.is_empty() {
        return Err(ConnectorError::validation(
            "`to` needs at least one address",
        ));
    }
    let subject = input
        .get("subject")
        .and_then(Value::as_str)
        .ok_or_else(|| ConnectorError::validation("`subject` is required, as text"))?;
    let domain = mailbox(from, "from")?.email.domain().to_owned();
    let local = if idempotency_key.is_empty() {
        crate::http::oauth::random_text(12)
    } else {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(idempotency_key)
    };
    let message_id = format!("<{local}@{domain}>");
    let mut builder = Message::builder()
        .from(mailbox(from, "from")?)
        .subject(subject)
        .message_id(Some(message_id.clone()));
    for address in to {
        builder = builder.to(address);
    }
    for address in mailboxes(input.get("cc"), "cc")? {
        builder = builder.cc(address);
    }
    for address in mailboxes(input.get("bcc"), "bcc")? {
        builder = builder.bcc(address);
    }
    if let Some(reply_to) = input.get("reply_to").and_then(Value::as_str) {
        builder = builder.reply_to(mailbox(reply_to, "reply_to")?);
    }
    let text = input.get("text").and_then(Value::as_str);
    let html = input.get("html").and_then(Value::as_str);
    let content = match (text, html) {
        (Some(text), Some(html)) => {
            MultiPart::alternative_plain_html(text.to_owned(), html.to_owned())
        }
        (None, Some(html)) => MultiPart::mixed().singlepart(SinglePart::html(html.to_owned())),
        (Some(text), None) => MultiPart::mixed().singlepart(SinglePart::plain(text.to_owned())),
        (None, None) => return Err(ConnectorError::validation("give `text`, `html` or both")),
    };
    let attachments = match input.get("attachments") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(attachment).collect::<Result<_, _>>()?,
        Some(_) => return Err(ConnectorError::validation("`attachments` is a list")),
    };
    let body = if attachments.is_empty() {
        content
    } else {
        attachments
            .into_iter()
            .fold(MultiPart::mixed().multipart(content), MultiPart::singlepart)
    };
    let message = builder.multipart(body).map_err(|error| {
        ConnectorError::validation(format!("the message cannot be built: {error}"))
    })?;
    Ok((message, message_id))
}

fn attachment(item: &Value) -> Result<SinglePart, ConnectorError> {
    let filename = item["filename"]
        .as_str()
        .ok_or_else(|| ConnectorError::validation("an attachment needs a `filename`"))?;
    let (bytes, default_type) = match (item.get("content"), item["content_base64"].as_str()) {
        (_, Some(encoded)) => (
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| {
                    ConnectorError::validation(format!(
                        "attachment `{filename}`: `content_base64` is not base64"
                    ))
                })?,
            "application/octet-stream",
        ),
        (Some(content), None) => (crate::message::body(content), "text/plain; charset=utf-8"),
        (None, None) => {
            return Err(ConnectorError::validation(format!(
                "attachment `{filename}` needs `content` or `content_base64`"
            )));
        }
    };
    let content_type = item["content_type"].as_str().unwrap_or(default_type);
    let content_type = ContentType::parse(content_type).map_err(|_| {
        ConnectorError::validation(format!(
            "attachment `{filename}`: `{content_type}` is not a content type"
        ))
    })?;
    Ok(Attachment::new(filename.to_owned()).body(bytes, content_type))
}
