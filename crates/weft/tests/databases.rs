//! The database connectors against the real servers: PostgreSQL and MariaDB on loopback, and
//! a SQLite file. Each runs recipes with `weft run --connections`. A server that does not
//! answer makes its test skip with a printed reason, unless `WEFT_REQUIRE_SERVICES=1`.

use serde_json::{Value, json};
use std::path::Path;

use crate::support::{run_with, service_answers};

/// A database to test: its connector, its connection, and the SQL that differs.
struct Target {
    connector: &'static str,
    connection: String,
    /// Column types for `id, email, total, seen_at`.
    ddl: &'static str,
    placeholder: &'static str,
}

fn postgres() -> Option<Target> {
    service_answers("PostgreSQL", "127.0.0.1:5432").then(|| Target {
        connector: "postgres",
        connection: "db:\n  connector: postgres\n  host: 127.0.0.1\n  database: test\n  user: root\n  sslmode: disable\n".to_owned(),
        ddl: "id INTEGER PRIMARY KEY, email TEXT NOT NULL, total NUMERIC(10,2), seen_at TIMESTAMP",
        placeholder: "$1",
    })
}

fn mariadb() -> Option<Target> {
    service_answers("MariaDB", "127.0.0.1:3306").then(|| Target {
        connector: "mysql",
        connection: "db:\n  connector: mysql\n  host: 127.0.0.1\n  database: test\n  user: root\n  sslmode: disable\n".to_owned(),
        ddl: "id INTEGER PRIMARY KEY, email VARCHAR(200) NOT NULL, total DECIMAL(10,2), seen_at DATETIME",
        placeholder: "?",
    })
}

fn sqlite(folder: &Path) -> Target {
    Target {
        connector: "sqlite",
        connection: format!(
            "db:\n  connector: sqlite\n  path: {}\n  create: true\n",
            folder.join("shop.db").display()
        ),
        ddl: "id INTEGER PRIMARY KEY, email TEXT NOT NULL, total NUMERIC, seen_at TEXT",
        placeholder: "?",
    }
}

/// A table name no other run uses.
fn fresh_table() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|time| time.subsec_nanos())
        .unwrap_or_default();
    format!("weft_test_{}_{nanos}", std::process::id())
}

/// Runs a recipe on the target's connection; `steps` are the recipe's steps in YAML, with
/// `DB` for the connector and `@table` for the table.
fn run_on(target: &Target, table: &str, steps: &str) -> crate::support::Ran {
    let folder = tempfile::tempdir().unwrap();
    let recipe = folder.path().join("recipe.yaml");
    let steps = steps
        .replace("DB", target.connector)
        .replace("@table", table);
    std::fs::write(
        &recipe,
        format!("name: Databases\ntrigger: {{ manual: {{}} }}\nsteps:\n{steps}"),
    )
    .unwrap();
    let connections = folder.path().join("connections.yaml");
    std::fs::write(&connections, &target.connection).unwrap();
    run_with(
        &recipe,
        &json!({}),
        &["--connections", connections.to_str().unwrap()],
    )
}

const ROW_ACTIONS: &str = r#"
  - id: add
    action: DB.insert
    connection: db
    input:
      table: @table
      rows:
        - { id: 1, email: ann@example.com, total: '9.50', seen_at: '2026-12-01 10:00:00' }
        - { id: 2, email: bob@example.com, total: '3.25', seen_at: null }
  - id: merge
    action: DB.upsert
    connection: db
    input:
      table: @table
      key: id
      rows:
        - { id: 2, email: bob@new.example.com, total: '4.00', seen_at: null }
        - { id: 3, email: cy@example.com, total: '1.00', seen_at: null }
  - id: change
    action: DB.update
    connection: db
    input: { table: @table, set: { total: '20.25' }, where: { id: 1 } }
  - id: remove
    action: DB.delete
    connection: db
    input: { table: @table, where: { id: 3, seen_at: null } }
  - id: read
    action: DB.query
    connection: db
    input: { sql: 'SELECT id, email, total FROM @table WHERE id >= PARAM ORDER BY id', params: [1] }
"#;

/// Insert, upsert, update, delete and a query with a bound parameter, then what is in the
/// table; `total` reads back as the database gives a decimal.
fn row_actions_work_on(target: &Target, totals: [Value; 2], merged: u64) {
    let table = fresh_table();
    let create = format!(
        "  - id: create\n    action: DB.query\n    connection: db\n    input: {{ sql: 'CREATE TABLE @table ({})' }}\n",
        target.ddl
    );
    let steps = create + &ROW_ACTIONS.replace("PARAM", target.placeholder);
    let ran = run_on(target, &table, &steps);
    run_on(
        target,
        &table,
        "  - id: drop\n    action: DB.query\n    connection: db\n    input: { sql: 'DROP TABLE @table' }\n",
    );
    assert_eq!(ran.code, 0, "{:#}\n{}", ran.record, ran.stderr);
    assert_eq!(ran.step("add")["output"]["rows_affected"], 2);
    assert_eq!(ran.step("merge")["output"]["rows_affected"], merged);
    assert_eq!(ran.step("change")["output"]["rows_affected"], 1);
    assert_eq!(ran.step("remove")["output"]["rows_affected"], 1);
    assert_eq!(
        ran.step("read")["output"]["rows"],
        json!([
            { "id": 1, "email": "ann@example.com", "total": totals[0] },
            { "id": 2, "email": "bob@new.example.com", "total": totals[1] },
        ])
    );
}

/// A transaction whose second statement fails leaves nothing behind, and the step fails with
/// the database's reason as a connector error.
fn a_failed_transaction_changes_nothing(target: &Target) {
    let table = fresh_table();
    let p = target.placeholder;
    let setup = format!(
        "  - id: create\n    action: DB.query\n    connection: db\n    input: {{ sql: 'CREATE TABLE @table ({})' }}\n",
        target.ddl
    );
    assert_eq!(run_on(target, &table, &setup).code, 0);
    let failing = format!(
        "  - id: both\n    action: DB.transaction\n    connection: db\n    input:\n      statements:\n        - {{ sql: \"INSERT INTO @table (id, email) VALUES ({p}, 'a@example.com')\", params: [10] }}\n        - {{ sql: \"INSERT INTO @table (id, email) VALUES ({p}, 'b@example.com')\", params: [10] }}\n"
    );
    let ran = run_on(target, &table, &failing);
    assert_eq!(ran.code, 1, "{:#}", ran.record);
    assert_eq!(ran.record["error"]["kind"], "connector", "{:#}", ran.record);
    let left = run_on(
        target,
        &table,
        "  - id: count\n    action: DB.query\n    connection: db\n    input: { sql: 'SELECT COUNT(*) AS n FROM @table' }\n",
    );
    run_on(
        target,
        &table,
        "  - id: drop\n    action: DB.query\n    connection: db\n    input: { sql: 'DROP TABLE @table' }\n",
    );
    assert_eq!(left.step("count")["output"]["rows"], json!([{ "n": 0 }]));
}

#[test]
fn postgres_row_actions_and_transactions() {
    let Some(target) = postgres() else { return };
    row_actions_work_on(&target, [json!("20.25"), json!("4.00")], 2);
    a_failed_transaction_changes_nothing(&target);
}

#[test]
fn mariadb_row_actions_and_transactions() {
    let Some(target) = mariadb() else { return };
    // MariaDB counts an upsert's update as two rows changed.
    row_actions_work_on(&target, [json!("20.25"), json!("4.00")], 3);
    a_failed_transaction_changes_nothing(&target);
}

#[test]
fn sqlite_row_actions_and_transactions() {
    let folder = tempfile::tempdir().unwrap();
    let target = sqlite(folder.path());
    row_actions_work_on(&target, [json!(20.25), json!(4)], 2);
    a_failed_transaction_changes_nothing(&target);
}

/// PostgreSQL's types read back as JSON: decimals exactly (as the text PostgreSQL itself
/// prints), times, UUIDs, JSON, booleans, bytes and enums.
#[test]
fn postgres_values_read_back_as_json() {
    let Some(target) = postgres() else { return };
    let numbers = [
        "0",
        "123.4500",
        "-0.0012",
        "10000",
        "100000000000000000000",
        "12345678.9000",
        "NaN",
        "-5",
    ];
    let columns: Vec<String> = numbers
        .iter()
        .enumerate()
        .map(|(i, n)| format!("'{n}'::numeric AS n{i}, '{n}'::numeric::text AS t{i}"))
        .collect();
    let sql = format!(
        "SELECT {}, true AS yes, '2026-12-04 10:30:00+02'::timestamptz AS at, DATE '2026-02-03' AS day, \
         'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS id, '{{\"a\": [1, 2]}}'::jsonb AS doc, \
         'hi'::bytea AS raw, 2147483648::int8 AS big, 1.5::float8 AS half",
        columns.join(", ")
    );
    let steps = format!(
        "  - id: read\n    action: DB.query\n    connection: db\n    input:\n      sql: {}\n",
        serde_json::to_string(&sql).unwrap()
    );
    let ran = run_on(&target, "unused", &steps);
    assert_eq!(ran.code, 0, "{:#}", ran.record);
    let row = &ran.step("read")["output"]["rows"][0];
    for i in 0..numbers.len() {
        assert_eq!(
            row[format!("n{i}")],
            row[format!("t{i}")],
            "{}: {row:#}",
            numbers[i]
        );
    }
    assert_eq!(row["yes"], true);
    assert_eq!(row["at"], "2026-12-04T08:30:00Z");
    assert_eq!(row["day"], "2026-02-03");
    assert_eq!(row["id"], "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    assert_eq!(row["doc"], json!({ "a": [1, 2] }));
    assert_eq!(row["raw"], "aGk=");
    assert_eq!(row["big"], 2147483648_i64);
    assert_eq!(row["half"], 1.5);
}

/// A refused login, an unreachable server and a statement the database rejects each fail the
/// step as a connector error that names the cause and never the password.
#[test]
fn database_failures_are_connector_errors_without_secrets() {
    let mut cases = Vec::new();
    if postgres().is_some() {
        cases.push((
            "postgres",
            "host: 127.0.0.1\n  database: test\n  user: no_such_role_weft\n  password: pw-4d1c9e",
            "no_such_role_weft",
        ));
        cases.push((
            "postgres",
            "host: 127.0.0.1\n  port: 1\n  database: test\n  user: root\n  password: pw-4d1c9e",
            "cannot connect",
        ));
    }
    if mariadb().is_some() {
        cases.push(("mysql", "host: 127.0.0.1\n  database: test\n  user: root\n  password: pw-4d1c9e\n  sslmode: disable", "denied"));
    }
    for (connector, fields, reason) in cases {
        let target = Target {
            connector,
            connection: format!("db:\n  connector: {connector}\n  {fields}\n"),
            ddl: "",
            placeholder: "",
        };
        let ran = run_on(
            &target,
            "unused",
            "  - id: read\n    action: DB.query\n    connection: db\n    input: { sql: 'SELECT 1' }\n",
        );
        assert_eq!(ran.code, 1, "{:#}", ran.record);
        assert_eq!(ran.record["error"]["kind"], "connector", "{:#}", ran.record);
        let text = ran.record.to_string() + &ran.stderr;
        assert!(text.contains(reason), "{connector}: {text}");
        assert!(!text.contains("pw-4d1c9e"), "{connector}: {text}");
    }
    let folder = tempfile::tempdir().unwrap();
    let target = sqlite(folder.path());
    let ran = run_on(
        &target,
        "unused",
        "  - id: read\n    action: DB.query\n    connection: db\n    input: { sql: 'SELECT * FROM no_such_table' }\n",
    );
    assert_eq!(ran.record["error"]["kind"], "connector");
    assert!(
        ran.record.to_string().contains("no such table"),
        "{:#}",
        ran.record
    );
    let ran = run_on(
        &target,
        "unused",
        "  - id: bad\n    action: DB.insert\n    connection: db\n    input: { table: 'x; DROP TABLE y', row: { a: 1 } }\n",
    );
    assert_eq!(
        ran.record["error"]["kind"], "validation",
        "{:#}",
        ran.record
    );
}
