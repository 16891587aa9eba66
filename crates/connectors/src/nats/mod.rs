//! The `nats` connector: publish, request and reply, and subscriptions to a subject or to a
//! JetStream stream through a durable consumer, whose messages are acknowledged once their
//! jobs are committed.

use async_nats::jetstream::{self, consumer::AckPolicy, consumer::pull};
use async_trait::async_trait;
use futures::StreamExt;
use serde_json::{Map, Value, json};
use std::time::Duration;

use crate::connection::Connection;
use crate::connector::{
    ActionSpec, CallContext, ConnectionField, Connector, MessageSink, TriggerKind, TriggerSpec,
};
use crate::error::ConnectorError;
use crate::sql::Pools;

/// How long a request waits for its reply when neither the input nor the step say.
const REQUEST_TIME: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct NatsConnector {
    clients: Pools<async_nats::Client>,
}

#[async_trait]
impl Connector for NatsConnector {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn description(&self) -> &'static str {
        "Publishes to, requests from and subscribes to NATS subjects and JetStream streams."
    }

    fn needs_connection(&self) -> bool {
        true
    }

    fn connection_fields(&self) -> Vec<ConnectionField> {
        let field = ConnectionField::new;
        vec![
            field("host", "Host name or address.", true, false),
            field("port", "Port (default 4222).", false, false),
            field("username", "User name.", false, false),
            field("password", "Password.", false, true),
            field(
                "token",
                "Token, instead of a user name and password.",
                false,
                true,
            ),
        ]
    }

    fn actions(&self) -> Vec<ActionSpec> {
        let message = json!({ "description": "Text is sent as it is; anything else as its JSON." });
        vec![
            ActionSpec {
                name: "publish",
                description: "Publishes a message on a subject (a JetStream stream that takes the subject keeps it).",
                input_schema: json!({
                    "type": "object",
                    "additionalProperties": false,
                    "properties": { "subject": { "type": "string" }, "message": message },
                    "required": ["subject", "message"],
                }),
                output_schema: json!({
                    "type": "object",
                    "properties": { "published": { "type": "boolean" } },
                    "required": ["published"],
                }),
            },
            ActionSpec {
                name: "request",
                description: "Sends a request on a subject and waits for the first reply.",
                input_schema: json!({
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "subject": { "type": "string" },
                        "message": message,
                        "timeout": { "type": "string", "description": "A duration such as 5s (default 10s, or the step's timeout)." },
                    },
                    "required": ["subject", "message"],
                }),
                output_schema: json!({
                    "type": "object",
                    "properties": { "reply": { "description": "Parsed when it is JSON, else text." } },
                    "required": ["reply"],
                }),
            },
        ]
    }

    fn triggers(&self) -> Vec<TriggerSpec> {
        vec![TriggerSpec {
            name: "subscribe",
            kind: TriggerKind::Subscribe,
            description: "Messages on a `subject` (NATS keeps none for a subscriber that is \
                away; several Weft processes can share them with a `queue` group), or the \
                messages of a JetStream `stream` through a `durable` consumer: each is \
                acknowledged once its job is committed, and those not acknowledged are sent \
                again.",
            input_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "subject": { "type": "string", "description": "A subject, wildcards allowed; with `stream`, a filter of the stream's subjects." },
                    "queue": { "type": "string", "description": "A queue group for a plain subscription." },
                    "stream": { "type": "string", "description": "A JetStream stream; it must exist." },
                    "durable": { "type": "string", "description": "The durable consumer's name (made when missing). Default: weft." },
                },
            }),
            output_schema: json!({
                "type": "object",
                "properties": {
                    "payload": { "description": "Parsed when it is JSON, else text (base64 when it is not UTF-8)." },
                    "subject": { "type": "string" },
                },
                "required": ["payload", "subject"],
            }),
        }]
    }

    fn check_connection(&self, connection: &Connection) -> Result<(), ConnectorError> {
        address(connection).map(|_| ())
    }

    async fn test_connection(&self, connection: &Connection) -> Result<(), ConnectorError> {
        let client = self.client(connection).await?;
        client
            .flush()
            .await
            .map_err(|error| refused(connection, error))
    }

    async fn call(
        &self,
        action: &str,
        connection: Option<&Connection>,
        input: Value,
        context: &CallContext,
    ) -> Result<Value, ConnectorError> {
        let connection = connection
            .ok_or_else(|| ConnectorError::validation("the nats connector needs a `connection`"))?;
        let input = input.as_object().ok_or_else(|| {
            ConnectorError::validation(format!("nats.{action} input must be an object"))
        })?;
        let subject = input
            .get("subject")
            .and_then(Value::as_str)
            .filter(|subject| !subject.is_empty() && !subject.contains(['*', '>', ' ']))
            .ok_or_else(|| {
                ConnectorError::validation(
                    "`subject` is required: text without wildcards or spaces",
                )
            })?
            .to_owned();
        let message = input
            .get("message")
            .ok_or_else(|| ConnectorError::validation("`message` is required"))?;
        let body = crate::message::body(message);
        let client = self.client(connection).await?;
        match action {
            "publish" => {
                let work = async {
                    client
                        .publish(subject, body.into())
                        .await
                        .map_err(|error| refused(connection, error))?;
                    client
                        .flush()
                        .await
                        .map_err(|error| refused(connection, error))
                };
                crate::error::within(context.timeout, work).await?;
                Ok(json!({ "published": true }))
            }
            "request" => {
                let limit = match input.get("timeout").and_then(Value::as_str) {
                    Some(text) => weft_recipe::duration::parse_duration(text).map_err(|error| {
                        ConnectorError::validation(format!("`timeout`: {error}"))
                    })?,
                    None => context.timeout.unwrap_or(REQUEST_TIME),
                };
                let reply =
                    tokio::time::timeout(limit, client.request(subject.clone(), body.into()))
                        .await
                        .map_err(|_| {
                            ConnectorError::timeout(format!(
                                "no reply on `{subject}` within {}",
                                weft_recipe::duration::format_duration(limit)
                            ))
                        })?
                        .map_err(|error| {
                            ConnectorError::remote(format!(
                                "the request on `{subject}` failed: {error}"
                            ))
                        })?;
                Ok(json!({ "reply": crate::message::payload(&reply.payload) }))
            }
            other => Err(ConnectorError::validation(format!(
                "no action `{other}` (the nats connector has publish and request)"
            ))),
        }
    }

    async fn subscribe(
        &self,
        connection: Option<&Connection>,
        options: &Map<String, Value>,
        sink: &dyn MessageSink,
    ) -> Result<(), ConnectorError> {
        let connection = connection
            .ok_or_else(|| ConnectorError::validation("the nats connector needs a `connection`"))?;
        let text = |key: &str| options.get(key).and_then(Value::as_str).map(str::to_owned);
        let client = self.client(connection).await?;
        match (text("stream"), text("subject")) {
            (Some(stream), filter) => {
                let durable = text("durable").unwrap_or_else(|| "weft".to_owned());
                consume_stream(client, connection, &stream, &durable, filter, sink).await
            }
            (None, Some(subject)) => {
                let mut messages = match text("queue") {
                    Some(queue) => client.queue_subscribe(subject.clone(), queue).await,
                    None => client.subscribe(subject.clone()).await,
                }
                .map_err(|error| refused(connection, error))?;
                while let Some(message) = messages.next().await {
                    let event = json!({
                        "payload": crate::message::payload(&message.payload),
                        "subject": message.subject.as_str(),
                    });
                    // Plain NATS has no acknowledgement: a message whose job cannot be
                    // committed is lost, and the subscription stops to say so.
                    sink.deliver(event).await.map_err(|error| {
                        ConnectorError::remote(format!(
                            "a message on `{subject}` could not be queued: {error}"
                        ))
                    })?;
                }
                Err(ConnectorError::remote(format!(
                    "the subscription to `{subject}` was closed"
                )))
            }
            (None, None) => Err(ConnectorError::validation(
                "a nats subscription takes a `subject`, or a `stream` (with an optional `durable` and `subject` filter)",
            )),
        }
    }
}

impl NatsConnector {
    async fn client(&self, connection: &Connection) -> Result<async_nats::Client, ConnectorError> {
        self.clients
            .get(connection, || async {
                let mut options = async_nats::ConnectOptions::new()
                    .name("weft")
                    .connection_timeout(crate::sql::CONNECT_TIMEOUT);
                if let Some(token) = connection.text("token") {
                    options = options.token(token.to_owned());
                } else if let Some(username) = connection.text("username") {
                    options = options.user_and_password(
                        username.to_owned(),
                        connection.text("password").unwrap_or_default().to_owned(),
                    );
                }
                options
                    .connect(address(connection)?)
                    .await
                    .map_err(|error| refused(connection, error))
            })
            .await
    }
}

fn address(connection: &Connection) -> Result<String, ConnectorError> {
    Ok(format!(
        "{}:{}",
        connection.required_text("host")?,
        connection.port(4222)?
    ))
}

fn refused(connection: &Connection, error: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::remote(format!(
        "NATS (connection `{}`) refused or failed: {error}",
        connection.name
    ))
}

/// Reads a JetStream stream through a durable pull consumer with explicit acknowledgements:
/// each message is acknowledged (and the server's receipt awaited) after its job is committed.
async fn consume_stream(
    client: async_nats::Client,
    connection: &Connection,
    stream: &str,
    durable: &str,
    filter: Option<String>,
    sink: &dyn MessageSink,
) -> Result<(), ConnectorError> {
    let context = jetstream::new(client);
    let found = context
        .get_stream(stream)
        .await
        .map_err(|error| refused(connection, error))?;
    let config = pull::Config {
        durable_name: Some(durable.to_owned()),
        ack_policy: AckPolicy::Explicit,
        filter_subject: filter.unwrap_or_default(),
        ..Default::default()
    };
    let consumer = found
        .get_or_create_consumer(durable, config)
        .await
        .map_err(|error| refused(connection, error))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|error| refused(connection, error))?;
    while let Some(message) = messages.next().await {
        let message = message.map_err(|error| refused(connection, error))?;
        let event = json!({
            "payload": crate::message::payload(&message.payload),
            "subject": message.subject.as_str(),
        });
        sink.deliver(event).await.map_err(|error| {
            ConnectorError::remote(format!(
                "a message of stream `{stream}` could not be queued (it is sent again): {error}"
            ))
        })?;
        message
            .double_ack()
            .await
            .map_err(|error| refused(connection, error))?;
    }
    Err(ConnectorError::remote(format!(
        "the consumer `{durable}` of stream `{stream}` was closed"
    )))
}
