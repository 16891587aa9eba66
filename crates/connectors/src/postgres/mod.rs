//! The `postgres` connector: statements with bound parameters, row actions, transactions.

mod values;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use sqlx::postgres::{PgConnectOptions, PgPool, PgSslMode};

use crate::connection::Connection;
use crate::connector::{
    ActionSpec, CallContext, ConnectionField, Connector, MessageSink, TriggerKind, TriggerSpec,
};
use crate::error::ConnectorError;
use crate::sql::{self, Dialect, Outcome, Pools, SqlAction, Statement};

#[derive(Default)]
pub struct PostgresConnector {
    pools: Pools<PgPool>,
}

#[async_trait]
impl Connector for PostgresConnector {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn description(&self) -> &'static str {
        "Reads and writes a PostgreSQL database."
    }

    fn needs_connection(&self) -> bool {
        true
    }

    fn connection_fields(&self) -> Vec<ConnectionField> {
        sql::server_fields("Port (default 5432).")
    }

    fn actions(&self) -> Vec<ActionSpec> {
        sql::actions("$1, $2, …", true)
    }

    fn triggers(&self) -> Vec<TriggerSpec> {
        vec![TriggerSpec {
            name: "subscribe",
            kind: TriggerKind::Subscribe,
            description: "Each `NOTIFY` on a channel (`LISTEN`). PostgreSQL keeps no \
                notification for a listener that is not connected: those sent while Weft is \
                down or reconnecting are not seen.",
            input_schema: json!({
                "type": "object",
                "additionalProperties": false,
                "properties": { "channel": { "type": "string", "description": "The channel to listen on." } },
                "required": ["channel"],
            }),
            output_schema: json!({
                "type": "object",
                "properties": {
                    "payload": { "description": "The notification's payload: parsed when it is JSON, else text." },
                    "channel": { "type": "string" },
                    "process_id": { "type": "integer", "description": "The notifying backend's process id." },
                },
                "required": ["payload", "channel"],
            }),
        }]
    }

    fn check_connection(&self, connection: &Connection) -> Result<(), ConnectorError> {
        connect_options(connection).map(|_| ())
    }

    async fn subscribe(
        &self,
        connection: Option<&Connection>,
        options: &Map<String, Value>,
        sink: &dyn MessageSink,
    ) -> Result<(), ConnectorError> {
        let connection = sql::needed(connection, "postgres")?;
        let channel = options
            .get("channel")
            .and_then(Value::as_str)
            .ok_or_else(|| ConnectorError::validation("`channel` is required, as text"))?;
        let pool = self.pool(connection).await?;
        let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
            .await
            .map_err(|error| sql::unreachable(connection, error))?;
        listener
            .listen(channel)
            .await
            .map_err(|error| sql::unreachable(connection, error))?;
        loop {
            let notification = listener
                .recv()
                .await
                .map_err(|error| sql::unreachable(connection, error))?;
            let text = notification.payload();
            let payload = serde_json::from_str(text).unwrap_or_else(|_| json!(text));
            let message = json!({
                "payload": payload,
                "channel": notification.channel(),
                "process_id": notification.process_id(),
            });
            // NOTIFY has no acknowledgement: a message whose job cannot be committed is lost,
            // and said so.
            if let Err(error) = sink.deliver(message).await {
                return Err(ConnectorError::remote(format!(
                    "a notification on `{channel}` could not be queued: {error}"
                )));
            }
        }
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
        let connection = sql::needed(connection, "postgres")?;
        let action = SqlAction::parse(action, &input)?;
        let pool = self.pool(connection).await?;
        let work = run(&pool, connection, &action);
        let outcomes = crate::error::within(context.timeout, work).await?;
        Ok(sql::output(&action, outcomes))
    }
}

impl PostgresConnector {
    async fn pool(&self, connection: &Connection) -> Result<PgPool, ConnectorError> {
        self.pools
            .get(connection, || async {
                Ok(sql::lazy_pool(connect_options(connection)?))
            })
            .await
    }
}

fn connect_options(connection: &Connection) -> Result<PgConnectOptions, ConnectorError> {
    let sslmode = match sql::tls_mode(connection)? {
        sql::TlsMode::Disable => PgSslMode::Disable,
        sql::TlsMode::Prefer => PgSslMode::Prefer,
        sql::TlsMode::Require => PgSslMode::Require,
    };
    let mut options = PgConnectOptions::new_without_pgpass()
        .host(connection.required_text("host")?)
        .port(connection.port(5432)?)
        .database(connection.required_text("database")?)
        .username(connection.required_text("user")?)
        .ssl_mode(sslmode)
        .application_name("weft");
    if let Some(password) = connection.text("password") {
        options = options.password(password);
    }
    Ok(options)
}

/// Runs an action's statements, in one transaction when it asks for one.
async fn run(
    pool: &PgPool,
    connection: &Connection,
    action: &SqlAction,
) -> Result<Vec<Outcome>, ConnectorError> {
    let statements = match action {
        SqlAction::Run { statements, .. } => statements.clone(),
        row_action => row_statement(row_action).into_iter().collect(),
    };
    let mut transaction = pool
        .begin()
        .await
        .map_err(|error| sql::unreachable(connection, error))?;
    let outcomes = sql::run_statements!(
        &mut *transaction,
        &statements,
        values::bind,
        values::row_json,
        |done: sqlx::postgres::PgQueryResult, outcome: &mut Outcome| {
            outcome.rows_affected += done.rows_affected();
        }
    );
    transaction.commit().await.map_err(sql::statement_failed)?;
    Ok(outcomes)
}

/// The statement of a row action. Rows go to PostgreSQL as one JSON parameter, which
/// `json_populate_recordset` turns into the table's own column types: a timestamp, a numeric
/// or an enum column takes a JSON string without a cast in the recipe.
fn row_statement(action: &SqlAction) -> Option<Statement> {
    let dialect = Dialect::Postgres;
    let rows_of = |table: &sql::Table, columns: &str| {
        format!(
            "SELECT {columns} FROM json_populate_recordset(NULL::{}, $1::json)",
            table.quoted(dialect)
        )
    };
    let (sql, params) = match action {
        SqlAction::Run { .. } => return None,
        SqlAction::Insert { table, rows } | SqlAction::Upsert { table, rows, .. } => {
            let columns = sql::column_list(rows[0].keys(), dialect);
            let mut sql = format!(
                "INSERT INTO {} ({columns}) {}",
                table.quoted(dialect),
                rows_of(table, &columns)
            );
            if let SqlAction::Upsert { key, rows, .. } = action {
                sql.push_str(&sql::upsert_clause(dialect, key, rows[0].keys()));
            }
            (sql + " RETURNING *", vec![json!(rows)])
        }
        SqlAction::Update { table, set, filter } => {
            let columns = sql::column_list(set.keys(), dialect);
            let sql = format!(
                "UPDATE {} SET ({columns}) = ({}) WHERE {} RETURNING *",
                table.quoted(dialect),
                rows_of(table, &columns),
                matches(table, filter, "$2")
            );
            (sql, vec![json!([set]), json!([filter])])
        }
        SqlAction::Delete { table, filter } => {
            let sql = format!(
                "DELETE FROM {} WHERE {} RETURNING *",
                table.quoted(dialect),
                matches(table, filter, "$1")
            );
            (sql, vec![json!([filter])])
        }
    };
    Some(Statement { sql, params })
}

/// The condition that a row equals the filter's values, typed by the table's columns; a null
/// value matches a null column.
fn matches(table: &sql::Table, filter: &Map<String, Value>, param: &str) -> String {
    let dialect = Dialect::Postgres;
    filter
        .iter()
        .map(|(name, value)| {
            let column = dialect.quote(name);
            match value {
                Value::Null => format!("{column} IS NULL"),
                _ => format!(
                    "{column} = (SELECT {column} FROM json_populate_recordset(NULL::{}, {param}::json))",
                    table.quoted(dialect)
                ),
            }
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}
