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

use weft_connectors::Connection;
use weft_engine::Connections;

/// Debug shows connection names only (see `Connection`), never secrets.
#[derive(Default, Debug)]
pub struct ConnectionsFile {
    connections: BTreeMap<String, Connection>,
}

impl ConnectionsFile {
    pub fn load(path: &Path) -> anyhow::Result<ConnectionsFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the connections file {}", path.display()))?;
        Self::parse(&text, |name| std::env::var(name).ok())
            .with_context(|| format!("in the connections file {}", path.display()))
    }

    pub fn parse(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<ConnectionsFile> {
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
            for (field, value) in fields.iter_mut() {
                if let Value::String(text) = value {
                    *text = expand_env(text, &env)
                        .with_context(|| format!("connection `{name}`, field `{field}`"))?;
                }
            }
            connections.insert(name.clone(), Connection::new(name, connector, fields));
        }
        Ok(ConnectionsFile { connections })
    }
}

impl Connections for ConnectionsFile {
    fn get(&self, name: &str) -> Option<Connection> {
        self.connections.get(name).cloned()
    }
}

/// Replaces each `${NAME}` with the environment variable's value. A missing variable is an
/// error: a connection with an empty secret fails later with a worse message.
fn expand_env(text: &str, env: &impl Fn(&str) -> Option<String>) -> anyhow::Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            bail!("`${{` is not closed by `}}`");
        };
        let name = &after[..end];
        match env(name) {
            Some(value) => out.push_str(&value),
            None => bail!("the environment variable {name} is not set"),
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
        let file = ConnectionsFile::parse(text, env).unwrap();
        let crm = file.get("crm").unwrap();
        assert_eq!(crm.text("token"), Some("t0k3n"));
        assert_eq!(crm.text("base_url"), Some("https://x.test/api/v1"));
    }

    #[test]
    fn a_missing_variable_is_named_and_its_value_is_not_shown() {
        let error = ConnectionsFile::parse("crm:\n  connector: http\n  token: ${NOPE}\n", |_| None)
            .unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("NOPE"), "{message}");
        assert!(ConnectionsFile::parse("crm:\n  token: x\n", |_| None).is_err());
    }
}
