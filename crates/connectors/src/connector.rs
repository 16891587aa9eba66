//! The connector trait: what every connector declares and does.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

use crate::connection::Connection;
use crate::error::ConnectorError;

/// A field of a connection, as forms and docs show it.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionField {
    pub name: &'static str,
    pub description: &'static str,
    pub required: bool,
    /// Secret fields are encrypted at rest and never shown back.
    pub secret: bool,
}

impl ConnectionField {
    pub const fn new(
        name: &'static str,
        description: &'static str,
        required: bool,
        secret: bool,
    ) -> ConnectionField {
        ConnectionField {
            name,
            description,
            required,
            secret,
        }
    }
}

/// One action a connector offers, with the JSON Schemas of its input and output.
#[derive(Debug, Clone, Serialize)]
pub struct ActionSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub input_schema: Value,
    pub output_schema: Value,
}

/// How a trigger of a connector delivers events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TriggerKind {
    /// Weft asks at an interval and makes a job of each new item.
    Poll,
    /// A long-lived consumer: the remote end pushes messages.
    Subscribe,
}

/// One trigger a connector offers: the schema of its settings in a recipe, and of the
/// `trigger` value each job gets.
#[derive(Debug, Clone, Serialize)]
pub struct TriggerSpec {
    pub name: &'static str,
    pub kind: TriggerKind,
    pub description: &'static str,
    pub input_schema: Value,
    pub output_schema: Value,
}

/// What the engine tells an action about the call it makes.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// Stable per job and step, so that a remote end can recognise a repeated delivery.
    pub idempotency_key: String,
    /// The time this attempt may take, if the step or input set one.
    pub timeout: Option<Duration>,
    /// The workspace of the job that calls: names it uses (lookup tables) are that
    /// workspace's.
    pub workspace: String,
}

impl CallContext {
    /// A call made outside any job (a connection test, a mail the server sends), of the
    /// default workspace.
    pub fn outside_jobs(timeout: Duration) -> CallContext {
        CallContext {
            idempotency_key: String::new(),
            timeout: Some(timeout),
            workspace: weft_recipe::DEFAULT_WORKSPACE.to_owned(),
        }
    }
}

/// Where a subscription hands its messages: `deliver` returns once the message's job is
/// committed, and only then may the connector acknowledge the message to its broker.
#[async_trait]
pub trait MessageSink: Send + Sync {
    /// A stable name of the subscriber (its recipe), for brokers that keep a session or a
    /// position per consumer.
    fn subscriber(&self) -> &str;

    /// The error says why the job could not be committed; the message must not be
    /// acknowledged, so that the broker delivers it again.
    async fn deliver(&self, message: Value) -> Result<(), String>;
}

/// One connector: the I/O to one kind of system.
#[async_trait]
pub trait Connector: Send + Sync {
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    fn connection_fields(&self) -> Vec<ConnectionField>;
    fn actions(&self) -> Vec<ActionSpec>;
    /// The triggers this connector can feed; none by default.
    fn triggers(&self) -> Vec<TriggerSpec> {
        Vec::new()
    }
    /// True when an action cannot run without a connection.
    fn needs_connection(&self) -> bool;

    /// Checks a connection's fields together, before it is saved (a field that another one
    /// makes necessary, a value that must be one of a few). No I/O.
    fn check_connection(&self, _connection: &Connection) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// Checks that a connection works, without side effects on the remote end.
    async fn test_connection(&self, connection: &Connection) -> Result<(), ConnectorError>;

    /// Consumes messages for a `subscribe` trigger with these options (the trigger's keys
    /// other than `connector` and `connection`), handing each to `sink`. Runs until the
    /// connection to the broker fails; the runtime then calls it again, with a pause.
    async fn subscribe(
        &self,
        _connection: Option<&Connection>,
        _options: &serde_json::Map<String, Value>,
        _sink: &dyn MessageSink,
    ) -> Result<(), ConnectorError> {
        Err(ConnectorError::validation(format!(
            "the {} connector cannot feed a subscribe trigger",
            self.name()
        )))
    }

    /// Runs one action.
    async fn call(
        &self,
        action: &str,
        connection: Option<&Connection>,
        input: Value,
        context: &CallContext,
    ) -> Result<Value, ConnectorError>;
}
