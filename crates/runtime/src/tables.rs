//! Lookup tables in memory: every table is read once from the store and kept, with an index
//! per column built on first use, so that a lookup costs a hash probe. Writes go to the store
//! first (a whole table at a time, guarded by its version) and then replace the copy here;
//! `refresh` picks up what other processes wrote.

use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use weft_connectors::tables::{Edit, TableData, TableRows};
use weft_store::{Store, StoreError};

/// Most rows a table holds: tables are read whole into memory.
pub const MOST_ROWS: usize = 100_000;
/// How many times a change is tried again when another writer changed the table meanwhile.
const MOST_TRIES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{0}")]
    Invalid(String),
    #[error("no lookup table named `{0}`")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Cached {
    data: Arc<TableData>,
    version: i64,
    /// For each column looked up so far: each value's text to the first row holding it.
    index: Mutex<HashMap<String, Arc<HashMap<String, usize>>>>,
}

impl Cached {
    fn new(data: TableData, version: i64) -> Arc<Cached> {
        Arc::new(Cached {
            data: Arc::new(data),
            version,
            index: Mutex::new(HashMap::new()),
        })
    }

    fn first(&self, column: &str, wanted: &Value) -> Option<Value> {
        let index = {
            let mut indexes = self.index.lock().ok()?;
            Arc::clone(indexes.entry(column.to_owned()).or_insert_with(|| {
                let mut index = HashMap::new();
                for (position, row) in self.data.rows.iter().enumerate() {
                    if let Some(value) = row.get(column) {
                        index.entry(text(value)).or_insert(position);
                    }
                }
                Arc::new(index)
            }))
        };
        index
            .get(&text(wanted))
            .and_then(|position| self.data.rows.get(*position).cloned())
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Each workspace's tables by name (nested, so that a lookup builds no key).
type Tables = HashMap<String, HashMap<String, Arc<Cached>>>;

pub struct TableBook {
    store: Store,
    tables: RwLock<Tables>,
}

impl TableBook {
    /// Reads every table of the store into memory.
    pub async fn load(store: Store) -> Result<TableBook, TableError> {
        let book = TableBook {
            store,
            tables: RwLock::new(HashMap::new()),
        };
        for table in book.store.tables().await? {
            book.keep(
                &table.workspace_id,
                &table.name,
                TableData {
                    columns: table.columns,
                    rows: table.rows,
                },
                table.version,
            );
        }
        Ok(book)
    }

    fn keep(&self, workspace: &str, name: &str, data: TableData, version: i64) {
        if let Ok(mut tables) = self.tables.write() {
            tables
                .entry(workspace.to_owned())
                .or_default()
                .insert(name.to_owned(), Cached::new(data, version));
        }
    }

    fn cached(&self, workspace: &str, name: &str) -> Option<Arc<Cached>> {
        self.tables.read().ok()?.get(workspace)?.get(name).cloned()
    }

    /// The first row of `table` whose `column` equals `value` (as text): the `lookup`
    /// template function, from memory.
    pub fn lookup(
        &self,
        workspace: &str,
        table: &str,
        column: &str,
        value: &Value,
    ) -> Result<Option<Value>, String> {
        let cached = self
            .cached(workspace, table)
            .ok_or_else(|| format!("no lookup table named `{table}`"))?;
        if !cached.data.columns.iter().any(|known| known == column) {
            return Err(format!(
                "lookup table `{table}` has no column `{column}` (it has: {})",
                cached.data.columns.join(", ")
            ));
        }
        Ok(cached.first(column, value))
    }

    pub async fn create(
        &self,
        workspace: &str,
        name: &str,
        columns: &[String],
    ) -> Result<Value, TableError> {
        check_name(name)?;
        if columns.is_empty() || columns.iter().any(|column| column.trim().is_empty()) {
            return Err(TableError::Invalid(
                "`columns` needs at least one column, each with a name".to_owned(),
            ));
        }
        let mut unique = columns.to_vec();
        unique.sort();
        unique.dedup();
        if unique.len() != columns.len() {
            return Err(TableError::Invalid(
                "`columns` names a column twice".to_owned(),
            ));
        }
        self.store.create_table(workspace, name, columns).await?;
        self.keep(
            workspace,
            name,
            TableData {
                columns: columns.to_vec(),
                rows: Vec::new(),
            },
            1,
        );
        Ok(json!({ "name": name, "columns": columns, "rows": 0 }))
    }

    pub async fn list(&self, workspace: &str) -> Result<Vec<Value>, TableError> {
        Ok(self
            .store
            .tables()
            .await?
            .into_iter()
            .filter(|table| table.workspace_id == workspace)
            .map(|table| json!({ "name": table.name, "columns": table.columns, "rows": table.rows.len() }))
            .collect())
    }

    pub async fn show(&self, workspace: &str, name: &str) -> Result<Arc<TableData>, TableError> {
        self.read(workspace, name)
            .await
            .map_err(|_| TableError::NotFound(name.to_owned()))
    }

    pub async fn delete(&self, workspace: &str, name: &str) -> Result<(), TableError> {
        if !self.store.delete_table(workspace, name).await? {
            return Err(TableError::NotFound(name.to_owned()));
        }
        if let Ok(mut tables) = self.tables.write()
            && let Some(of_workspace) = tables.get_mut(workspace)
        {
            of_workspace.remove(name);
        }
        Ok(())
    }

    /// Replaces every row of a table (a CSV import): each row an object of the table's columns.
    pub async fn replace_rows(
        &self,
        workspace: &str,
        name: &str,
        rows: Vec<Map<String, Value>>,
    ) -> Result<usize, TableError> {
        if rows.len() > MOST_ROWS {
            return Err(TableError::Invalid(format!(
                "a table holds at most {MOST_ROWS} rows"
            )));
        }
        let count = rows.len();
        let rows: Vec<Value> = rows.into_iter().map(Value::Object).collect();
        let edit = move |existing: &mut Vec<Value>, _columns: &[String]| {
            *existing = rows.clone();
            Ok(json!(null))
        };
        self.change(workspace, name, &edit)
            .await
            .map_err(|message| {
                if message.starts_with("no lookup table") {
                    TableError::NotFound(name.to_owned())
                } else {
                    TableError::Invalid(message)
                }
            })?;
        Ok(count)
    }

    /// Picks up the tables other processes made, changed or deleted.
    pub async fn refresh(&self) -> Result<(), TableError> {
        let versions = self.store.table_versions().await?;
        let stale: Vec<(String, String)> = {
            let tables = self
                .tables
                .read()
                .map_err(|_| TableError::Invalid("a lock is poisoned".to_owned()))?;
            versions
                .iter()
                .filter(|(workspace, name, version)| {
                    tables
                        .get(workspace)
                        .and_then(|of_workspace| of_workspace.get(name))
                        .is_none_or(|cached| cached.version != *version)
                })
                .map(|(workspace, name, _)| (workspace.clone(), name.clone()))
                .collect()
        };
        for (workspace, name) in stale {
            if let Some(table) = self.store.table(&workspace, &name).await? {
                self.keep(
                    &workspace,
                    &name,
                    TableData {
                        columns: table.columns,
                        rows: table.rows,
                    },
                    table.version,
                );
            }
        }
        if let Ok(mut tables) = self.tables.write() {
            for (workspace, of_workspace) in tables.iter_mut() {
                of_workspace.retain(|name, _| {
                    versions
                        .iter()
                        .any(|(kept_in, kept, _)| kept_in == workspace && kept == name)
                });
            }
        }
        Ok(())
    }
}

fn check_name(name: &str) -> Result<(), TableError> {
    let fits = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if fits {
        Ok(())
    } else {
        Err(TableError::Invalid(
            "a table's name is 1 to 64 lower-case letters, digits, `_` and `-`".to_owned(),
        ))
    }
}

#[async_trait::async_trait]
impl TableRows for TableBook {
    async fn read(&self, workspace: &str, table: &str) -> Result<Arc<TableData>, String> {
        if let Some(cached) = self.cached(workspace, table) {
            return Ok(Arc::clone(&cached.data));
        }
        let stored = self
            .store
            .table(workspace, table)
            .await
            .map_err(|error| error.to_string())?
            .ok_or_else(|| format!("no lookup table named `{table}`"))?;
        let data = TableData {
            columns: stored.columns,
            rows: stored.rows,
        };
        self.keep(workspace, table, data.clone(), stored.version);
        Ok(Arc::new(data))
    }

    async fn change(&self, workspace: &str, table: &str, edit: &Edit) -> Result<Value, String> {
        for _ in 0..MOST_TRIES {
            let stored = self
                .store
                .table(workspace, table)
                .await
                .map_err(|error| error.to_string())?
                .ok_or_else(|| format!("no lookup table named `{table}`"))?;
            let mut rows = stored.rows.clone();
            let answer = edit(&mut rows, &stored.columns)?;
            if rows.len() > MOST_ROWS {
                return Err(format!("a table holds at most {MOST_ROWS} rows"));
            }
            if let Some(version) = self
                .store
                .save_table_rows(workspace, table, stored.version, &rows)
                .await
                .map_err(|error| error.to_string())?
            {
                self.keep(
                    workspace,
                    table,
                    TableData {
                        columns: stored.columns,
                        rows,
                    },
                    version,
                );
                return Ok(answer);
            }
        }
        Err(format!(
            "lookup table `{table}` is changed by others too often to write; try again"
        ))
    }
}
