//! Weft's connectors: the I/O to other systems. A connector is one folder behind the
//! [`Connector`] trait, and one line in [`Registry::builtin`].

pub mod connection;
pub mod connector;
pub mod error;
pub mod http;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use connection::Connection;
pub use connector::{ActionSpec, CallContext, ConnectionField, Connector};
pub use error::{ConnectorError, FailureKind};

/// Options that the operator sets for the built-in connectors.
#[derive(Debug, Clone, Default)]
pub struct ConnectorOptions {
    pub http: http::HttpOptions,
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
        registry.add(Arc::new(http::HttpConnector::new(options.http.clone())?));
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

    /// True when `connector.action` names an action of a registered connector.
    pub fn has_action(&self, connector: &str, action: &str) -> bool {
        self.get(connector)
            .is_some_and(|found| found.actions().iter().any(|spec| spec.name == action))
    }
}
