//! PostgreSQL values to and from JSON.

use base64::Engine as _;
use serde_json::{Value, json};
use sqlx::postgres::{PgArguments, PgRow, PgValueFormat};
use sqlx::query::Query;
use sqlx::{Column, Postgres, Row, TypeInfo, ValueRef};

use crate::error::ConnectorError;

/// Binds a JSON value by its JSON type: text, a bigint or double, a boolean, a jsonb for
/// objects and lists, a null. Where a column has another type, the SQL casts (`$1::date`).
pub fn bind<'q>(
    query: Query<'q, Postgres, PgArguments>,
    value: &Value,
) -> Query<'q, Postgres, PgArguments> {
    match value {
        Value::Null => query.bind(None::<String>),
        Value::Bool(flag) => query.bind(*flag),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => query.bind(integer),
            None => query.bind(number.as_f64()),
        },
        Value::String(text) => query.bind(text.clone()),
        other => query.bind(sqlx::types::Json(other.clone())),
    }
}

/// A row as a JSON object of its columns.
pub fn row_json(row: &PgRow) -> Result<Value, ConnectorError> {
    let mut object = serde_json::Map::new();
    for (index, column) in row.columns().iter().enumerate() {
        object.insert(column.name().to_owned(), cell(row, index)?);
    }
    Ok(Value::Object(object))
}

fn cell(row: &PgRow, index: usize) -> Result<Value, ConnectorError> {
    let raw = row
        .try_get_raw(index)
        .map_err(|error| ConnectorError::remote(error.to_string()))?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let type_name = raw.type_info().name().to_owned();
    let decode_error = |error: sqlx::Error| {
        ConnectorError::remote(format!(
            "column `{}` ({type_name}): {error}",
            row.columns()[index].name()
        ))
    };
    Ok(match type_name.as_str() {
        // What a function that returns nothing (`pg_notify`, say) gives.
        "VOID" => Value::Null,
        "BOOL" => json!(row.try_get::<bool, _>(index).map_err(decode_error)?),
        "INT2" => json!(row.try_get::<i16, _>(index).map_err(decode_error)?),
        "INT4" => json!(row.try_get::<i32, _>(index).map_err(decode_error)?),
        "INT8" => json!(row.try_get::<i64, _>(index).map_err(decode_error)?),
        "FLOAT4" => json!(row.try_get::<f32, _>(index).map_err(decode_error)?),
        "FLOAT8" => json!(row.try_get::<f64, _>(index).map_err(decode_error)?),
        "NUMERIC" => numeric(raw.as_bytes().ok(), raw.format()),
        "JSON" | "JSONB" => {
            row.try_get::<sqlx::types::Json<Value>, _>(index)
                .map_err(decode_error)?
                .0
        }
        "UUID" => json!(
            row.try_get::<sqlx::types::Uuid, _>(index)
                .map_err(decode_error)?
                .to_string()
        ),
        "TIMESTAMPTZ" => json!(
            row.try_get::<chrono::DateTime<chrono::Utc>, _>(index)
                .map_err(decode_error)?
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        ),
        "TIMESTAMP" => json!(
            row.try_get::<chrono::NaiveDateTime, _>(index)
                .map_err(decode_error)?
                .format("%Y-%m-%dT%H:%M:%S%.f")
                .to_string()
        ),
        "DATE" => json!(
            row.try_get::<chrono::NaiveDate, _>(index)
                .map_err(decode_error)?
                .to_string()
        ),
        "TIME" => json!(
            row.try_get::<chrono::NaiveTime, _>(index)
                .map_err(decode_error)?
                .to_string()
        ),
        "BYTEA" => json!(
            base64::engine::general_purpose::STANDARD
                .encode(row.try_get::<Vec<u8>, _>(index).map_err(decode_error)?)
        ),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CITEXT" | "UNKNOWN" => {
            json!(row.try_get::<String, _>(index).map_err(decode_error)?)
        }
        _ => match raw.format() {
            // Enums and other types sent as text read as their text.
            PgValueFormat::Text => json!(raw.as_str().unwrap_or_default()),
            PgValueFormat::Binary => {
                return Err(ConnectorError::validation(format!(
                    "column `{}` has the type {type_name}, which Weft does not read yet; \
                     cast it in the SQL (`{}::text`)",
                    row.columns()[index].name(),
                    row.columns()[index].name()
                )));
            }
        },
    })
}

/// A NUMERIC as exact text (node-postgres and psycopg's choice too: a double would round).
/// The binary format is a sign, a weight and base-10,000 digits.
fn numeric(bytes: Option<&[u8]>, format: PgValueFormat) -> Value {
    let Some(bytes) = bytes else {
        return Value::Null;
    };
    if format == PgValueFormat::Text {
        return json!(String::from_utf8_lossy(bytes));
    }
    let word = |at: usize| {
        bytes
            .get(at..at + 2)
            .map_or(0, |pair| i16::from_be_bytes([pair[0], pair[1]]))
    };
    let (count, weight, sign, scale) = (word(0), word(2), word(4) as u16, word(6));
    match sign {
        0xC000 => return json!("NaN"),
        0xD000 => return json!("Infinity"),
        0xF000 => return json!("-Infinity"),
        _ => {}
    }
    let digits: Vec<i16> = (0..count.max(0) as usize)
        .map(|i| word(8 + 2 * i))
        .collect();
    let mut integer = String::new();
    for position in 0..=weight.max(-1) {
        let digit = digits.get(position as usize).copied().unwrap_or(0);
        if integer.is_empty() {
            if digit != 0 || position == weight {
                integer = digit.to_string();
            }
        } else {
            integer.push_str(&format!("{digit:04}"));
        }
    }
    if integer.is_empty() {
        integer.push('0');
    }
    let mut fraction = String::new();
    let first_fraction = (weight + 1).max(0);
    let leading_zero_groups = (-(weight + 1)).max(0);
    for _ in 0..leading_zero_groups {
        fraction.push_str("0000");
    }
    for position in first_fraction..count {
        fraction.push_str(&format!("{:04}", digits[position as usize]));
    }
    let scale = scale.max(0) as usize;
    while fraction.len() < scale {
        fraction.push('0');
    }
    fraction.truncate(scale);
    let sign = if sign == 0x4000 { "-" } else { "" };
    let text = if fraction.is_empty() {
        format!("{sign}{integer}")
    } else {
        format!("{sign}{integer}.{fraction}")
    };
    Value::String(text)
}
