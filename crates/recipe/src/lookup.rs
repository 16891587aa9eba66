//! The `lookup(table, column=value)` template function: the first row of a lookup table kept
//! by `weft serve` whose column equals the value, or none. The recipe crate does no I/O: the
//! process that keeps the tables installs where rows come from, once, from memory.

use minijinja::value::Kwargs;
use minijinja::{Error, ErrorKind, State, Value as MjValue};
use serde_json::Value;
use std::sync::{Arc, OnceLock};

use crate::template::{from_json, to_json};

/// Finds the first row of the workspace's (first argument) `table` whose `column` equals
/// `value`; the error says why it cannot look (no such table, no such column).
pub type LookupSource =
    dyn Fn(&str, &str, &str, &Value) -> Result<Option<Value>, String> + Send + Sync;

static SOURCE: OnceLock<Arc<LookupSource>> = OnceLock::new();

/// Installs where `lookup` finds rows; the first call wins (one per process).
pub fn install_lookup_source(source: Arc<LookupSource>) {
    let _ = SOURCE.set(source);
}

/// The workspace of the job whose template looks: `job.workspace` in its context.
fn workspace_of(state: &State) -> String {
    state
        .lookup("job")
        .and_then(|job| job.get_attr("workspace").ok())
        .and_then(|workspace| workspace.as_str().map(str::to_owned))
        .unwrap_or_else(|| crate::DEFAULT_WORKSPACE.to_owned())
}

pub(crate) fn lookup(state: &State, table: String, kwargs: Kwargs) -> Result<MjValue, Error> {
    let Some(source) = SOURCE.get() else {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "lookup tables are kept by `weft serve`; `lookup` has none to read here",
        ));
    };
    let columns: Vec<&str> = kwargs.args().collect();
    let [column] = columns.as_slice() else {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "lookup takes the table and one column=value, such as lookup('rates', currency='EUR')",
        ));
    };
    let column = (*column).to_owned();
    let wanted: MjValue = kwargs.get(&column)?;
    kwargs.assert_all_used()?;
    let wanted =
        to_json(&wanted).map_err(|message| Error::new(ErrorKind::InvalidOperation, message))?;
    match source(&workspace_of(state), &table, &column, &wanted) {
        Ok(Some(row)) => Ok(from_json(&row)),
        Ok(None) => Ok(MjValue::from(())),
        Err(message) => Err(Error::new(ErrorKind::InvalidOperation, message)),
    }
}
