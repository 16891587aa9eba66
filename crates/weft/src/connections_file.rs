//! The `--connections` file of `weft run`: connections by name, with secrets taken from the
//! environment so that the file itself can be committed.
//!
//! ```yaml
//! crm:
//!   connector: http
//!   base_url: https://api.example.com/v2
//!   auth: bearer
//!   token: ${CRM_TOKEN}
//! ```

use anyhow::{Context, bail};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

use weft_connectors::{Connection, RateLimits};
use weft_engine::Connections;

/// Debug shows connection names only (see `Connection`), never secrets.
#[derive(Default, Debug)]
pub struct ConnectionsFile {
    /// As written: `${NAME}` references are resolved when a job uses the connection, so that
    /// a file shared by many recipes needs only the variables of the connections in use.
    connections: BTreeMap<String, Connection>,
}

impl ConnectionsFile {
    pub fn load(path: &Path) -> anyhow::Result<ConnectionsFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the connections file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in the connections file {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<ConnectionsFile> {
        let root: Map<String, Value> = serde_saphyr::from_str(text)
            .map_err(|error| anyhow::anyhow!("not a mapping of connections by name: {error}"))?;
        let mut connections = BTreeMap::new();
        for (name, value) in root {
            let Value::Object(mut fields) = value else {
                bail!("connection `{name}` must be a mapping of its fields");
            };
            let connector = match fields.remove("connector") {
                Some(Value::String(connector)) => connector,
                _ => bail!("connection `{name}` needs `connector:` (such as `http`)"),
            };
            let limits = fields
                .remove("limits")
                .map(|limits| RateLimits::parse(&limits))
                .transpose()
                .map_err(|message| anyhow::anyhow!("connection `{name}`: {message}"))?;
            connections.insert(
                name.clone(),
                Connection::new(name, connector, fields).with_limits(limits),
            );
        }
        Ok(ConnectionsFile { connections })
    }

    /// Every connection of the file with its `${NAME}` references resolved from the
    /// environment, in the order of their names.
    pub fn resolve_all(&self) -> anyhow::Result<Vec<Connection>> {
        self.connections
            .keys()
            .map(|name| {
                self.resolve(name, |variable| std::env::var(variable).ok())
                    .map_err(anyhow::Error::msg)
            })
            .collect()
    }

    /// A connection with its `${NAME}` references resolved by `env`.
    fn resolve(
        &self,
        name: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Connection, String> {
        let mut connection = self
            .connections
            .get(name)
            .cloned()
            .ok_or_else(|| format!("no connection named `{name}` in the connections file"))?;
        for (field, value) in connection.fields.iter_mut() {
            if let Value::String(text) = value {
                *text = expand_env(text, &env)
                    .map_err(|error| format!("connection `{name}`, field `{field}`: {error}"))?;
            }
        }
        Ok(connection)
    }
}

#[async_trait::async_trait]
impl Connections for ConnectionsFile {
    async fn get(&self, _workspace: &str, name: &str) -> Result<Connection, String> {
        self.resolve(name, |variable| std::env::var(variable).ok())
    }
}

/// Replaces each `${NAME}` with the environment variable's value. A missing variable is an
/// error: a connection with an empty secret fails later with a worse message.
fn expand_env(text: &str, env: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err("`${` is not closed by `}`".to_owned());
        };
        let name = &after[..end];
        match env(name) {
            Some(value) => out.push_str(&value),
            None => return Err(format!("the environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_the_environment() {
        let text = "crm:\n  connector: http\n  auth: bearer\n  token: ${TOKEN}\n  base_url: https://x.test/${PATH_PART}/v1\n";
        let env = |name: &str| match name {
            "TOKEN" => Some("t0k3n".to_owned()),
            "PATH_PART" => Some("api".to_owned()),
            _ => None,
        };
        let file = ConnectionsFile::parse(text).unwrap();
        let crm = file.resolve("crm", env).unwrap();
        assert_eq!(crm.text("token"), Some("t0k3n"));
        assert_eq!(crm.text("base_url"), Some("https://x.test/api/v1"));
    }

    #[test]
    fn a_missing_variable_is_named_when_the_connection_is_used() {
        let text = "crm:\n  connector: http\n  token: ${NOPE}\nother:\n  connector: http\n  token: plain\n";
        let file = ConnectionsFile::parse(text).unwrap();
        let message = file.resolve("crm", |_| None).unwrap_err();
        assert!(
            message.contains("NOPE") && message.contains("`crm`"),
            "{message}"
        );
        // Connections that do not need the variable are usable.
        assert_eq!(
            file.resolve("other", |_| None).unwrap().text("token"),
            Some("plain")
        );
        assert!(ConnectionsFile::parse("crm:\n  token: x\n").is_err());
    }
}
