//! The `slack` connector: post and update messages and upload text as a file through Slack's
//! Web API, with a bot token. Slack's events reach a recipe through a webhook trigger with
//! `signature: { scheme: slack, connection: NAME }`, the connection's `signing_secret`
//! checking each request.

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use std::sync::Arc;

use crate::connection::Connection;
use crate::connector::{ActionSpec, CallContext, ConnectionField, Connector};
use crate::error::ConnectorError;
use crate::http::HttpConnector;

const WEB_API: &str = "https://slack.com/api";

pub struct SlackConnector {
    http: Arc<HttpConnector>,
}

impl SlackConnector {
    pub fn new(http: Arc<HttpConnector>) -> SlackConnector {
        SlackConnector { http }
    }

    /// Calls a Web API method and returns its answer, or the `error` Slack gives.
    async fn method(
        &self,
        connection: &Connection,
        name: &str,
        request: Value,
        context: &CallContext,
    ) -> Result<Value, ConnectorError> {
        let api = crate::http::bearer_connection(
            &connection.name,
            connection.text("base_url").unwrap_or(WEB_API),
            connection.text("token").unwrap_or_default(),
        );
        let mut request = request;
        request["url"] = json!(format!("/{name}"));
        let answer = self
            .http
            .call("request", Some(&api), request, context)
            .await?;
        let body = answer["body"].clone();
        if body["ok"] != true {
            let error = body["error"].as_str().unwrap_or("an answer without `ok`");
            return Err(ConnectorError::remote(format!(
                "Slack's {name} refused: {error}"
            )));
        }
        Ok(body)
    }
}

fn text<'a>(input: &'a Value, key: &str) -> Result<&'a str, ConnectorError> {
    input[key]
        .as_str()
        .filter(|text| !text.is_empty())
        .ok_or_else(|| ConnectorError::validation(format!("`{key}` is required, as text")))
}

/// The fields of a message that Slack takes as they are.
fn message_fields(input: &Value, names: &[&str]) -> Map<String, Value> {
    names
        .iter()
        .filter_map(|name| {
            input
                .get(*name)
                .filter(|value| !value.is_null())
                .map(|value| ((*name).to_owned(), value.clone()))
        })
        .collect()
}

#[async_trait]
impl Connector for SlackConnector {
    fn name(&self) -> &'static str {
        "slack"
    }

    fn description(&self) -> &'static str {
        "Posts and updates Slack messages and uploads text as files; Slack's events reach a webhook trigger with `signature: { scheme: slack, connection: … }`."
    }

    fn needs_connection(&self) -> bool {
        true
    }

    fn connection_fields(&self) -> Vec<ConnectionField> {
        let field = ConnectionField::new;
        vec![
            field("token", "The app's bot token (xoxb-…).", true, true),
            field(
                "signing_secret",
                "The app's signing secret, to check the events Slack sends.",
                false,
                true,
            ),
            field(
                "base_url",
                "The Web API's address (default https://slack.com/api).",
                false,
                false,
            ),
        ]
    }

    fn actions(&self) -> Vec<ActionSpec> {
        let answer = json!({ "type": "object", "description": "Slack's answer (`ok` is true), such as `channel` and `ts`." });
        vec![
            ActionSpec {
                name: "post_message",
                description: "Posts a message to a channel (chat.postMessage).",
                input_schema: json!({
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "channel": { "type": "string", "description": "A channel id (C…) or name." },
                        "text": { "type": "string" },
                        "blocks": { "type": "array", "description": "Block Kit blocks; `text` is then the notification's text." },
                        "thread_ts": { "type": "string", "description": "Reply in this message's thread." },
                    },
                    "required": ["channel", "text"],
                }),
                output_schema: answer.clone(),
            },
            ActionSpec {
                name: "update_message",
                description: "Changes a message (chat.update).",
                input_schema: json!({
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "channel": { "type": "string" },
                        "ts": { "type": "string", "description": "The message's `ts`, from post_message." },
                        "text": { "type": "string" },
                        "blocks": { "type": "array" },
                    },
                    "required": ["channel", "ts", "text"],
                }),
                output_schema: answer.clone(),
            },
            ActionSpec {
                name: "upload_text",
                description: "Uploads text as a file to a channel (files.getUploadURLExternal, the upload, files.completeUploadExternal).",
                input_schema: json!({
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "channel": { "type": "string", "description": "A channel id (C…)." },
                        "filename": { "type": "string" },
                        "content": { "description": "Text as it is; anything else as its JSON." },
                        "title": { "type": "string" },
                        "comment": { "type": "string", "description": "A message posted with the file." },
                    },
                    "required": ["channel", "filename", "content"],
                }),
                output_schema: answer,
            },
        ]
    }

    async fn test_connection(&self, connection: &Connection) -> Result<(), ConnectorError> {
        let context = CallContext::outside_jobs(std::time::Duration::from_secs(10));
        self.method(
            connection,
            "auth.test",
            json!({ "method": "POST" }),
            &context,
        )
        .await
        .map(|_| ())
    }

    async fn call(
        &self,
        action: &str,
        connection: Option<&Connection>,
        input: Value,
        context: &CallContext,
    ) -> Result<Value, ConnectorError> {
        let connection = connection.ok_or_else(|| {
            ConnectorError::validation("the slack connector needs a `connection`")
        })?;
        match action {
            "post_message" => {
                text(&input, "channel")?;
                text(&input, "text")?;
                let body = message_fields(&input, &["channel", "text", "blocks", "thread_ts"]);
                self.method(
                    connection,
                    "chat.postMessage",
                    json!({ "method": "POST", "body": body }),
                    context,
                )
                .await
            }
            "update_message" => {
                for key in ["channel", "ts", "text"] {
                    text(&input, key)?;
                }
                let body = message_fields(&input, &["channel", "ts", "text", "blocks"]);
                self.method(
                    connection,
                    "chat.update",
                    json!({ "method": "POST", "body": body }),
                    context,
                )
                .await
            }
            "upload_text" => {
                let channel = text(&input, "channel")?;
                let filename = text(&input, "filename")?;
                let content =
                    String::from_utf8(crate::message::body(&input["content"])).unwrap_or_default();
                let place = self
                    .method(
                        connection,
                        "files.getUploadURLExternal",
                        json!({ "method": "POST", "form": { "filename": filename, "length": content.len().to_string() } }),
                        context,
                    )
                    .await?;
                let (Some(upload_url), Some(file_id)) =
                    (place["upload_url"].as_str(), place["file_id"].as_str())
                else {
                    return Err(ConnectorError::remote(
                        "Slack gave no upload_url and file_id",
                    ));
                };
                // The upload URL is Slack's own, signed; it takes no token.
                self.http
                    .call(
                        "request",
                        None,
                        json!({ "method": "POST", "url": upload_url, "body": content }),
                        context,
                    )
                    .await?;
                let title = input["title"].as_str().unwrap_or(filename);
                let mut complete =
                    json!({ "files": [{ "id": file_id, "title": title }], "channel_id": channel });
                if let Some(comment) = input["comment"].as_str() {
                    complete["initial_comment"] = json!(comment);
                }
                self.method(
                    connection,
                    "files.completeUploadExternal",
                    json!({ "method": "POST", "body": complete }),
                    context,
                )
                .await
            }
            other => Err(ConnectorError::validation(format!(
                "no action `{other}` (the slack connector has post_message, update_message and upload_text)"
            ))),
        }
    }
}
