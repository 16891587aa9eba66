//! Weft's connectors: the I/O to other systems. A connector is one folder behind the
//! [`Connector`] trait, and one line in [`Registry::builtin`].

pub mod amqp;
pub mod connection;
pub mod connector;
pub mod docs;
pub mod email;
pub mod error;
pub mod http;
mod message;
pub mod mqtt;
pub mod mysql;
pub mod nats;
pub mod openapi;
pub mod postgres;
pub mod redis;
pub mod slack;
mod sql;
pub mod sqlite;
pub mod stripe;
pub mod tables;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use connection::{Connection, RateLimits, field_problems};
pub use connector::{
    ActionSpec, CallContext, ConnectionField, Connector, MessageSink, TriggerKind, TriggerSpec,
};
pub use error::{ConnectorError, FailureKind};

/// Options that the operator sets for the built-in connectors.
#[derive(Debug, Clone, Default)]
pub struct ConnectorOptions {
    pub http: http::HttpOptions,
    /// Connectors imported from OpenAPI documents (`weft connectors import-openapi`).
    pub imported: Vec<openapi::Definition>,
}

/// The connectors this process knows, by name.
#[derive(Clone, Default)]
pub struct Registry {
    connectors: BTreeMap<&'static str, Arc<dyn Connector>>,
}

impl Registry {
    /// Every connector that ships with Weft.
    pub fn builtin(options: &ConnectorOptions) -> Result<Self, ConnectorError> {
        let mut registry = Registry::default();
        let http = Arc::new(http::HttpConnector::new(options.http.clone())?);
        registry.add(http.clone());
        registry.add(Arc::new(postgres::PostgresConnector::default()));
        registry.add(Arc::new(mysql::MysqlConnector::default()));
        registry.add(Arc::new(sqlite::SqliteConnector::default()));
        registry.add(Arc::new(redis::RedisConnector::default()));
        registry.add(Arc::new(amqp::AmqpConnector::default()));
        registry.add(Arc::new(mqtt::MqttConnector));
        registry.add(Arc::new(nats::NatsConnector::default()));
        registry.add(Arc::new(email::EmailConnector));
        registry.add(Arc::new(slack::SlackConnector::new(http.clone())));
        registry.add(Arc::new(stripe::StripeConnector::new(http.clone())));
        registry.add(Arc::new(tables::TablesConnector::new(Arc::new(
            tables::NoTables,
        ))));
        for definition in &options.imported {
            if registry.get(&definition.name).is_some() {
                return Err(ConnectorError::validation(format!(
                    "an imported connector cannot be named `{}`: a built-in connector has that name",
                    definition.name
                )));
            }
            registry.add(Arc::new(openapi::OpenApiConnector::new(
                definition.clone(),
                http.clone(),
            )));
        }
        Ok(registry)
    }

    pub fn add(&mut self, connector: Arc<dyn Connector>) {
        self.connectors.insert(connector.name(), connector);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Connector>> {
        self.connectors.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Connector>> {
        self.connectors.values()
    }
}

/// The property names of an object schema that allows no others.
fn closed_properties(schema: &serde_json::Value) -> Option<Vec<String>> {
    if schema.get("additionalProperties") != Some(&serde_json::Value::Bool(false)) {
        return None;
    }
    let properties = schema.get("properties")?.as_object()?;
    Some(properties.keys().cloned().collect())
}

fn string_list(value: Option<&serde_json::Value>) -> Vec<String> {
    value
        .and_then(serde_json::Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The recipe compiler checks actions against the connectors this process has.
impl weft_recipe::Catalog for Registry {
    fn action(&self, connector: &str, action: &str) -> Result<weft_recipe::ActionInfo, String> {
        let Some(found) = self.get(connector) else {
            let known: Vec<&str> = self.connectors.keys().copied().collect();
            return Err(format!(
                "no connector named `{connector}` (known: {})",
                known.join(", ")
            ));
        };
        let actions = found.actions();
        let Some(spec) = actions.iter().find(|spec| spec.name == action) else {
            let names: Vec<&str> = actions.iter().map(|spec| spec.name).collect();
            return Err(format!(
                "the {connector} connector has no action `{action}` (it has: {})",
                names.join(", ")
            ));
        };
        Ok(weft_recipe::ActionInfo {
            needs_connection: found.needs_connection(),
            input_keys: closed_properties(&spec.input_schema),
            required_input: string_list(spec.input_schema.get("required")),
        })
    }

    fn subscription(&self, connector: &str) -> Result<weft_recipe::ActionInfo, String> {
        let subscribing: Vec<&str> = self
            .iter()
            .filter(|found| {
                found
                    .triggers()
                    .iter()
                    .any(|trigger| trigger.kind == TriggerKind::Subscribe)
            })
            .map(|found| found.name())
            .collect();
        let Some(found) = self.get(connector) else {
            return Err(format!(
                "no connector named `{connector}` (these can subscribe: {})",
                subscribing.join(", ")
            ));
        };
        let triggers = found.triggers();
        let Some(spec) = triggers
            .iter()
            .find(|trigger| trigger.kind == TriggerKind::Subscribe)
        else {
            return Err(format!(
                "the {connector} connector cannot feed a subscribe trigger (these can: {})",
                subscribing.join(", ")
            ));
        };
        Ok(weft_recipe::ActionInfo {
            needs_connection: found.needs_connection(),
            input_keys: closed_properties(&spec.input_schema),
            required_input: string_list(spec.input_schema.get("required")),
        })
    }
}
