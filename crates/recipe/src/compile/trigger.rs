//! Compiling the trigger: exactly one kind, with its own keys.

use std::str::FromStr;
use std::time::Duration;

use crate::compile::reader::MapReader;
use crate::compile::{Compiler, Scope};
use crate::model::{
    InputSchema, ManualTrigger, PollCursor, PollTrigger, ScheduleTrigger, SignatureScheme,
    SignatureSecret, SubscribeTrigger, Trigger, WebhookMode, WebhookSignature, WebhookTrigger,
};
use crate::node::{Node, NodeValue};
use crate::template::TemplateValue;

const KINDS: &[&str] = &["webhook", "schedule", "poll", "subscribe", "manual"];
/// Shortest poll interval: polling faster than this only burdens the other system.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(10);

impl Compiler<'_> {
    pub(super) fn trigger(&mut self, node: &Node) -> Option<Trigger> {
        let mut map = MapReader::open(self, node, "the trigger")?;
        let kinds = map.present(KINDS);
        let kind = match kinds.as_slice() {
            [one] => *one,
            [] => {
                self.problem(
                    map.span,
                    format!("the trigger needs one kind: {}", KINDS.join(", ")),
                );
                map.finish(self, KINDS);
                return None;
            }
            [first, second, ..] => {
                let second_span = map
                    .take_entry(second)
                    .map(|(key, _)| key.span)
                    .unwrap_or(map.span);
                self.problem(second_span, format!("a recipe has one trigger kind, but this one has both `{first}` and `{second}`"));
                for kind in &kinds {
                    map.take(kind);
                }
                map.finish(self, KINDS);
                return None;
            }
        };
        let body = map.take(kind)?;
        map.finish(self, KINDS);
        match kind {
            "webhook" => self.webhook(body).map(Trigger::Webhook),
            "schedule" => self.schedule(body).map(Trigger::Schedule),
            "poll" => self.poll(body).map(Trigger::Poll),
            "subscribe" => self.subscribe(body).map(Trigger::Subscribe),
            _ => self.manual(body).map(Trigger::Manual),
        }
    }

    fn webhook(&mut self, node: &Node) -> Option<WebhookTrigger> {
        let mut map = MapReader::open(self, node, "the webhook trigger")?;
        let path = map.require(self, "path").and_then(|node| {
            let path = self.string(node, "webhook.path")?;
            let valid = !path.is_empty()
                && path
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'))
                && !path.starts_with('/')
                && !path.contains("//")
                && !path.split('/').any(|part| part == "." || part == "..");
            if !valid {
                self.problem(node.span, format!("`{path}` is not a webhook path: use letters, digits, `-`, `_`, `.` and `/` between parts, as in `orders/new`"));
            }
            Some(path)
        });
        let method = match map.take("method") {
            Some(node) => self
                .choice(
                    node,
                    "webhook.method",
                    &["POST", "PUT", "PATCH", "GET", "DELETE"],
                )?
                .to_owned(),
            None => "POST".to_owned(),
        };
        let mode = match map.take("mode") {
            Some(node) => match self.choice(node, "webhook.mode", &["async", "sync"])? {
                "sync" => WebhookMode::Sync,
                _ => WebhookMode::Async,
            },
            None => WebhookMode::Async,
        };
        let signature = map.take("signature").and_then(|node| self.signature(node));
        map.finish(self, &["path", "method", "mode", "signature"]);
        Some(WebhookTrigger {
            path: path?,
            method,
            mode,
            signature,
        })
    }

    fn signature(&mut self, node: &Node) -> Option<WebhookSignature> {
        let mut map = MapReader::open(self, node, "webhook.signature")?;
        let scheme_name = match map.take("scheme") {
            Some(node) => self
                .choice(
                    node,
                    "signature.scheme",
                    &["hmac-sha256", "slack", "stripe"],
                )?
                .to_owned(),
            None => "hmac-sha256".to_owned(),
        };
        let secret = map
            .take("secret")
            .and_then(|node| self.string(node, "signature.secret"));
        let connection = map
            .take("connection")
            .and_then(|node| self.string(node, "signature.connection"));
        let secret = match (secret, connection) {
            (Some(secret), None) => Some(SignatureSecret::Literal(secret)),
            (None, Some(name)) => Some(SignatureSecret::Connection(name)),
            _ => {
                self.problem(
                    node.span,
                    "a signature needs its `secret`, or (better: it is then sealed) a `connection` whose `signing_secret` holds it; one of the two".to_owned(),
                );
                None
            }
        };
        let scheme = if scheme_name == "hmac-sha256" {
            let header = map
                .require(self, "header")
                .and_then(|node| self.string(node, "signature.header"));
            if let Some(node) = map.take("algorithm") {
                self.choice(node, "signature.algorithm", &["hmac-sha256"])?;
            }
            let prefix = map
                .take("prefix")
                .and_then(|node| self.string(node, "signature.prefix"))
                .unwrap_or_default();
            SignatureScheme::Hmac {
                header: header?.to_ascii_lowercase(),
                prefix,
            }
        } else if scheme_name == "slack" {
            SignatureScheme::Slack
        } else {
            SignatureScheme::Stripe
        };
        let keys: &[&str] = match scheme {
            SignatureScheme::Hmac { .. } => &[
                "scheme",
                "header",
                "secret",
                "connection",
                "algorithm",
                "prefix",
            ],
            _ => &["scheme", "secret", "connection"],
        };
        map.finish(self, keys);
        Some(WebhookSignature {
            scheme,
            secret: secret?,
        })
    }

    fn schedule(&mut self, node: &Node) -> Option<ScheduleTrigger> {
        let mut map = MapReader::open(self, node, "the schedule trigger")?;
        let cron = map.require(self, "cron").and_then(|node| {
            let text = self.string(node, "cron")?;
            match check_cron(&text) {
                Ok(schedule) => Some((text, schedule)),
                Err(message) => {
                    self.problem(node.span, message);
                    None
                }
            }
        });
        let timezone = match map.take("timezone") {
            Some(node) => {
                let text = self.string(node, "timezone")?;
                match chrono_tz::Tz::from_str(&text) {
                    Ok(zone) => Some(zone),
                    Err(_) => {
                        self.problem(node.span, format!("`{text}` is not an IANA time zone (such as `Europe/Paris` or `UTC`)"));
                        None
                    }
                }
            }
            None => Some(chrono_tz::UTC),
        };
        map.finish(self, &["cron", "timezone"]);
        let (cron, schedule) = cron?;
        Some(ScheduleTrigger {
            cron,
            schedule,
            timezone: timezone?,
        })
    }

    fn poll(&mut self, node: &Node) -> Option<PollTrigger> {
        let mut map = MapReader::open(self, node, "the poll trigger")?;
        let scope = Scope::poll_input();
        let every = map.require(self, "every").and_then(|node| {
            let every = self.duration(node, "poll.every")?;
            if every < MIN_POLL_INTERVAL {
                self.problem(node.span, "poll.every must be at least 10s");
            }
            Some(every)
        });
        let action_node = map.require(self, "action");
        let action = action_node.and_then(|node| self.action_ref(node));
        let connection = map
            .take("connection")
            .and_then(|node| self.string(node, "poll.connection"));
        let input_node = map.take("input");
        if let (Some(node), Some(action)) = (action_node, &action) {
            match self.catalog.action(&action.connector, &action.action) {
                Ok(info) => {
                    if info.needs_connection && connection.is_none() {
                        self.problem(node.span, format!("`{action}` needs a `connection`"));
                    }
                    self.check_input_keys(action, &info, input_node, map.span);
                }
                Err(message) => self.problem(node.span, message),
            }
        }
        let input = match input_node {
            Some(node) => self.template(node, &scope, "the poll input"),
            None => TemplateValue::Literal(serde_json::json!({})),
        };
        let items = map
            .require(self, "items")
            .and_then(|node| self.jq(node, &scope, "poll.items"));
        let key = map
            .require(self, "key")
            .and_then(|node| self.jq(node, &scope, "poll.key"));
        let cursor = map.take("cursor").and_then(|node| {
            let mut cursor = MapReader::open(self, node, "poll.cursor")?;
            let initial = cursor
                .take("initial")
                .map(Node::to_json)
                .unwrap_or_default();
            let next = cursor
                .require(self, "next")
                .and_then(|node| self.jq(node, &scope, "poll.cursor.next"));
            cursor.finish(self, &["initial", "next"]);
            Some(PollCursor {
                initial,
                next: next?,
            })
        });
        map.finish(
            self,
            &[
                "every",
                "action",
                "connection",
                "input",
                "items",
                "key",
                "cursor",
            ],
        );
        Some(PollTrigger {
            every: every?,
            action: action?,
            connection,
            input,
            items: items?,
            key: key?,
            cursor,
        })
    }

    fn subscribe(&mut self, node: &Node) -> Option<SubscribeTrigger> {
        let mut map = MapReader::open(self, node, "the subscribe trigger")?;
        let connector_node = map.require(self, "connector");
        let connector = connector_node.and_then(|node| self.string(node, "subscribe.connector"));
        let connection = map
            .take("connection")
            .and_then(|node| self.string(node, "subscribe.connection"));
        let mut info = None;
        if let (Some(node), Some(name)) = (connector_node, &connector) {
            match self.catalog.subscription(name) {
                Ok(found) => {
                    if found.needs_connection && connection.is_none() {
                        self.problem(
                            node.span,
                            format!("subscribing with `{name}` needs a `connection`"),
                        );
                    }
                    info = Some(found);
                }
                Err(message) => self.problem(node.span, message),
            }
        }
        let mut options = serde_json::Map::new();
        for (key, value) in map.remaining() {
            let known = info
                .as_ref()
                .and_then(|info| info.input_keys.as_ref())
                .is_none_or(|keys| keys.contains(&key.name));
            if !known {
                let keys = info
                    .as_ref()
                    .and_then(|info| info.input_keys.clone())
                    .unwrap_or_default();
                self.problem(
                    key.span,
                    format!(
                        "a {} subscription has no option `{}` (it has: connector, connection, {})",
                        connector.as_deref().unwrap_or_default(),
                        key.name,
                        keys.join(", ")
                    ),
                );
            }
            options.insert(key.name.clone(), value.to_json());
        }
        for required in info.iter().flat_map(|info| &info.required_input) {
            if !options.contains_key(required) {
                self.problem(
                    node.span,
                    format!("the subscribe trigger needs `{required}`"),
                );
            }
        }
        Some(SubscribeTrigger {
            connector: connector?,
            connection,
            options,
        })
    }

    fn manual(&mut self, node: &Node) -> Option<ManualTrigger> {
        if matches!(node.value, NodeValue::Null) {
            return Some(ManualTrigger { input_schema: None });
        }
        let mut map = MapReader::open(self, node, "the manual trigger")?;
        let input_schema = map
            .take("input_schema")
            .and_then(|schema| match schema.value {
                NodeValue::Map(_) | NodeValue::Bool(_) => {
                    match InputSchema::compile(schema.to_json()) {
                        Ok(compiled) => Some(compiled),
                        Err(message) => {
                            self.problem(schema.span, message);
                            None
                        }
                    }
                }
                _ => {
                    self.problem(schema.span, "input_schema must be a JSON Schema object");
                    None
                }
            });
        map.finish(self, &["input_schema"]);
        Some(ManualTrigger { input_schema })
    }
}

/// Checks a cron expression of 5 fields (minute first) or 6 (seconds first).
pub fn check_cron(text: &str) -> Result<croner::Cron, String> {
    let fields = text.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(format!(
            "`{text}` is not a cron expression: it has {fields} field{}, and a cron expression has 5 (minute hour day month weekday) or 6 (with seconds first)",
            if fields == 1 { "" } else { "s" }
        ));
    }
    parse_cron(text)
        .map_err(|message| format!("`{text}` is not a valid cron expression: {message}"))
}

/// Parses a checked cron expression into a schedule.
pub fn parse_cron(text: &str) -> Result<croner::Cron, String> {
    let seconds = text.split_whitespace().count() == 6;
    let seconds = if seconds {
        croner::parser::Seconds::Required
    } else {
        croner::parser::Seconds::Disallowed
    };
    croner::parser::CronParser::builder()
        .seconds(seconds)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(text)
        .map_err(|error| error.to_string())
}
