//! The `amqp` connector: RabbitMQ and other AMQP 0-9-1 brokers. Publishing waits for the
//! broker's confirmation; a subscription acknowledges each message only after its job is
//! committed, and hands a message back to the queue when its job cannot be.

use async_trait::async_trait;
use futures::StreamExt;
use lapin::Confirmation;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::{AMQPAuthority, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{BasicProperties, Channel, ConnectionProperties};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

use crate::connection::Connection;
use crate::connector::{
    ActionSpec, CallContext, ConnectionField, Connector, MessageSink, TriggerKind, TriggerSpec,
};
use crate::error::ConnectorError;

/// Messages a subscription holds unacknowledged at most.
const PREFETCH: u16 = 10;

#[derive(Default)]
pub struct AmqpConnector {
    /// One connection and confirming channel per connection's settings, for publishing.
    channels: tokio::sync::Mutex<BTreeMap<String, (lapin::Connection, Channel)>>,
}

#[async_trait]
impl Connector for AmqpConnector {
    fn name(&self) -> &'static str {
        "amqp"
    }

    fn description(&self) -> &'static str {
        "Publishes to and consumes from RabbitMQ (AMQP 0-9-1)."
    }

    fn needs_connection(&self) -> bool {
        true
    }

    fn connection_fields(&self) -> Vec<ConnectionField> {
        let field = ConnectionField::new;
        vec![
            field("host", "Host name or address.", true, false),
            field(
                "port",
                "Port (default 5672, or 5671 with tls).",
                false,
                false,
            ),
            field("vhost", "Virtual host (default /).", false, false),
            field("username", "User name.", true, false),
            field("password", "Password.", false, true),
            field(
                "tls",
                "Connect with TLS (amqps), true or false (default false).",
                false,
                false,
            ),
        ]
    }

    fn actions(&self) -> Vec<ActionSpec> {
        vec![ActionSpec {
            name: "publish",
            description: "Publishes a message to an exchange with a routing key, and waits for the broker to confirm it.",
            input_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "exchange": { "type": "string", "description": "Default: the default exchange, which routes by queue name." },
                    "routing_key": { "type": "string" },
                    "message": { "description": "Text is sent as it is; anything else as JSON (content type application/json)." },
                    "headers": { "type": "object", "description": "Message headers: text, numbers and booleans." },
                    "persistent": { "type": "boolean", "default": true },
                },
                "required": ["routing_key", "message"],
            }),
            output_schema: json!({
                "type": "object",
                "properties": { "confirmed": { "type": "boolean" } },
                "required": ["confirmed"],
            }),
        }]
    }

    fn triggers(&self) -> Vec<TriggerSpec> {
        vec![TriggerSpec {
            name: "subscribe",
            kind: TriggerKind::Subscribe,
            description: "Consumes a queue with manual acknowledgements: a message is \
                acknowledged once its job is committed; one whose job cannot be committed goes \
                back to the queue, and so do those in flight when Weft stops.",
            input_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "queue": { "type": "string", "description": "The queue to consume; it must exist." },
                    "prefetch": { "type": "integer", "description": "Messages held unacknowledged at most (default 10)." },
                },
                "required": ["queue"],
            }),
            output_schema: json!({
                "type": "object",
                "properties": {
                    "payload": { "description": "Parsed when it is JSON, else text (base64 when it is not UTF-8)." },
                    "routing_key": { "type": "string" },
                    "exchange": { "type": "string" },
                    "headers": { "type": "object" },
                    "redelivered": { "type": "boolean" },
                },
                "required": ["payload"],
            }),
        }]
    }

    fn check_connection(&self, connection: &Connection) -> Result<(), ConnectorError> {
        uri(connection).map(|_| ())
    }

    async fn test_connection(&self, connection: &Connection) -> Result<(), ConnectorError> {
        let opened = open(connection).await?;
        let _ = opened.close(200, "test done".into()).await;
        Ok(())
    }

    async fn call(
        &self,
        action: &str,
        connection: Option<&Connection>,
        input: Value,
        context: &CallContext,
    ) -> Result<Value, ConnectorError> {
        let connection = connection
            .ok_or_else(|| ConnectorError::validation("the amqp connector needs a `connection`"))?;
        if action != "publish" {
            return Err(ConnectorError::validation(format!(
                "no action `{action}` (the amqp connector has publish)"
            )));
        }
        let message = Publish::parse(&input)?;
        let work = async {
            let channel = self.channel(connection).await?;
            let outcome = message.send(&channel).await;
            if outcome.is_err() {
                // The channel may be broken: the next call opens a new one.
                self.channels.lock().await.remove(&key_of(connection));
            }
            outcome
        };
        crate::error::within(context.timeout, work).await
    }

    async fn subscribe(
        &self,
        connection: Option<&Connection>,
        options: &Map<String, Value>,
        sink: &dyn MessageSink,
    ) -> Result<(), ConnectorError> {
        let connection = connection
            .ok_or_else(|| ConnectorError::validation("the amqp connector needs a `connection`"))?;
        let queue = options
            .get("queue")
            .and_then(Value::as_str)
            .ok_or_else(|| ConnectorError::validation("`queue` is required, as text"))?;
        let prefetch = options
            .get("prefetch")
            .and_then(Value::as_u64)
            .and_then(|count| u16::try_from(count).ok())
            .unwrap_or(PREFETCH);
        let opened = open(connection).await?;
        let channel = opened.create_channel().await.map_err(broker_error)?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(broker_error)?;
        let mut consumer = channel
            .basic_consume(
                queue.into(),
                "weft".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(broker_error)?;
        while let Some(delivery) = consumer.next().await {
            let delivery = delivery.map_err(broker_error)?;
            let message = json!({
                "payload": crate::message::payload(&delivery.data),
                "routing_key": delivery.routing_key.as_str(),
                "exchange": delivery.exchange.as_str(),
                "headers": delivery.properties.headers().as_ref().map(headers_json).unwrap_or_else(|| json!({})),
                "redelivered": delivery.redelivered,
            });
            match sink.deliver(message).await {
                Ok(()) => {
                    delivery
                        .ack(BasicAckOptions::default())
                        .await
                        .map_err(broker_error)?;
                }
                Err(error) => {
                    let requeue = BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    };
                    let _ = delivery.nack(requeue).await;
                    return Err(ConnectorError::remote(format!(
                        "a message of `{queue}` could not be queued, and went back to its queue: {error}"
                    )));
                }
            }
        }
        Err(ConnectorError::remote(format!(
            "the broker ended the consumer of `{queue}`"
        )))
    }
}

impl AmqpConnector {
    async fn channel(&self, connection: &Connection) -> Result<Channel, ConnectorError> {
        let key = key_of(connection);
        let mut channels = self.channels.lock().await;
        if let Some((_, channel)) = channels
            .get(&key)
            .filter(|(_, channel)| channel.status().connected())
        {
            return Ok(channel.clone());
        }
        let opened = open(connection).await?;
        let channel = opened.create_channel().await.map_err(broker_error)?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(broker_error)?;
        channels.insert(key, (opened, channel.clone()));
        Ok(channel)
    }
}

fn key_of(connection: &Connection) -> String {
    format!(
        "{}\0{}",
        connection.name,
        Value::Object(connection.fields.clone())
    )
}

fn uri(connection: &Connection) -> Result<AMQPUri, ConnectorError> {
    let tls = connection.flag("tls");
    Ok(AMQPUri {
        scheme: if tls {
            AMQPScheme::AMQPS
        } else {
            AMQPScheme::AMQP
        },
        authority: AMQPAuthority {
            userinfo: AMQPUserInfo {
                username: connection.required_text("username")?.to_owned(),
                password: connection.text("password").unwrap_or_default().to_owned(),
            },
            host: connection.required_text("host")?.to_owned(),
            port: connection.port(if tls { 5671 } else { 5672 })?,
        },
        vhost: connection.text("vhost").unwrap_or("/").to_owned(),
        query: Default::default(),
    })
}

async fn open(connection: &Connection) -> Result<lapin::Connection, ConnectorError> {
    lapin::Connection::connect_uri(uri(connection)?, ConnectionProperties::default())
        .await
        .map_err(|error| {
            ConnectorError::remote(format!(
                "cannot connect to the broker of connection `{}`: {error}",
                connection.name
            ))
        })
}

fn broker_error(error: lapin::Error) -> ConnectorError {
    ConnectorError::remote(format!("the broker refused or failed: {error}"))
}

/// The input of `amqp.publish`.
struct Publish {
    exchange: String,
    routing_key: String,
    body: Vec<u8>,
    properties: BasicProperties,
}

impl Publish {
    fn parse(input: &Value) -> Result<Publish, ConnectorError> {
        let input = input
            .as_object()
            .ok_or_else(|| ConnectorError::validation("amqp.publish input must be an object"))?;
        let text = |key: &str| input.get(key).and_then(Value::as_str).map(str::to_owned);
        let routing_key = text("routing_key")
            .ok_or_else(|| ConnectorError::validation("`routing_key` is required, as text"))?;
        let message = input
            .get("message")
            .ok_or_else(|| ConnectorError::validation("`message` is required"))?;
        let (body, content_type) = match message {
            Value::String(text) => (text.clone().into_bytes(), "text/plain"),
            other => (other.to_string().into_bytes(), "application/json"),
        };
        let mut headers = FieldTable::default();
        if let Some(given) = input.get("headers") {
            let Value::Object(given) = given else {
                return Err(ConnectorError::validation("`headers` must be an object"));
            };
            for (name, value) in given {
                headers.insert(ShortString::from(name.as_str()), header_value(name, value)?);
            }
        }
        let persistent = input.get("persistent") != Some(&Value::Bool(false));
        let properties = BasicProperties::default()
            .with_content_type(content_type.into())
            .with_delivery_mode(if persistent { 2 } else { 1 })
            .with_headers(headers);
        Ok(Publish {
            exchange: text("exchange").unwrap_or_default(),
            routing_key,
            body,
            properties,
        })
    }

    async fn send(&self, channel: &Channel) -> Result<Value, ConnectorError> {
        let confirm = channel
            .basic_publish(
                self.exchange.as_str().into(),
                self.routing_key.as_str().into(),
                BasicPublishOptions::default(),
                &self.body,
                self.properties.clone(),
            )
            .await
            .map_err(broker_error)?
            .await
            .map_err(broker_error)?;
        match confirm {
            Confirmation::Nack(_) => Err(ConnectorError::remote(
                "the broker refused the message (negative confirmation)",
            )),
            _ => Ok(json!({ "confirmed": true })),
        }
    }
}

fn header_value(name: &str, value: &Value) -> Result<AMQPValue, ConnectorError> {
    Ok(match value {
        Value::Bool(flag) => AMQPValue::Boolean(*flag),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => AMQPValue::LongLongInt(integer),
            None => AMQPValue::Double(number.as_f64().unwrap_or_default()),
        },
        Value::String(text) => AMQPValue::LongString(LongString::from(text.as_str())),
        _ => {
            return Err(ConnectorError::validation(format!(
                "header `{name}` must be text, a number or a boolean"
            )));
        }
    })
}

fn headers_json(table: &FieldTable) -> Value {
    Value::Object(
        table
            .inner()
            .iter()
            .map(|(name, value)| (name.to_string(), header_json(value)))
            .collect(),
    )
}

fn header_json(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(flag) => json!(flag),
        AMQPValue::ShortShortInt(n) => json!(n),
        AMQPValue::ShortShortUInt(n) => json!(n),
        AMQPValue::ShortInt(n) => json!(n),
        AMQPValue::ShortUInt(n) => json!(n),
        AMQPValue::LongInt(n) => json!(n),
        AMQPValue::LongUInt(n) => json!(n),
        AMQPValue::LongLongInt(n) => json!(n),
        AMQPValue::Float(n) => json!(n),
        AMQPValue::Double(n) => json!(n),
        AMQPValue::ShortString(text) => json!(text.as_str()),
        AMQPValue::LongString(text) => json!(text.to_string()),
        AMQPValue::FieldTable(table) => headers_json(table),
        other => json!(format!("{other:?}")),
    }
}
