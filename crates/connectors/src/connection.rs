//! A connection: the settings and credentials a connector needs to reach one account.

use serde_json::{Map, Value};
use std::fmt;

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
