//! The `redis` connector: keys, publishing, streams; subscriptions to a channel, or to a
//! stream through a consumer group (each entry acknowledged once its job is committed).

use async_trait::async_trait;
use futures::StreamExt;
use redis::aio::ConnectionManager;
use redis::{Client, ConnectionAddr, IntoConnectionInfo, Value as RedisValue};
use serde_json::{Map, Value, json};
use std::time::Duration;

use crate::connection::Connection;
use crate::connector::{
    ActionSpec, CallContext, ConnectionField, Connector, MessageSink, TriggerKind, TriggerSpec,
};
use crate::error::ConnectorError;
use crate::sql::Pools;

/// How long one read of a stream waits for entries before it reads again.
const STREAM_BLOCK: Duration = Duration::from_secs(5);
/// Most stream entries read at once.
const STREAM_BATCH: usize = 100;

#[derive(Default)]
pub struct RedisConnector {
    managers: Pools<ConnectionManager>,
}

#[async_trait]
impl Connector for RedisConnector {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn description(&self) -> &'static str {
        "Keys with expiry, publishing to channels, and streams of Redis (or Valkey)."
    }

    fn needs_connection(&self) -> bool {
        true
    }

    fn connection_fields(&self) -> Vec<ConnectionField> {
        let field = ConnectionField::new;
        vec![
            field("host", "Host name or address.", true, false),
            field("port", "Port (default 6379).", false, false),
            field("username", "User name (Redis 6 ACLs).", false, false),
            field("password", "Password.", false, true),
            field("database", "Database number (default 0).", false, false),
        ]
    }

    fn actions(&self) -> Vec<ActionSpec> {
        actions()
    }

    fn triggers(&self) -> Vec<TriggerSpec> {
        vec![TriggerSpec {
            name: "subscribe",
            kind: TriggerKind::Subscribe,
            description: "Messages published on a `channel` (not kept by Redis for a subscriber \
                that is away), or the entries of a `stream` read through a consumer `group`: an \
                entry is acknowledged once its job is committed, and entries not acknowledged \
                are read again when the subscription starts again.",
            input_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "channel": { "type": "string", "description": "A channel to subscribe to." },
                    "stream": { "type": "string", "description": "A stream to read through a consumer group." },
                    "group": { "type": "string", "description": "The consumer group (made at the stream's end when missing). Default: weft." },
                    "consumer": { "type": "string", "description": "This consumer's name in the group. Default: weft." },
                },
            }),
            output_schema: json!({
                "type": "object",
                "properties": {
                    "payload": { "description": "A channel message (parsed when it is JSON, else text), or a stream entry's fields." },
                    "channel": { "type": "string" },
                    "stream": { "type": "string" },
                    "id": { "type": "string", "description": "The stream entry's id." },
                },
                "required": ["payload"],
            }),
        }]
    }

    fn check_connection(&self, connection: &Connection) -> Result<(), ConnectorError> {
        client(connection).map(|_| ())
    }

    async fn test_connection(&self, connection: &Connection) -> Result<(), ConnectorError> {
        let mut manager = self.manager(connection).await?;
        redis::cmd("PING")
            .query_async::<RedisValue>(&mut manager)
            .await
            .map(|_| ())
            .map_err(|error| refused(connection, error))
    }

    async fn call(
        &self,
        action: &str,
        connection: Option<&Connection>,
        input: Value,
        context: &CallContext,
    ) -> Result<Value, ConnectorError> {
        let connection = connection.ok_or_else(|| {
            ConnectorError::validation("the redis connector needs a `connection`")
        })?;
        let command = command(action, &input)?;
        let mut manager = self.manager(connection).await?;
        let work = async {
            command
                .query_async::<RedisValue>(&mut manager)
                .await
                .map_err(|error| refused(connection, error))
        };
        let answer = crate::error::within(context.timeout, work).await?;
        Ok(output(action, answer))
    }

    async fn subscribe(
        &self,
        connection: Option<&Connection>,
        options: &Map<String, Value>,
        sink: &dyn MessageSink,
    ) -> Result<(), ConnectorError> {
        let connection = connection.ok_or_else(|| {
            ConnectorError::validation("the redis connector needs a `connection`")
        })?;
        let text = |key: &str| options.get(key).and_then(Value::as_str);
        match (text("channel"), text("stream")) {
            (Some(channel), None) => subscribe_channel(connection, channel, sink).await,
            (None, Some(stream)) => {
                let group = text("group").unwrap_or("weft");
                let consumer = text("consumer").unwrap_or("weft");
                // A connection of its own, without a response timeout: a blocking read
                // waits longer for entries than a command waits for its answer.
                let config = redis::AsyncConnectionConfig::new()
                    .set_response_timeout(Some(STREAM_BLOCK * 2));
                let mut reader = client(connection)?
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(|error| refused(connection, error))?;
                read_stream(&mut reader, connection, stream, group, consumer, sink).await
            }
            _ => Err(ConnectorError::validation(
                "a redis subscription takes a `channel`, or a `stream` (with an optional `group` and `consumer`)",
            )),
        }
    }
}

impl RedisConnector {
    async fn manager(&self, connection: &Connection) -> Result<ConnectionManager, ConnectorError> {
        self.managers
            .get(connection, || async {
                ConnectionManager::new(client(connection)?)
                    .await
                    .map_err(|error| refused(connection, error))
            })
            .await
    }
}

fn client(connection: &Connection) -> Result<Client, ConnectorError> {
    let database = match connection.fields.get("database") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(number)) => number.as_i64().unwrap_or(-1),
        Some(Value::String(text)) => text.parse().unwrap_or(-1),
        Some(_) => -1,
    };
    if database < 0 {
        return Err(ConnectorError::validation(format!(
            "connection `{}`: `database` must be a number from 0",
            connection.name
        )));
    }
    let address = ConnectionAddr::Tcp(
        connection.required_text("host")?.to_owned(),
        connection.port(6379)?,
    );
    let info = address
        .into_connection_info()
        .map_err(|error| ConnectorError::validation(error.to_string()))?;
    let mut settings = info.redis_settings().clone().set_db(database);
    if let Some(username) = connection.text("username") {
        settings = settings.set_username(username);
    }
    if let Some(password) = connection.text("password") {
        settings = settings.set_password(password);
    }
    Client::open(info.set_redis_settings(settings))
        .map_err(|error| ConnectorError::validation(error.to_string()))
}

fn refused(connection: &Connection, error: redis::RedisError) -> ConnectorError {
    if error.is_timeout() {
        return ConnectorError::timeout(format!("Redis did not answer in time: {error}"));
    }
    ConnectorError::remote(format!(
        "Redis (connection `{}`) refused or failed: {error}",
        connection.name
    ))
}

fn text_of<'a>(input: &'a Map<String, Value>, key: &str) -> Result<&'a str, ConnectorError> {
    input
        .get(key)
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
        .ok_or_else(|| ConnectorError::validation(format!("`{key}` is required, as text")))
}

/// A value as Redis stores it: text as it is, anything else as its JSON.
fn stored(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The Redis command of an action.
fn command(action: &str, input: &Value) -> Result<redis::Cmd, ConnectorError> {
    let input = input.as_object().ok_or_else(|| {
        ConnectorError::validation(format!("redis.{action} input must be an object"))
    })?;
    let mut command;
    match action {
        "get" => {
            command = redis::cmd("GET");
            command.arg(text_of(input, "key")?);
        }
        "set" => {
            let value = input
                .get("value")
                .ok_or_else(|| ConnectorError::validation("`value` is required"))?;
            command = redis::cmd("SET");
            command.arg(text_of(input, "key")?).arg(stored(value));
            match input.get("ttl") {
                None | Some(Value::Null) => {}
                Some(ttl) => {
                    let seconds = ttl.as_u64().filter(|seconds| *seconds > 0).ok_or_else(|| {
                        ConnectorError::validation("`ttl` is a number of seconds, at least 1")
                    })?;
                    command.arg("EX").arg(seconds);
                }
            }
            if input.get("only_if_absent") == Some(&Value::Bool(true)) {
                command.arg("NX");
            }
        }
        "delete" => {
            command = redis::cmd("DEL");
            match input.get("keys") {
                Some(Value::Array(keys)) if !keys.is_empty() => {
                    for key in keys {
                        command.arg(key.as_str().ok_or_else(|| {
                            ConnectorError::validation("`keys` is a list of text")
                        })?);
                    }
                }
                _ => {
                    command.arg(text_of(input, "key")?);
                }
            }
        }
        "publish" => {
            let message = input
                .get("message")
                .ok_or_else(|| ConnectorError::validation("`message` is required"))?;
            command = redis::cmd("PUBLISH");
            command.arg(text_of(input, "channel")?).arg(stored(message));
        }
        "stream_add" => {
            let Some(Value::Object(fields)) = input
                .get("fields")
                .filter(|fields| fields.as_object().is_some_and(|fields| !fields.is_empty()))
            else {
                return Err(ConnectorError::validation(
                    "`fields` is required: an object of at least one field",
                ));
            };
            command = redis::cmd("XADD");
            command.arg(text_of(input, "stream")?);
            if let Some(max) = input.get("max_length").and_then(Value::as_u64) {
                command.arg("MAXLEN").arg("~").arg(max);
            }
            command.arg("*");
            for (name, value) in fields {
                command.arg(name).arg(stored(value));
            }
        }
        other => {
            return Err(ConnectorError::validation(format!(
                "no action `{other}` (the redis connector has get, set, delete, publish and stream_add)"
            )));
        }
    }
    Ok(command)
}

/// An action's output from Redis' answer.
fn output(action: &str, answer: RedisValue) -> Value {
    match action {
        "get" => json!({ "value": plain(answer) }),
        "set" => json!({ "written": !matches!(answer, RedisValue::Nil) }),
        "delete" => json!({ "deleted": plain(answer) }),
        "publish" => json!({ "receivers": plain(answer) }),
        _ => json!({ "id": plain(answer) }),
    }
}

/// A Redis reply as JSON: text, numbers, lists and maps.
fn plain(value: RedisValue) -> Value {
    match value {
        RedisValue::Nil => Value::Null,
        RedisValue::Int(number) => json!(number),
        RedisValue::Double(number) => json!(number),
        RedisValue::Boolean(flag) => json!(flag),
        RedisValue::Okay => json!("OK"),
        RedisValue::SimpleString(text) => json!(text),
        RedisValue::BulkString(bytes) => json!(String::from_utf8_lossy(&bytes)),
        RedisValue::Array(items) | RedisValue::Set(items) => {
            Value::Array(items.into_iter().map(plain).collect())
        }
        RedisValue::Map(pairs) => Value::Object(
            pairs
                .into_iter()
                .map(|(key, value)| (text(plain(key)), plain(value)))
                .collect(),
        ),
        other => json!(format!("{other:?}")),
    }
}

fn text(value: Value) -> String {
    match value {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

async fn subscribe_channel(
    connection: &Connection,
    channel: &str,
    sink: &dyn MessageSink,
) -> Result<(), ConnectorError> {
    let mut pubsub = client(connection)?
        .get_async_pubsub()
        .await
        .map_err(|error| refused(connection, error))?;
    pubsub
        .subscribe(channel)
        .await
        .map_err(|error| refused(connection, error))?;
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let bytes: Vec<u8> = message.get_payload_bytes().to_vec();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let payload = serde_json::from_str(&text).unwrap_or(Value::String(text));
        // Published messages have no acknowledgement: one whose job cannot be committed is
        // lost, and the subscription stops to say so.
        sink.deliver(json!({ "payload": payload, "channel": message.get_channel_name() }))
            .await
            .map_err(|error| {
                ConnectorError::remote(format!(
                    "a message on `{channel}` could not be queued: {error}"
                ))
            })?;
    }
    Err(ConnectorError::remote(format!(
        "the subscription to `{channel}` was closed by Redis"
    )))
}

/// Reads a stream through a consumer group: first the entries delivered before and never
/// acknowledged (a crash between delivery and commit), then new ones. Each entry is
/// acknowledged after its job is committed.
async fn read_stream(
    manager: &mut redis::aio::MultiplexedConnection,
    connection: &Connection,
    stream: &str,
    group: &str,
    consumer: &str,
    sink: &dyn MessageSink,
) -> Result<(), ConnectorError> {
    let created = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(group)
        .arg("$")
        .arg("MKSTREAM")
        .query_async::<RedisValue>(manager)
        .await;
    if let Err(error) = created
        && error.code() != Some("BUSYGROUP")
    {
        return Err(refused(connection, error));
    }
    let mut from = "0".to_owned();
    loop {
        let reply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(STREAM_BATCH)
            .arg("BLOCK")
            .arg(STREAM_BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(stream)
            .arg(&from)
            .query_async::<RedisValue>(manager)
            .await
            .map_err(|error| refused(connection, error))?;
        let entries = stream_entries(reply);
        if entries.is_empty() && from == "0" {
            // Nothing left of before: from now on, new entries only.
            from = ">".to_owned();
            continue;
        }
        for (id, fields) in entries {
            let message = json!({ "payload": fields, "stream": stream, "id": id });
            sink.deliver(message).await.map_err(|error| {
                ConnectorError::remote(format!(
                    "entry {id} of `{stream}` could not be queued (it stays unacknowledged and is read again): {error}"
                ))
            })?;
            redis::cmd("XACK")
                .arg(stream)
                .arg(group)
                .arg(&id)
                .query_async::<RedisValue>(manager)
                .await
                .map_err(|error| refused(connection, error))?;
        }
    }
}

/// The entries of an XREADGROUP reply: id and fields of each, in order.
fn stream_entries(reply: RedisValue) -> Vec<(String, Value)> {
    let streams = match reply {
        RedisValue::Array(streams) => streams
            .into_iter()
            .filter_map(|stream| match stream {
                RedisValue::Array(mut parts) if parts.len() == 2 => parts.pop(),
                _ => None,
            })
            .collect::<Vec<_>>(),
        RedisValue::Map(pairs) => pairs.into_iter().map(|(_, entries)| entries).collect(),
        _ => Vec::new(),
    };
    let mut found = Vec::new();
    for entries in streams {
        let RedisValue::Array(entries) = entries else {
            continue;
        };
        for entry in entries {
            let RedisValue::Array(mut parts) = entry else {
                continue;
            };
            if parts.len() != 2 {
                continue;
            }
            let fields = parts.pop().map(plain).unwrap_or(Value::Null);
            let id = parts.pop().map(plain).map(text).unwrap_or_default();
            // Fields come as a flat list of names and values.
            let fields = match fields {
                Value::Array(flat) => Value::Object(
                    flat.chunks(2)
                        .filter_map(|pair| match pair {
                            [name, value] => Some((text(name.clone()), value.clone())),
                            _ => None,
                        })
                        .collect(),
                ),
                other => other,
            };
            found.push((id, fields));
        }
    }
    found
}

fn actions() -> Vec<ActionSpec> {
    let object = |properties: Value, required: &[&str]| json!({ "type": "object", "additionalProperties": false, "properties": properties, "required": required });
    let spec = |name, description, input, output| ActionSpec {
        name,
        description,
        input_schema: input,
        output_schema: output,
    };
    vec![
        spec(
            "get",
            "Reads a key.",
            object(json!({ "key": { "type": "string" } }), &["key"]),
            object(
                json!({ "value": { "description": "The text stored, or null when the key is missing." } }),
                &["value"],
            ),
        ),
        spec(
            "set",
            "Writes a key, optionally with an expiry, optionally only when it is missing.",
            object(
                json!({
                    "key": { "type": "string" },
                    "value": { "description": "Text is stored as it is; anything else as its JSON." },
                    "ttl": { "type": "integer", "description": "Seconds until the key expires." },
                    "only_if_absent": { "type": "boolean", "default": false },
                }),
                &["key", "value"],
            ),
            object(
                json!({ "written": { "type": "boolean", "description": "False when `only_if_absent` found the key." } }),
                &["written"],
            ),
        ),
        spec(
            "delete",
            "Deletes a key, or several.",
            object(
                json!({ "key": { "type": "string" }, "keys": { "type": "array", "items": { "type": "string" } } }),
                &[],
            ),
            object(json!({ "deleted": { "type": "integer" } }), &["deleted"]),
        ),
        spec(
            "publish",
            "Publishes a message on a channel.",
            object(
                json!({ "channel": { "type": "string" }, "message": { "description": "Text as it is; anything else as its JSON." } }),
                &["channel", "message"],
            ),
            object(
                json!({ "receivers": { "type": "integer", "description": "Subscribers that received it." } }),
                &["receivers"],
            ),
        ),
        spec(
            "stream_add",
            "Appends an entry to a stream.",
            object(
                json!({
                    "stream": { "type": "string" },
                    "fields": { "type": "object", "description": "Field names to values (text as it is, anything else as its JSON)." },
                    "max_length": { "type": "integer", "description": "Trim the stream to about this many entries." },
                }),
                &["stream", "fields"],
            ),
            object(json!({ "id": { "type": "string" } }), &["id"]),
        ),
    ]
}
