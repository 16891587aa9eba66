//! A connection: the settings and credentials a connector needs to reach one account.

use serde_json::{Map, Value, json};
use std::fmt;
use std::time::Duration;

use crate::connector::ConnectionField;

/// A named connection. Field values are plain here; sealing them at rest is the store's job.
#[derive(Clone)]
pub struct Connection {
    pub name: String,
    pub connector: String,
    pub fields: Map<String, Value>,
    /// The budget of calls on this connection, shared by every job of the platform.
    pub limits: Option<RateLimits>,
}

/// A connection's budget: at most `requests` calls per `per`, and at most `concurrent`
/// calls at once. Calls over budget wait their turn instead of failing.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimits {
    pub requests: Option<u32>,
    pub per: Duration,
    pub concurrent: Option<u32>,
}

impl RateLimits {
    /// Reads `{ requests, per, concurrent }` (`per` a duration such as `1s` or `1m`,
    /// default `1s`); the error says what is wrong.
    pub fn parse(value: &Value) -> Result<RateLimits, String> {
        let Value::Object(map) = value else {
            return Err("`limits` must be an object: { requests, per, concurrent }".to_owned());
        };
        if let Some(unknown) = map
            .keys()
            .find(|key| !["requests", "per", "concurrent"].contains(&key.as_str()))
        {
            return Err(format!(
                "`limits` has no `{unknown}` (it takes requests, per and concurrent)"
            ));
        }
        let count = |key: &str| -> Result<Option<u32>, String> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(value) => value
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| *n > 0)
                    .map(Some)
                    .ok_or_else(|| format!("`limits.{key}` must be a whole number from 1")),
            }
        };
        let per = match map.get("per") {
            None | Some(Value::Null) => Duration::from_secs(1),
            Some(Value::String(text)) => weft_recipe::duration::parse_duration(text)
                .map_err(|error| format!("`limits.per`: {error}"))?,
            Some(_) => return Err("`limits.per` must be a duration such as `1s`".to_owned()),
        };
        if per.is_zero() {
            return Err("`limits.per` must be longer than zero".to_owned());
        }
        let limits = RateLimits {
            requests: count("requests")?,
            per,
            concurrent: count("concurrent")?,
        };
        if limits.requests.is_none() && limits.concurrent.is_none() {
            return Err("`limits` needs `requests` or `concurrent`".to_owned());
        }
        Ok(limits)
    }

    /// The limits as `parse` reads them.
    pub fn to_json(&self) -> Value {
        let mut value = json!({ "per": weft_recipe::duration::format_duration(self.per) });
        if let Some(requests) = self.requests {
            value["requests"] = json!(requests);
        }
        if let Some(concurrent) = self.concurrent {
            value["concurrent"] = json!(concurrent);
        }
        value
    }
}

impl Connection {
    pub fn new(
        name: impl Into<String>,
        connector: impl Into<String>,
        fields: Map<String, Value>,
    ) -> Self {
        Connection {
            name: name.into(),
            connector: connector.into(),
            fields,
            limits: None,
        }
    }

    pub fn with_limits(mut self, limits: Option<RateLimits>) -> Self {
        self.limits = limits;
        self
    }

    /// A field as text, if it is set and not empty.
    pub fn text(&self, field: &str) -> Option<&str> {
        self.fields
            .get(field)
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
    }

    /// A yes/no field: true when it is `true` or the text `true`.
    pub fn flag(&self, field: &str) -> bool {
        matches!(self.fields.get(field), Some(Value::Bool(true)))
            || self.text(field) == Some("true")
    }

    /// A field as text, or an error naming the missing field.
    pub fn required_text(&self, field: &str) -> Result<&str, crate::ConnectorError> {
        self.text(field).ok_or_else(|| {
            crate::ConnectorError::validation(format!(
                "connection `{}` needs its field `{field}`",
                self.name
            ))
        })
    }

    /// The `port` field: a number or digits; `default` when it is not set.
    pub fn port(&self, default: u16) -> Result<u16, crate::ConnectorError> {
        match self.fields.get("port") {
            None | Some(Value::Null) => Some(default),
            Some(Value::Number(number)) => number.as_u64().and_then(|n| u16::try_from(n).ok()),
            Some(Value::String(text)) if text.is_empty() => Some(default),
            Some(Value::String(text)) => text.parse().ok(),
            Some(_) => None,
        }
        .ok_or_else(|| {
            crate::ConnectorError::validation(format!(
                "connection `{}`: `port` must be a number from 1 to 65535",
                self.name
            ))
        })
    }

    /// Every non-empty string value of the named fields: what must never be shown.
    pub fn secret_values<'a>(
        &'a self,
        secret_fields: &'a [&'a str],
    ) -> impl Iterator<Item = &'a str> + 'a {
        secret_fields
            .iter()
            .filter_map(|field| self.text(field))
            .filter(|value| !value.is_empty())
    }

    /// Secrets made from the fields as they travel: `username:password` in base64, as an
    /// HTTP `Basic` credential (or SMTP's) carries them, decodes to the password.
    pub fn derived_secrets(&self) -> Vec<String> {
        use base64::Engine as _;
        match (self.text("username"), self.text("password")) {
            (Some(user), Some(password)) if !password.is_empty() => {
                vec![base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))]
            }
            _ => Vec::new(),
        }
    }
}

/// Never prints field values: a connection's fields may hold secrets.
impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("name", &self.name)
            .field("connector", &self.connector)
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .field("limits", &self.limits)
            .finish()
    }
}

/// Every problem with a connection's fields against its connector's: unknown fields,
/// missing required ones, values that are not text, numbers or booleans. Messages name
/// fields, never values.
pub fn field_problems(fields: &Map<String, Value>, known: &[ConnectionField]) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, value) in fields {
        match known.iter().find(|field| field.name == name) {
            None => {
                let names: Vec<&str> = known.iter().map(|field| field.name).collect();
                problems.push(format!(
                    "unknown field `{name}` (the connector has: {})",
                    names.join(", ")
                ));
            }
            Some(_) if value.is_object() || value.is_array() => {
                problems.push(format!(
                    "field `{name}` must be text, a number or a boolean"
                ));
            }
            Some(_) => {}
        }
    }
    for field in known.iter().filter(|field| field.required) {
        let missing = match fields.get(field.name) {
            None | Some(Value::Null) => true,
            Some(Value::String(text)) => text.is_empty(),
            Some(_) => false,
        };
        if missing {
            problems.push(format!("field `{}` is required", field.name));
        }
    }
    problems
}
