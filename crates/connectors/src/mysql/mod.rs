//! The `mysql` connector: MySQL and MariaDB.

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::{Value, json};
use sqlx::mysql::{MySqlArguments, MySqlConnectOptions, MySqlPool, MySqlRow, MySqlSslMode};
use sqlx::query::Query;
use sqlx::{Column, MySql, Row, TypeInfo, ValueRef};

use crate::connection::Connection;
use crate::connector::{ActionSpec, CallContext, ConnectionField, Connector};
use crate::error::ConnectorError;
use crate::sql::{self, Dialect, Outcome, Pools, SqlAction, Statement};

#[derive(Default)]
pub struct MysqlConnector {
    pools: Pools<MySqlPool>,
}

#[async_trait]
impl Connector for MysqlConnector {
    fn name(&self) -> &'static str {
        "mysql"
    }

    fn description(&self) -> &'static str {
        "Reads and writes a MySQL or MariaDB database."
    }

    fn needs_connection(&self) -> bool {
        true
    }

    fn connection_fields(&self) -> Vec<ConnectionField> {
        sql::server_fields("Port (default 3306).")
    }

    fn actions(&self) -> Vec<ActionSpec> {
        sql::actions("?, ?, …", false)
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
        let connection = sql::needed(connection, "mysql")?;
        let action = SqlAction::parse(action, &input)?;
        let pool = self.pool(connection).await?;
        let statements = sql::statements_of(&action, Dialect::Mysql);
        let work = run(&pool, connection, &statements);
        let outcomes = crate::error::within(context.timeout, work).await?;
        Ok(sql::output(&action, outcomes))
    }
}

impl MysqlConnector {
    async fn pool(&self, connection: &Connection) -> Result<MySqlPool, ConnectorError> {
        self.pools
            .get(connection, || async {
                Ok(sql::lazy_pool(connect_options(connection)?))
            })
            .await
    }
}

fn connect_options(connection: &Connection) -> Result<MySqlConnectOptions, ConnectorError> {
    let sslmode = match sql::tls_mode(connection)? {
        sql::TlsMode::Disable => MySqlSslMode::Disabled,
        sql::TlsMode::Prefer => MySqlSslMode::Preferred,
        sql::TlsMode::Require => MySqlSslMode::Required,
    };
    let mut options = MySqlConnectOptions::new()
        .host(connection.required_text("host")?)
        .port(connection.port(3306)?)
        .database(connection.required_text("database")?)
        .username(connection.required_text("user")?)
        .ssl_mode(sslmode)
        .charset("utf8mb4")
        // Times read and written as UTC, as the rest of Weft keeps them.
        .timezone(Some("+00:00".to_owned()));
    if let Some(password) = connection.text("password") {
        options = options.password(password);
    }
    Ok(options)
}

async fn run(
    pool: &MySqlPool,
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
        |done: sqlx::mysql::MySqlQueryResult, outcome: &mut Outcome| {
            outcome.rows_affected += done.rows_affected();
            let id = done.last_insert_id();
            if id != 0 {
                outcome.last_insert_id = i64::try_from(id).ok();
            }
        }
    );
    transaction.commit().await.map_err(sql::statement_failed)?;
    Ok(outcomes)
}

fn bind<'q>(
    query: Query<'q, MySql, MySqlArguments>,
    value: &Value,
) -> Query<'q, MySql, MySqlArguments> {
    match value {
        Value::Null => query.bind(None::<String>),
        Value::Bool(flag) => query.bind(*flag),
        Value::Number(number) => match (number.as_i64(), number.as_u64()) {
            (Some(integer), _) => query.bind(integer),
            (None, Some(unsigned)) => query.bind(unsigned),
            _ => query.bind(number.as_f64()),
        },
        Value::String(text) => query.bind(text.clone()),
        other => query.bind(other.to_string()),
    }
}

/// A row as a JSON object of its columns.
fn row_json(row: &MySqlRow) -> Result<Value, ConnectorError> {
    let mut object = serde_json::Map::new();
    for (index, column) in row.columns().iter().enumerate() {
        let raw = row
            .try_get_raw(index)
            .map_err(|error| ConnectorError::remote(error.to_string()))?;
        let value = if raw.is_null() {
            Value::Null
        } else {
            let type_name = raw.type_info().name().to_owned();
            cell(row, index, &type_name).map_err(|error| {
                ConnectorError::remote(format!("column `{}` ({type_name}): {error}", column.name()))
            })?
        };
        object.insert(column.name().to_owned(), value);
    }
    Ok(Value::Object(object))
}

fn cell(row: &MySqlRow, index: usize, type_name: &str) -> Result<Value, sqlx::Error> {
    Ok(match type_name {
        "BOOLEAN" => json!(row.try_get::<bool, _>(index)?),
        "TINYINT" | "SMALLINT" | "INT" | "MEDIUMINT" | "BIGINT" | "YEAR" => {
            json!(row.try_get_unchecked::<i64, _>(index)?)
        }
        name if name.ends_with("UNSIGNED") => json!(row.try_get_unchecked::<u64, _>(index)?),
        "FLOAT" => json!(row.try_get::<f32, _>(index)?),
        "DOUBLE" => json!(row.try_get::<f64, _>(index)?),
        "DATETIME" | "TIMESTAMP" => json!(
            row.try_get::<chrono::NaiveDateTime, _>(index)?
                .format("%Y-%m-%dT%H:%M:%S%.f")
                .to_string()
        ),
        "DATE" => json!(row.try_get::<chrono::NaiveDate, _>(index)?.to_string()),
        "TIME" => json!(row.try_get::<chrono::NaiveTime, _>(index)?.to_string()),
        "JSON" => {
            let text = row.try_get_unchecked::<String, _>(index)?;
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        }
        "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" | "BIT"
        | "GEOMETRY" => json!(
            base64::engine::general_purpose::STANDARD
                .encode(row.try_get_unchecked::<Vec<u8>, _>(index)?)
        ),
        // DECIMAL comes as exact text, as do the text types.
        _ => json!(row.try_get_unchecked::<String, _>(index)?),
    })
}
