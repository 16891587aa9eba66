//! Lookup tables over the API: made, listed, shown, deleted, and filled or read as CSV.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use weft_runtime::tables::TableError;

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiError, TextBody, parse_body};

impl From<TableError> for ApiError {
    fn from(error: TableError) -> ApiError {
        match error {
            TableError::Invalid(message) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_table", message)
            }
            TableError::NotFound(_) => ApiError::not_found("lookup table with this name"),
            TableError::Store(error) => error.into(),
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTable {
    name: String,
    columns: Vec<String>,
}

pub async fn create(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    TextBody(body): TextBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let table: NewTable = parse_body(&body, "{\"name\", \"columns\": [...]}")?;
    let created = state
        .tables
        .create(&caller.workspace_id, &table.name, &table.columns)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn list(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "tables": state.tables.list(&caller.workspace_id).await? }),
    ))
}

pub async fn show(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let data = state.tables.show(&caller.workspace_id, &name).await?;
    Ok(Json(
        json!({ "name": name, "columns": data.columns, "rows": data.rows }),
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.tables.delete(&caller.workspace_id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces every row with those of a CSV document whose first line names its columns
/// (columns of the table it does not name are left empty).
pub async fn import_csv(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    Path(name): Path<String>,
    TextBody(body): TextBody,
) -> Result<Json<Value>, ApiError> {
    let data = state.tables.show(&caller.workspace_id, &name).await?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|error| ApiError::bad_request(format!("the CSV has no header line: {error}")))?
        .iter()
        .map(str::to_owned)
        .collect();
    if let Some(unknown) = headers.iter().find(|header| !data.columns.contains(header)) {
        return Err(TableError::Invalid(format!(
            "the CSV's column `{unknown}` is not one of the table's ({})",
            data.columns.join(", ")
        ))
        .into());
    }
    let mut rows = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record
            .map_err(|error| ApiError::bad_request(format!("CSV line {}: {error}", line + 2)))?;
        let mut row: Map<String, Value> = data
            .columns
            .iter()
            .map(|column| (column.clone(), Value::Null))
            .collect();
        for (header, value) in headers.iter().zip(record.iter()) {
            row.insert(header.clone(), json!(value));
        }
        rows.push(row);
    }
    let count = state
        .tables
        .replace_rows(&caller.workspace_id, &name, rows)
        .await?;
    Ok(Json(json!({ "name": name, "rows": count })))
}

pub async fn export_csv(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let data = state.tables.show(&caller.workspace_id, &name).await?;
    let mut writer = csv::Writer::from_writer(Vec::new());
    let unwritable = |error: csv::Error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("cannot write CSV: {error}"),
        )
    };
    writer.write_record(&data.columns).map_err(unwritable)?;
    for row in &data.rows {
        let cells = data.columns.iter().map(|column| match row.get(column) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        });
        writer.write_record(cells).map_err(unwritable)?;
    }
    let bytes = writer.into_inner().map_err(|error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("cannot write CSV: {error}"),
        )
    })?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], bytes).into_response())
}
