//! The `tables` connector: lookup tables kept by Weft itself (reference data such as rates,
//! codes or mappings). Rows are read from memory; the same rows serve the `lookup` template
//! function. `weft serve` keeps the tables; elsewhere the connector says so.

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use std::sync::Arc;

use crate::connection::Connection;
use crate::connector::{ActionSpec, CallContext, ConnectionField, Connector};
use crate::error::ConnectorError;

/// A table's columns and rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableData {
    pub columns: Vec<String>,
    pub rows: Vec<Value>,
}

/// A change to a table's rows; it answers what the action outputs. It may run more than once
/// when another writer changes the table meanwhile.
pub type Edit = dyn Fn(&mut Vec<Value>, &[String]) -> Result<Value, String> + Send + Sync;

/// Where tables are kept.
#[async_trait]
pub trait TableRows: Send + Sync {
    /// The workspace's table.
    async fn read(&self, workspace: &str, table: &str) -> Result<Arc<TableData>, String>;
    /// Changes the workspace's table.
    async fn change(&self, workspace: &str, table: &str, edit: &Edit) -> Result<Value, String>;
}

/// Tables where there are none: `weft run` and `weft validate` know the connector's actions,
/// and a job that calls one is told where tables live.
pub struct NoTables;

#[async_trait]
impl TableRows for NoTables {
    async fn read(&self, _workspace: &str, _table: &str) -> Result<Arc<TableData>, String> {
        Err("lookup tables are kept by `weft serve`".to_owned())
    }

    async fn change(&self, _workspace: &str, _table: &str, _edit: &Edit) -> Result<Value, String> {
        Err("lookup tables are kept by `weft serve`".to_owned())
    }
}

/// Values compare as text, so that `42` finds the `"42"` a CSV import stored.
pub fn same(left: &Value, right: &Value) -> bool {
    fn text(value: &Value) -> std::borrow::Cow<'_, str> {
        match value {
            Value::String(text) => text.into(),
            other => other.to_string().into(),
        }
    }
    text(left) == text(right)
}

fn matches(row: &Value, filter: &Map<String, Value>) -> bool {
    filter
        .iter()
        .all(|(column, wanted)| same(row.get(column).unwrap_or(&Value::Null), wanted))
}

/// A row with only the table's columns, every one present (null when not given).
fn shaped(row: &Map<String, Value>, columns: &[String]) -> Result<Value, String> {
    if let Some(unknown) = row.keys().find(|key| !columns.contains(key)) {
        return Err(format!(
            "the table has no column `{unknown}` (it has: {})",
            columns.join(", ")
        ));
    }
    Ok(Value::Object(
        columns
            .iter()
            .map(|column| {
                (
                    column.clone(),
                    row.get(column).cloned().unwrap_or(Value::Null),
                )
            })
            .collect(),
    ))
}

pub struct TablesConnector {
    tables: Arc<dyn TableRows>,
}

impl TablesConnector {
    pub fn new(tables: Arc<dyn TableRows>) -> TablesConnector {
        TablesConnector { tables }
    }
}

fn object<'a>(input: &'a Value, key: &str) -> Result<&'a Map<String, Value>, ConnectorError> {
    input[key]
        .as_object()
        .filter(|map| !map.is_empty())
        .ok_or_else(|| {
            ConnectorError::validation(format!(
                "`{key}` is required: an object of columns to values"
            ))
        })
}

#[async_trait]
impl Connector for TablesConnector {
    fn name(&self) -> &'static str {
        "tables"
    }

    fn description(&self) -> &'static str {
        "Lookup tables kept by Weft: look rows up by any column, add, update, upsert and delete them. Templates read them with lookup('table', column=value)."
    }

    fn needs_connection(&self) -> bool {
        false
    }

    fn connection_fields(&self) -> Vec<ConnectionField> {
        Vec::new()
    }

    fn actions(&self) -> Vec<ActionSpec> {
        let table = json!({ "type": "string", "description": "The table's name." });
        let filter = json!({ "type": "object", "description": "Columns to values the rows must equal (compared as text)." });
        let row = json!({ "type": "object", "description": "Columns to values." });
        let spec = |name, description, properties: Value, required: &[&str], output: Value| {
            ActionSpec {
                name,
                description,
                input_schema: json!({ "type": "object", "additionalProperties": false, "properties": properties, "required": required }),
                output_schema: output,
            }
        };
        vec![
            spec(
                "lookup",
                "The rows that match `where`; `row` is the first of them, or null.",
                json!({ "table": table, "where": filter }),
                &["table", "where"],
                json!({ "type": "object", "properties": { "row": {}, "rows": { "type": "array" } }, "required": ["row", "rows"] }),
            ),
            spec(
                "add",
                "Adds a row.",
                json!({ "table": table, "row": row }),
                &["table", "row"],
                json!({ "type": "object", "properties": { "rows": { "type": "integer", "description": "Rows in the table now." } } }),
            ),
            spec(
                "update",
                "Sets columns of the rows that match `where`.",
                json!({ "table": table, "where": filter, "set": row }),
                &["table", "where", "set"],
                json!({ "type": "object", "properties": { "updated": { "type": "integer" } } }),
            ),
            spec(
                "upsert",
                "Updates the row whose `key` column equals the row's, or adds it.",
                json!({ "table": table, "key": { "type": "string" }, "row": row }),
                &["table", "key", "row"],
                json!({ "type": "object", "properties": { "added": { "type": "boolean" } } }),
            ),
            spec(
                "delete",
                "Deletes the rows that match `where`.",
                json!({ "table": table, "where": filter }),
                &["table", "where"],
                json!({ "type": "object", "properties": { "deleted": { "type": "integer" } } }),
            ),
        ]
    }

    async fn test_connection(&self, _connection: &Connection) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn call(
        &self,
        action: &str,
        _connection: Option<&Connection>,
        input: Value,
        context: &CallContext,
    ) -> Result<Value, ConnectorError> {
        let table = input["table"]
            .as_str()
            .filter(|name| !name.is_empty())
            .ok_or_else(|| ConnectorError::validation("`table` is required, as text"))?
            .to_owned();
        let failed = ConnectorError::validation;
        match action {
            "lookup" => {
                let filter = object(&input, "where")?;
                let data = self
                    .tables
                    .read(&context.workspace, &table)
                    .await
                    .map_err(failed)?;
                let rows: Vec<Value> = data
                    .rows
                    .iter()
                    .filter(|row| matches(row, filter))
                    .cloned()
                    .collect();
                Ok(json!({ "row": rows.first().cloned().unwrap_or(Value::Null), "rows": rows }))
            }
            "add" => {
                let row = object(&input, "row")?.clone();
                let edit = move |rows: &mut Vec<Value>, columns: &[String]| {
                    rows.push(shaped(&row, columns)?);
                    Ok(json!({ "rows": rows.len() }))
                };
                self.tables
                    .change(&context.workspace, &table, &edit)
                    .await
                    .map_err(failed)
            }
            "update" => {
                let filter = object(&input, "where")?.clone();
                let set = object(&input, "set")?.clone();
                let edit = move |rows: &mut Vec<Value>, columns: &[String]| {
                    shaped(&set, columns)?;
                    let mut updated = 0;
                    for row in rows.iter_mut().filter(|row| matches(row, &filter)) {
                        for (column, value) in &set {
                            row[column] = value.clone();
                        }
                        updated += 1;
                    }
                    Ok(json!({ "updated": updated }))
                };
                self.tables
                    .change(&context.workspace, &table, &edit)
                    .await
                    .map_err(failed)
            }
            "upsert" => {
                let key = input["key"]
                    .as_str()
                    .ok_or_else(|| ConnectorError::validation("`key` is required: a column"))?
                    .to_owned();
                let row = object(&input, "row")?.clone();
                let key_value = row.get(&key).cloned().ok_or_else(|| {
                    ConnectorError::validation(format!("the row needs its key column `{key}`"))
                })?;
                let edit = move |rows: &mut Vec<Value>, columns: &[String]| {
                    let full = shaped(&row, columns)?;
                    match rows.iter_mut().find(|existing| {
                        same(existing.get(&key).unwrap_or(&Value::Null), &key_value)
                    }) {
                        Some(existing) => {
                            for (column, value) in &row {
                                existing[column] = value.clone();
                            }
                            Ok(json!({ "added": false }))
                        }
                        None => {
                            rows.push(full);
                            Ok(json!({ "added": true }))
                        }
                    }
                };
                self.tables
                    .change(&context.workspace, &table, &edit)
                    .await
                    .map_err(failed)
            }
            "delete" => {
                let filter = object(&input, "where")?.clone();
                let edit = move |rows: &mut Vec<Value>, _columns: &[String]| {
                    let before = rows.len();
                    rows.retain(|row| !matches(row, &filter));
                    Ok(json!({ "deleted": before - rows.len() }))
                };
                self.tables
                    .change(&context.workspace, &table, &edit)
                    .await
                    .map_err(failed)
            }
            other => Err(ConnectorError::validation(format!(
                "no action `{other}` (the tables connector has lookup, add, update, upsert and delete)"
            ))),
        }
    }
}
