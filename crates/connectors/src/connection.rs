//! A connection: the settings and credentials a connector needs to reach one account.

use serde_json::{Map, Value};
use std::fmt;

use crate::connector::ConnectionField;

/// A named connection. Field values are plain here; sealing them at rest is the store's job.
#[derive(Clone)]
pub struct Connection {
    pub name: String,
    pub connector: String,
    pub fields: Map<String, Value>,
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
        }
    }

    /// A field as text, if it is set and not empty.
    pub fn text(&self, field: &str) -> Option<&str> {
        self.fields
            .get(field)
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
    }

    /// Every non-empty string value of the named fields: what must never be shown.
    pub fn secret_values<'a>(
        &'a self,
        secret_fields: &'a [&'a str],
    ) -> impl Iterator<Item = &'a str> + 'a {
        secret_fields.iter().filter_map(|field| self.text(field))
    }
}

/// Never prints field values: a connection's fields may hold secrets.
impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("name", &self.name)
            .field("connector", &self.connector)
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
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
