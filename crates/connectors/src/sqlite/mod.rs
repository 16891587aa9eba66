//! The `sqlite` connector: a SQLite database file on the machine that runs Weft.

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::{Value, json};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteConnectOptions, SqlitePool, SqliteRow};
use sqlx::{Column, Row, Sqlite, TypeInfo, ValueRef};

use crate::connection::Connection;
use crate::connector::{ActionSpec, CallContext, ConnectionField, Connector};
use crate::error::ConnectorError;
use crate::sql::{self, Dialect, Outcome, Pools, SqlAction, Statement};

#[derive(Default)]
pub struct SqliteConnector {
    pools: Pools<SqlitePool>,
}

#[async_trait]
impl Connector for SqliteConnector {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn description(&self) -> &'static str {
        "Reads and writes a SQLite database file on the machine that runs Weft."
    }

    fn needs_connection(&self) -> bool {
        true
    }

    fn connection_fields(&self) -> Vec<ConnectionField> {
        let field = |name, description| ConnectionField {
            name,
            description,
            required: name == "path",
            secret: false,
        };
        vec![
            field(
                "path",
                "The database file. It must exist unless `create` is true.",
            ),
            field(
                "create",
                "Create the file when it does not exist (default false).",
            ),
            field(
                "read_only",
                "Open the file for reading only (default false).",
            ),
        ]
    }

    fn actions(&self) -> Vec<ActionSpec> {
        sql::actions("?, ?, … or ?1, ?2, …", true)
    }

    fn check_connection(&self, connection: &Connection) -> Result<(), ConnectorError> {
        connect_options(connection).map(|_| ())
    }

    async fn test_connection(&self, connection: &Connection) -> Result<(), ConnectorError> {
        sql::ping(&self.pool(connection).await?, connection).await
    }

    async fn call(
        &self,
        action: &str,
        connection: Option<&Connection>,
        input: Value,
        context: &CallContext,
    ) -> Result<Value, ConnectorError> {
        let connection = sql::needed(connection, "sqlite")?;
        let action = SqlAction::parse(action, &input)?;
        let pool = self.pool(connection).await?;
        let statements = sql::statements_of(&action, Dialect::Sqlite);
        let work = run(&pool, connection, &statements);
        let outcomes = crate::error::within(context.timeout, work).await?;
        Ok(sql::output(&action, outcomes))
    }
}

impl SqliteConnector {
    async fn pool(&self, connection: &Connection) -> Result<SqlitePool, ConnectorError> {
        self.pools
            .get(connection, || async {
                Ok(sql::lazy_pool(connect_options(connection)?))
            })
            .await
    }
}

fn flag(connection: &Connection, field: &str) -> bool {
    match connection.fields.get(field) {
        Some(Value::Bool(flag)) => *flag,
        Some(Value::String(text)) => matches!(text.as_str(), "true" | "yes" | "1"),
        _ => false,
    }
}

fn connect_options(connection: &Connection) -> Result<SqliteConnectOptions, ConnectorError> {
    Ok(SqliteConnectOptions::new()
        .filename(connection.required_text("path")?)
        .create_if_missing(flag(connection, "create"))
        .read_only(flag(connection, "read_only"))
        .busy_timeout(sql::CONNECT_TIMEOUT)
        .foreign_keys(true))
}

async fn run(
    pool: &SqlitePool,
    connection: &Connection,
    statements: &[Statement],
) -> Result<Vec<Outcome>, ConnectorError> {
    let mut transaction = pool
        .begin()
        .await
        .map_err(|error| sql::unreachable(connection, error))?;
    let outcomes = sql::run_statements!(
        &mut *transaction,
        statements,
        bind,
        row_json,
        |done: sqlx::sqlite::SqliteQueryResult, outcome: &mut Outcome| {
            outcome.rows_affected += done.rows_affected();
            outcome.last_insert_id = Some(done.last_insert_rowid());
        }
    );
    transaction.commit().await.map_err(sql::statement_failed)?;
    Ok(outcomes)
}

fn bind<'q>(
    query: Query<'q, Sqlite, SqliteArguments>,
    value: &Value,
) -> Query<'q, Sqlite, SqliteArguments> {
    match value {
        Value::Null => query.bind(None::<String>),
        Value::Bool(flag) => query.bind(*flag),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => query.bind(integer),
            None => query.bind(number.as_f64()),
        },
        Value::String(text) => query.bind(text.clone()),
        other => query.bind(other.to_string()),
    }
}

/// A row as a JSON object; each value by what SQLite stored (its storage class).
fn row_json(row: &SqliteRow) -> Result<Value, ConnectorError> {
    let mut object = serde_json::Map::new();
    for (index, column) in row.columns().iter().enumerate() {
        let raw = row
            .try_get_raw(index)
            .map_err(|error| ConnectorError::remote(error.to_string()))?;
        let stored = if raw.is_null() {
            "NULL".to_owned()
        } else {
            raw.type_info().name().to_owned()
        };
        let failed = |error: sqlx::Error| {
            ConnectorError::remote(format!("column `{}`: {error}", column.name()))
        };
        let value = match stored.as_str() {
            "NULL" => Value::Null,
            "INTEGER" => json!(row.try_get_unchecked::<i64, _>(index).map_err(failed)?),
            "REAL" => json!(row.try_get_unchecked::<f64, _>(index).map_err(failed)?),
            "BLOB" => json!(
                base64::engine::general_purpose::STANDARD
                    .encode(row.try_get_unchecked::<Vec<u8>, _>(index).map_err(failed)?)
            ),
            _ => json!(row.try_get_unchecked::<String, _>(index).map_err(failed)?),
        };
        object.insert(column.name().to_owned(), value);
    }
    Ok(Value::Object(object))
}
