//! One look of a poll trigger: call its action with the cursor, and find the items, their
//! keys and the next cursor. Which items are new, and the jobs they make, are the runtime's.

use serde_json::{Value, json};
use std::time::Duration;
use weft_connectors::CallContext;
use weft_recipe::jq::JqProgram;
use weft_recipe::model::PollTrigger;

use crate::Engine;
use crate::jq_runner::JqFailure;

/// Longest one poll's call may take.
const POLL_TIME: Duration = Duration::from_secs(60);
/// Longest one of a poll's jq programs may run.
const JQ_TIME: Duration = Duration::from_secs(5);

/// What one poll found.
#[derive(Debug, Clone, PartialEq)]
pub struct Polled {
    /// Every item of the answer with its key, in the answer's order.
    pub items: Vec<(String, Value)>,
    /// The cursor for the next poll (the same one when `cursor.next` gives null).
    pub cursor: Value,
}

impl Engine {
    /// Polls once from `cursor`. The error is a message for the log, with the connection's
    /// secrets hidden. `workspace` is the recipe's, whose connections it may use.
    pub async fn poll(
        &self,
        workspace: &str,
        poll: &PollTrigger,
        cursor: &Value,
    ) -> Result<Polled, String> {
        let context = weft_recipe::template::from_json(&json!({ "cursor": cursor }));
        let input = poll
            .input
            .render(&context)
            .map_err(|error| format!("the poll's input: {error}"))?;
        let connector = self
            .connectors
            .get(&poll.action.connector)
            .ok_or_else(|| format!("no connector named `{}`", poll.action.connector))?;
        let connection = match &poll.connection {
            Some(name) => Some(self.connections.get(workspace, name).await?),
            None => None,
        };
        let secret_fields: Vec<&str> = connector
            .connection_fields()
            .iter()
            .filter(|field| field.secret)
            .map(|field| field.name)
            .collect();
        // Secrets of the connection, and of its refreshed tokens, never reach the log.
        let secrets = std::sync::Mutex::new(Vec::new());
        let note_secrets = |connection: &weft_connectors::Connection| {
            if let Ok(mut secrets) = secrets.lock() {
                secrets.extend(connection.secret_values(&secret_fields).map(str::to_owned));
            }
        };
        if let Some(connection) = &connection {
            note_secrets(connection);
        }
        let hide = |message: String| match secrets.lock() {
            Ok(secrets) => secrets.iter().fold(message, |text, secret| {
                text.replace(secret.as_str(), "[masked]")
            }),
            Err(_) => message,
        };
        let context = CallContext {
            idempotency_key: String::new(),
            timeout: Some(POLL_TIME),
            workspace: workspace.to_owned(),
        };
        // A poll's call counts against its connection's budget like a step's.
        let answer = match connection {
            Some(connection) => {
                self.call_within_budget(
                    connector.as_ref(),
                    &poll.action.action,
                    connection,
                    input,
                    &context,
                    note_secrets,
                )
                .await
            }
            None => {
                connector
                    .call(&poll.action.action, None, input, &context)
                    .await
            }
        }
        .map_err(|error| hide(format!("the poll's call failed: {}", error.message)))?;
        let listed = self
            .poll_jq(&poll.items, answer.clone(), "items")
            .await
            .map_err(hide)?;
        let Value::Array(list) = listed else {
            return Err(format!(
                "the poll's `items` gave {}, not a list",
                kind_of(&listed)
            ));
        };
        let mut items = Vec::with_capacity(list.len());
        for item in list {
            let key = match self.poll_jq(&poll.key, item.clone(), "key").await? {
                Value::String(text) => text,
                Value::Number(number) => number.to_string(),
                other => {
                    return Err(format!(
                        "the poll's `key` gave {} for an item; it must give text or a number",
                        kind_of(&other)
                    ));
                }
            };
            items.push((key, item));
        }
        let cursor = match &poll.cursor {
            Some(rule) => match self.poll_jq(&rule.next, answer, "cursor.next").await? {
                Value::Null => cursor.clone(),
                next => next,
            },
            None => Value::Null,
        };
        Ok(Polled { items, cursor })
    }

    async fn poll_jq(
        &self,
        program: &JqProgram,
        input: Value,
        what: &str,
    ) -> Result<Value, String> {
        self.jq
            .run(program, input, false, JQ_TIME)
            .await
            .map_err(|failure| match failure {
                JqFailure::Error(error) => format!("the poll's `{what}`: {error}"),
                JqFailure::Timeout(limit) => {
                    format!("the poll's `{what}` ran longer than {} s", limit.as_secs())
                }
                JqFailure::Crashed(reason) | JqFailure::Unavailable(reason) => {
                    format!("the poll's `{what}` could not run: {reason}")
                }
            })
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
