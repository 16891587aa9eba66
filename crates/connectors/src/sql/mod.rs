//! What the database connectors (`postgres`, `mysql`, `sqlite`) share: their actions and
//! schemas, the parsing of their input, and the statements the row actions (insert, update,
//! upsert, delete) build. Each connector supplies its dialect and runs the statements.
//!
//! Values always travel as bound parameters, never in the SQL text; table and column names
//! are checked and quoted.

use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use crate::connection::Connection;
use crate::connector::ActionSpec;
use crate::error::ConnectorError;

/// Most rows one action returns; a larger result fails the step instead of filling memory.
pub const MAX_ROWS: usize = 10_000;

/// Longest wait for a connection to the database, when the step sets no shorter timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections a pool keeps open to one database at most.
pub const POOL_SIZE: u32 = 5;

/// The pools of a database connector, one per connection's settings: an edited connection
/// gets a new pool. A pool is made on first use.
pub struct Pools<P> {
    pools: Mutex<HashMap<String, P>>,
}

impl<P> Default for Pools<P> {
    fn default() -> Self {
        Pools {
            pools: Mutex::new(HashMap::new()),
        }
    }
}

impl<P: Clone> Pools<P> {
    pub async fn get<F, Fut>(&self, connection: &Connection, open: F) -> Result<P, ConnectorError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<P, ConnectorError>>,
    {
        let key = format!(
            "{}\0{}",
            connection.name,
            Value::Object(connection.fields.clone())
        );
        if let Some(pool) = self
            .pools
            .lock()
            .ok()
            .and_then(|pools| pools.get(&key).cloned())
        {
            return Ok(pool);
        }
        let pool = open().await?;
        if let Ok(mut pools) = self.pools.lock() {
            // The settings of a connection's earlier versions are of no more use.
            pools.retain(|known, _| !known.starts_with(&format!("{}\0", connection.name)));
            pools.insert(key, pool.clone());
        }
        Ok(pool)
    }
}

/// A pool that connects when first used, sized and timed as every database connector's.
pub fn lazy_pool<DB: sqlx::Database>(
    options: <DB::Connection as sqlx::Connection>::Options,
) -> sqlx::Pool<DB> {
    sqlx::pool::PoolOptions::<DB>::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_lazy_with(options)
}

/// A connection test: the database answers a ping.
pub async fn ping<DB: sqlx::Database>(
    pool: &sqlx::Pool<DB>,
    connection: &Connection,
) -> Result<(), ConnectorError> {
    use sqlx::Connection as _;
    let mut pooled = pool
        .acquire()
        .await
        .map_err(|error| unreachable(connection, error))?;
    pooled
        .ping()
        .await
        .map_err(|error| unreachable(connection, error))
}

/// The connection fields of a database server: host, port, database, user, password and
/// TLS mode.
pub fn server_fields(port_description: &'static str) -> Vec<crate::connector::ConnectionField> {
    let field = crate::connector::ConnectionField::new;
    vec![
        field("host", "Host name or address.", true, false),
        field("port", port_description, false, false),
        field("database", "Database name.", true, false),
        field("user", "User name.", true, false),
        field("password", "Password.", false, true),
        field(
            "sslmode",
            "disable, prefer (default) or require.",
            false,
            false,
        ),
    ]
}

/// A connection's TLS mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Prefer,
    Require,
}

pub fn tls_mode(connection: &Connection) -> Result<TlsMode, ConnectorError> {
    match connection.text("sslmode").unwrap_or("prefer") {
        "disable" => Ok(TlsMode::Disable),
        "prefer" => Ok(TlsMode::Prefer),
        "require" => Ok(TlsMode::Require),
        other => Err(ConnectorError::validation(format!(
            "connection `{}`: sslmode must be disable, prefer or require, not `{other}`",
            connection.name
        ))),
    }
}

/// The statements an action runs, for a database whose values are bound one by one.
pub fn statements_of(action: &SqlAction, dialect: Dialect) -> Vec<Statement> {
    match action {
        SqlAction::Run { statements, .. } => statements.clone(),
        row_action => row_action.bound_statement(dialect).into_iter().collect(),
    }
}

/// The connection a database connector's action needs.
pub fn needed<'a>(
    connection: Option<&'a Connection>,
    connector: &str,
) -> Result<&'a Connection, ConnectorError> {
    connection.ok_or_else(|| {
        ConnectorError::validation(format!("the {connector} connector needs a `connection`"))
    })
}

/// Why a database could not be reached, without the connection's password (the driver's
/// messages do not hold it, but the connection's fields are named, not shown).
pub fn unreachable(connection: &Connection, error: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::remote(format!(
        "cannot connect to the database of connection `{}`: {error}",
        connection.name
    ))
}

/// Runs statements one after another on one connection (a transaction), each with its
/// parameters bound by `$bind`, its rows read by `$row_json` and its result counted by
/// `$on_done`; evaluates to their outcomes, or returns the first error from the enclosing
/// function. A macro, because sqlx's drivers share no trait for a statement's result.
///
/// `fetch_many` is the one call that gives both a statement's rows and how many rows it
/// changed; its deprecation is about several statements in one string, which this is not.
macro_rules! run_statements {
    ($connection:expr, $statements:expr, $bind:expr, $row_json:expr, $on_done:expr) => {{
        use futures::TryStreamExt as _;
        let mut outcomes = Vec::with_capacity($statements.len());
        for statement in $statements {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(statement.sql.clone()));
            for param in &statement.params {
                query = $bind(query, param);
            }
            let mut outcome = $crate::sql::Outcome::default();
            #[allow(deprecated)]
            let mut results = query.fetch_many($connection);
            while let Some(result) = results
                .try_next()
                .await
                .map_err($crate::sql::statement_failed)?
            {
                match result {
                    sqlx::Either::Left(done) => ($on_done)(done, &mut outcome),
                    sqlx::Either::Right(row) => {
                        if outcome.rows.len() == $crate::sql::MAX_ROWS {
                            return Err($crate::sql::too_many_rows());
                        }
                        outcome.rows.push($row_json(&row)?);
                    }
                }
            }
            drop(results);
            outcomes.push(outcome);
        }
        outcomes
    }};
}
pub(crate) use run_statements;

/// One SQL statement with its parameters, as a recipe writes it.
#[derive(Debug, Clone)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<Value>,
}

/// What a database connector's action asks for.
#[derive(Debug, Clone)]
pub enum SqlAction {
    /// Statements run one after another; all of them in one transaction when `transaction`.
    Run {
        statements: Vec<Statement>,
        transaction: bool,
    },
    Insert {
        table: Table,
        rows: Vec<Map<String, Value>>,
    },
    Update {
        table: Table,
        set: Map<String, Value>,
        filter: Map<String, Value>,
    },
    Upsert {
        table: Table,
        rows: Vec<Map<String, Value>>,
        key: Vec<String>,
    },
    Delete {
        table: Table,
        filter: Map<String, Value>,
    },
}

/// A table name, possibly with its schema (`sales.orders`), checked.
#[derive(Debug, Clone)]
pub struct Table(Vec<String>);

impl Table {
    pub fn quoted(&self, dialect: Dialect) -> String {
        self.0
            .iter()
            .map(|part| dialect.quote(part))
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// How a database writes names and parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Mysql,
    Sqlite,
}

impl Dialect {
    pub fn quote(self, name: &str) -> String {
        match self {
            Dialect::Mysql => format!("`{name}`"),
            Dialect::Postgres | Dialect::Sqlite => format!("\"{name}\""),
        }
    }

    /// The placeholder of the `n`th parameter (from 1).
    pub fn placeholder(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            Dialect::Mysql | Dialect::Sqlite => "?".to_owned(),
        }
    }

    fn returns_rows(self) -> bool {
        // MySQL has no RETURNING; MariaDB has it for some statements only.
        self != Dialect::Mysql
    }
}

/// A name may hold letters, digits, `_` and `$`, and must not start with a digit: enough for
/// the tables a recipe names, and nothing that quoting would have to escape.
fn check_name(name: &str, what: &str) -> Result<String, ConnectorError> {
    let mut chars = name.chars();
    let fits = chars
        .next()
        .is_some_and(|first| first.is_alphabetic() || first == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        && name.len() <= 63;
    if fits {
        Ok(name.to_owned())
    } else {
        Err(ConnectorError::validation(format!(
            "{what} `{name}` is not a plain name (letters, digits, `_`; at most 63 characters); \
             use the `query` action for anything else"
        )))
    }
}

fn object<'a>(input: &'a Value, action: &str) -> Result<&'a Map<String, Value>, ConnectorError> {
    input
        .as_object()
        .ok_or_else(|| ConnectorError::validation(format!("{action} input must be an object")))
}

fn table(input: &Map<String, Value>) -> Result<Table, ConnectorError> {
    let text = input
        .get("table")
        .and_then(Value::as_str)
        .ok_or_else(|| ConnectorError::validation("`table` is required, as text"))?;
    let parts = text
        .split('.')
        .map(|part| check_name(part, "table"))
        .collect::<Result<Vec<_>, _>>()?;
    if parts.len() > 2 {
        return Err(ConnectorError::validation(format!(
            "table `{text}` has more than a schema and a name"
        )));
    }
    Ok(Table(parts))
}

/// A map of column names to values, with every name checked.
fn columns(
    input: &Map<String, Value>,
    field: &str,
    required: bool,
) -> Result<Map<String, Value>, ConnectorError> {
    let map = match input.get(field) {
        Some(Value::Object(map)) => map.clone(),
        None | Some(Value::Null) if !required => Map::new(),
        _ => {
            return Err(ConnectorError::validation(format!(
                "`{field}` must be an object of column names to values"
            )));
        }
    };
    for name in map.keys() {
        check_name(name, "column")?;
    }
    if required && map.is_empty() {
        return Err(ConnectorError::validation(format!(
            "`{field}` needs at least one column"
        )));
    }
    Ok(map)
}

/// `row` (one object) or `rows` (a list of objects with the same columns).
fn rows(input: &Map<String, Value>) -> Result<Vec<Map<String, Value>>, ConnectorError> {
    let rows = match (input.get("row"), input.get("rows")) {
        (Some(_), None) => vec![columns(input, "row", true)?],
        (None, Some(Value::Array(items))) if !items.is_empty() => {
            let mut rows = Vec::with_capacity(items.len());
            for item in items {
                let mut holder = Map::new();
                holder.insert("row".to_owned(), item.clone());
                rows.push(columns(&holder, "row", true)?);
            }
            rows
        }
        _ => {
            return Err(ConnectorError::validation(
                "give `row` (an object) or `rows` (a non-empty list of objects)",
            ));
        }
    };
    let first: Vec<&String> = rows[0].keys().collect();
    if rows
        .iter()
        .any(|row| row.keys().collect::<Vec<_>>() != first)
    {
        return Err(ConnectorError::validation(
            "every row of `rows` must have the same columns, in the same order",
        ));
    }
    Ok(rows)
}

/// A filter for update and delete: required, so that a missing one never touches every row.
fn filter(input: &Map<String, Value>) -> Result<Map<String, Value>, ConnectorError> {
    columns(input, "where", true).map_err(|error| {
        ConnectorError::validation(format!(
            "{} (`where` matches rows by equal column values; it is required so that no step \
             changes a whole table by mistake)",
            error.message
        ))
    })
}

fn statement(value: &Value) -> Result<Statement, ConnectorError> {
    let input = object(value, "a statement")?;
    let sql = input
        .get("sql")
        .and_then(Value::as_str)
        .filter(|sql| !sql.trim().is_empty())
        .ok_or_else(|| ConnectorError::validation("`sql` is required, as text"))?;
    let params = match input.get("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(params)) => params.clone(),
        Some(_) => return Err(ConnectorError::validation("`params` must be a list")),
    };
    if let Some(unknown) = input
        .keys()
        .find(|key| !["sql", "params"].contains(&key.as_str()))
    {
        return Err(ConnectorError::validation(format!(
            "unknown key `{unknown}` (a statement has `sql` and `params`)"
        )));
    }
    Ok(Statement {
        sql: sql.to_owned(),
        params,
    })
}

impl SqlAction {
    pub fn parse(action: &str, input: &Value) -> Result<SqlAction, ConnectorError> {
        let fields = object(input, action)?;
        Ok(match action {
            "query" => SqlAction::Run {
                statements: vec![statement(input)?],
                transaction: false,
            },
            "transaction" => {
                let Some(Value::Array(items)) = fields.get("statements") else {
                    return Err(ConnectorError::validation(
                        "`statements` is required: a list of `{sql, params}`",
                    ));
                };
                SqlAction::Run {
                    statements: items.iter().map(statement).collect::<Result<_, _>>()?,
                    transaction: true,
                }
            }
            "insert" => SqlAction::Insert {
                table: table(fields)?,
                rows: rows(fields)?,
            },
            "update" => SqlAction::Update {
                table: table(fields)?,
                set: columns(fields, "set", true)?,
                filter: filter(fields)?,
            },
            "upsert" => {
                let key: Vec<String> = match fields.get("key") {
                    Some(Value::String(one)) => vec![check_name(one, "key column")?],
                    Some(Value::Array(names)) if !names.is_empty() => names
                        .iter()
                        .map(|name| {
                            name.as_str()
                                .ok_or_else(|| {
                                    ConnectorError::validation("`key` names columns, as text")
                                })
                                .and_then(|name| check_name(name, "key column"))
                        })
                        .collect::<Result<_, _>>()?,
                    _ => {
                        return Err(ConnectorError::validation(
                            "`key` is required: the column (or list of columns) of a unique index",
                        ));
                    }
                };
                let rows = rows(fields)?;
                if let Some(missing) = key.iter().find(|name| !rows[0].contains_key(*name)) {
                    return Err(ConnectorError::validation(format!(
                        "key column `{missing}` must be in the row"
                    )));
                }
                SqlAction::Upsert {
                    table: table(fields)?,
                    rows,
                    key,
                }
            }
            "delete" => SqlAction::Delete {
                table: table(fields)?,
                filter: filter(fields)?,
            },
            other => {
                return Err(ConnectorError::validation(format!(
                    "no action `{other}` (the database connectors have query, transaction, \
                     insert, update, upsert and delete)"
                )));
            }
        })
    }

    /// The statement a row action runs, for a database whose values are bound one by one
    /// (MySQL, SQLite). PostgreSQL builds its own (see `postgres::row_statement`).
    pub fn bound_statement(&self, dialect: Dialect) -> Option<Statement> {
        let returning = if dialect.returns_rows() {
            " RETURNING *"
        } else {
            ""
        };
        let mut params = Vec::new();
        let mut next = |value: &Value| {
            params.push(value.clone());
            dialect.placeholder(params.len())
        };
        let sql = match self {
            SqlAction::Run { .. } => return None,
            SqlAction::Insert { table, rows } | SqlAction::Upsert { table, rows, .. } => {
                let names = column_list(rows[0].keys(), dialect);
                let values = rows
                    .iter()
                    .map(|row| {
                        let cells: Vec<String> = row.values().map(&mut next).collect();
                        format!("({})", cells.join(", "))
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut sql = format!(
                    "INSERT INTO {} ({names}) VALUES {values}",
                    table.quoted(dialect)
                );
                if let SqlAction::Upsert { key, rows, .. } = self {
                    sql.push_str(&upsert_clause(dialect, key, rows[0].keys()));
                }
                sql + returning
            }
            SqlAction::Update { table, set, filter } => {
                let assignments = set
                    .iter()
                    .map(|(name, value)| format!("{} = {}", dialect.quote(name), next(value)))
                    .collect::<Vec<_>>()
                    .join(", ");
                let condition = conditions(filter, dialect, &mut next);
                format!(
                    "UPDATE {} SET {assignments} WHERE {condition}{returning}",
                    table.quoted(dialect)
                )
            }
            SqlAction::Delete { table, filter } => {
                let condition = conditions(filter, dialect, &mut next);
                format!(
                    "DELETE FROM {} WHERE {condition}{returning}",
                    table.quoted(dialect)
                )
            }
        };
        Some(Statement { sql, params })
    }
}

pub fn column_list<'a>(names: impl Iterator<Item = &'a String>, dialect: Dialect) -> String {
    names
        .map(|name| dialect.quote(name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `a = ? AND b = ?`; a null value matches rows where the column is null.
fn conditions(
    filter: &Map<String, Value>,
    dialect: Dialect,
    next: &mut impl FnMut(&Value) -> String,
) -> String {
    filter
        .iter()
        .map(|(name, value)| match value {
            Value::Null => format!("{} IS NULL", dialect.quote(name)),
            value => format!("{} = {}", dialect.quote(name), next(value)),
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// What an insert does when a row with the same key exists: the other columns are updated.
pub fn upsert_clause<'a>(
    dialect: Dialect,
    key: &[String],
    columns: impl Iterator<Item = &'a String>,
) -> String {
    let others: Vec<&String> = columns.filter(|name| !key.contains(name)).collect();
    match dialect {
        Dialect::Mysql => {
            // With nothing else to update, the key is set to itself: the row is kept as it is.
            let updates = if others.is_empty() {
                format!("{0} = {0}", dialect.quote(&key[0]))
            } else {
                others
                    .iter()
                    .map(|name| format!("{0} = VALUES({0})", dialect.quote(name)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(" ON DUPLICATE KEY UPDATE {updates}")
        }
        Dialect::Postgres | Dialect::Sqlite => {
            let target = column_list(key.iter(), dialect);
            if others.is_empty() {
                return format!(" ON CONFLICT ({target}) DO NOTHING");
            }
            let updates = others
                .iter()
                .map(|name| format!("{0} = excluded.{0}", dialect.quote(name)))
                .collect::<Vec<_>>()
                .join(", ");
            format!(" ON CONFLICT ({target}) DO UPDATE SET {updates}")
        }
    }
}

/// What one statement gave: its rows (none for statements that return none) and how many
/// rows it changed.
#[derive(Debug, Default)]
pub struct Outcome {
    pub rows: Vec<Value>,
    pub rows_affected: u64,
    pub last_insert_id: Option<i64>,
}

impl Outcome {
    pub fn into_json(self) -> Value {
        let mut out = json!({ "rows": self.rows, "rows_affected": self.rows_affected });
        if let Some(id) = self.last_insert_id {
            out["last_insert_id"] = json!(id);
        }
        out
    }
}

/// The output of an action from the outcomes of its statements.
pub fn output(action: &SqlAction, mut outcomes: Vec<Outcome>) -> Value {
    match action {
        SqlAction::Run {
            transaction: true, ..
        } => json!({ "results": outcomes.into_iter().map(Outcome::into_json).collect::<Vec<_>>() }),
        _ => outcomes.pop().unwrap_or_default().into_json(),
    }
}

/// The checks every row of a result passes through.
pub fn too_many_rows() -> ConnectorError {
    ConnectorError::validation(format!(
        "the statement returned more than {MAX_ROWS} rows; add a LIMIT, or page with a cursor"
    ))
}

/// A database's message for a failed statement, as a step's error.
pub fn statement_failed(error: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::remote(format!("the database refused the statement: {error}"))
}

/// The actions of every database connector, with `placeholder` showing how its SQL numbers
/// parameters.
pub fn actions(placeholder_example: &str, returns_rows: bool) -> Vec<ActionSpec> {
    let params = json!({
        "type": "array",
        "description": format!("Values bound to the statement's placeholders, in order ({placeholder_example})."),
    });
    let statement = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "sql": { "type": "string", "description": "One SQL statement." },
            "params": params,
        },
        "required": ["sql"],
    });
    let row = json!({ "type": "object", "description": "Column names to values." });
    let table = json!({ "type": "string", "description": "A table name, optionally with its schema (`sales.orders`)." });
    let filter = json!({ "type": "object", "description": "Column names to values that the rows must equal (null: the column is null). Required." });
    let rows_note = if returns_rows {
        "The rows written, as the database returns them."
    } else {
        "Always empty: this database does not return written rows."
    };
    let result = json!({
        "type": "object",
        "properties": {
            "rows": { "type": "array", "items": { "type": "object" }, "description": "For a query, the rows it returned." },
            "rows_affected": { "type": "integer" },
            "last_insert_id": { "type": "integer", "description": "The id the last insert generated, where the database tells it." },
        },
        "required": ["rows", "rows_affected"],
    });
    let written = json!({
        "type": "object",
        "properties": {
            "rows": { "type": "array", "items": { "type": "object" }, "description": rows_note },
            "rows_affected": { "type": "integer" },
            "last_insert_id": { "type": "integer" },
        },
        "required": ["rows", "rows_affected"],
    });
    let spec = |name, description, input, output: &Value| ActionSpec {
        name,
        description,
        input_schema: input,
        output_schema: output.clone(),
    };
    vec![
        spec(
            "query",
            "Runs one SQL statement with bound parameters and returns its rows.",
            statement.clone(),
            &result,
        ),
        spec(
            "transaction",
            "Runs statements in one transaction: all take effect, or none does.",
            json!({
                "type": "object",
                "additionalProperties": false,
                "properties": { "statements": { "type": "array", "items": statement } },
                "required": ["statements"],
            }),
            &json!({
                "type": "object",
                "properties": { "results": { "type": "array", "items": result } },
                "required": ["results"],
            }),
        ),
        spec(
            "insert",
            "Inserts one row or several.",
            json!({
                "type": "object",
                "additionalProperties": false,
                "properties": { "table": table, "row": row, "rows": { "type": "array", "items": row } },
                "required": ["table"],
            }),
            &written,
        ),
        spec(
            "update",
            "Sets columns of the rows that match `where`.",
            json!({
                "type": "object",
                "additionalProperties": false,
                "properties": { "table": table, "set": row, "where": filter },
                "required": ["table", "set", "where"],
            }),
            &written,
        ),
        spec(
            "upsert",
            "Inserts rows, or updates the existing row with the same `key` (a unique index).",
            json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "table": table,
                    "row": row,
                    "rows": { "type": "array", "items": row },
                    "key": { "type": ["string", "array"], "items": { "type": "string" }, "description": "The column or columns of a unique index." },
                },
                "required": ["table", "key"],
            }),
            &written,
        ),
        spec(
            "delete",
            "Deletes the rows that match `where`.",
            json!({
                "type": "object",
                "additionalProperties": false,
                "properties": { "table": table, "where": filter },
                "required": ["table", "where"],
            }),
            &written,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(action: &str, input: Value) -> Result<SqlAction, ConnectorError> {
        SqlAction::parse(action, &input)
    }

    #[test]
    fn row_actions_bind_every_value_and_quote_every_name() {
        let insert = parse(
            "upsert",
            json!({ "table": "sales.orders", "rows": [{ "id": 1, "total": 9.5 }, { "id": 2, "total": null }], "key": "id" }),
        )
        .unwrap();
        let statement = insert.bound_statement(Dialect::Sqlite).unwrap();
        assert_eq!(
            statement.sql,
            "INSERT INTO \"sales\".\"orders\" (\"id\", \"total\") VALUES (?, ?), (?, ?) \
             ON CONFLICT (\"id\") DO UPDATE SET \"total\" = excluded.\"total\" RETURNING *"
        );
        assert_eq!(
            statement.params,
            vec![json!(1), json!(9.5), json!(2), Value::Null]
        );
        let update = parse(
            "update",
            json!({ "table": "orders", "set": { "state": "paid" }, "where": { "id": 7, "deleted_at": null } }),
        )
        .unwrap();
        let statement = update.bound_statement(Dialect::Mysql).unwrap();
        assert_eq!(
            statement.sql,
            "UPDATE `orders` SET `state` = ? WHERE `id` = ? AND `deleted_at` IS NULL"
        );
        assert_eq!(statement.params, vec![json!("paid"), json!(7)]);
    }

    #[test]
    fn names_that_are_not_plain_are_refused() {
        for (action, input) in [
            (
                "insert",
                json!({ "table": "orders; DROP TABLE x", "row": { "a": 1 } }),
            ),
            ("insert", json!({ "table": "orders", "row": { "a\"b": 1 } })),
            ("delete", json!({ "table": "orders", "where": {} })),
            ("update", json!({ "table": "orders", "set": { "a": 1 } })),
            (
                "upsert",
                json!({ "table": "orders", "row": { "a": 1 }, "key": "id" }),
            ),
            (
                "insert",
                json!({ "table": "orders", "rows": [{ "a": 1 }, { "b": 2 }] }),
            ),
            ("query", json!({ "sql": "select 1", "param": [] })),
        ] {
            let refused = parse(action, input.clone());
            assert!(refused.is_err(), "{action} {input} was accepted");
        }
    }
}
