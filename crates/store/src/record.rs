//! The job record: what a job did, step by step, as the recipe format's contract describes it.
//!
//! The engine writes these; the store keeps them; `weft run` and the API print them. They are
//! plain data so that every layer above can share them without pulling in the engine.

use chrono::{DateTime, Timelike, Utc};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

/// Now, to the microsecond: as precise as the store keeps a time, so that a record reads
/// back as it was written. Every time in a record is taken with this.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    now.with_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now)
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    /// Accepted and kept, but not run yet: its workspace is over a limit of its plan (the
    /// record's `held` says which). It runs once released.
    Held,
    Running,
    Waiting,
    Succeeded,
    Failed,
}

impl JobStatus {
    /// True once the job can change no more.
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed)
    }
}

/// How one step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Succeeded,
    Failed,
    Skipped,
    /// Failed, then handled by the step's `on_error` steps.
    Handled,
}

/// What kind of failure an error is, so that people and policies can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Input that breaks a declared rule: a schema, a limit, a missing connection.
    Validation,
    /// A template or jq expression that failed to evaluate.
    Expression,
    /// The other system failed or refused.
    Connector,
    /// An attempt ran past its time limit.
    Timeout,
    /// A `stop` step ended the job as failed.
    Stopped,
    /// Weft itself failed.
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Validation => "validation",
            ErrorKind::Expression => "expression",
            ErrorKind::Connector => "connector",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Stopped => "stopped",
            ErrorKind::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as the job record shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordError {
    /// The id of the step that failed, when a step failed.
    pub step: Option<String>,
    pub message: String,
    pub kind: ErrorKind,
}

/// One run of one step. Loop bodies appear once per iteration, with `index` set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub id: String,
    /// Stored records leave out the status of a step that succeeded (see [`StoredSteps`]).
    #[serde(default = "succeeded")]
    pub status: StepStatus,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub index: Option<usize>,
    /// Where a step inside a loop ran, as `lines[2]/price`; absent outside loops, where the id
    /// says it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path: Option<String>,
    /// Stored records leave out one attempt and what is null (see [`StoredSteps`]).
    #[serde(default = "one_attempt")]
    pub attempts: u32,
    #[serde(default)]
    pub input: Value,
    #[serde(default)]
    pub output: Value,
    #[serde(default)]
    pub error: Option<RecordError>,
    /// Stored records give times as microseconds since the Unix epoch.
    #[serde(deserialize_with = "text_or_micros")]
    pub started_at: DateTime<Utc>,
    #[serde(deserialize_with = "text_or_micros")]
    pub finished_at: DateTime<Utc>,
}

fn one_attempt() -> u32 {
    1
}

fn succeeded() -> StepStatus {
    StepStatus::Succeeded
}

/// A time as RFC 3339 text (the API's form) or as microseconds since the Unix epoch (the
/// stored form).
fn text_or_micros<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<DateTime<Utc>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Time {
        Micros(i64),
        Text(DateTime<Utc>),
    }
    match Time::deserialize(deserializer)? {
        Time::Text(time) => Ok(time),
        Time::Micros(micros) => DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| serde::de::Error::custom(format!("{micros} µs is not a time"))),
    }
}

impl StepRecord {
    /// Where the step ran: its path inside loops, else its id.
    pub fn place(&self) -> &str {
        self.path.as_deref().unwrap_or(&self.id)
    }
}

/// Step records as the store keeps them: fields that hold `null` are left out (a step that
/// only computes has neither input nor error), and so are a single attempt and the status of
/// a step that succeeded; times are microseconds since the Unix epoch (16 digits instead of
/// 32 characters of text). A W1 job's steps (see `bench/RESULTS.md`) take 350 bytes instead
/// of 490. The API shows the same record either way, with times to the microsecond.
pub struct StoredSteps<'a>(pub &'a [StepRecord]);

impl Serialize for StoredSteps<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(StoredStep))
    }
}

struct StoredStep<'a>(&'a StepRecord);

impl Serialize for StoredStep<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let step = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &step.id)?;
        if step.status != succeeded() {
            map.serialize_entry("status", &step.status)?;
        }
        if let Some(index) = step.index {
            map.serialize_entry("index", &index)?;
        }
        if let Some(path) = &step.path {
            map.serialize_entry("path", path)?;
        }
        if step.attempts != one_attempt() {
            map.serialize_entry("attempts", &step.attempts)?;
        }
        if !step.input.is_null() {
            map.serialize_entry("input", &step.input)?;
        }
        if !step.output.is_null() {
            map.serialize_entry("output", &step.output)?;
        }
        if let Some(error) = &step.error {
            map.serialize_entry("error", error)?;
        }
        map.serialize_entry("started_at", &step.started_at.timestamp_micros())?;
        map.serialize_entry("finished_at", &step.finished_at.timestamp_micros())?;
        map.end()
    }
}

/// The record of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub recipe: String,
    /// The version of the recipe that ran, for a job of a saved recipe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe_version: Option<i64>,
    pub status: JobStatus,
    pub output: Value,
    pub trigger: Value,
    pub error: Option<RecordError>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub steps: Vec<StepRecord>,
    /// The job this one reruns, if it is a rerun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<String>,
    /// The job whose `call` step ran this one, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub called_by: Option<String>,
    /// Why a `held` job waits: `quota` (its workspace used its plan's tasks for the month).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// The tasks (action steps run) this job was charged, once it has run: a rerun is
    /// charged for the steps it runs again, not for those it took over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(input: Value, output: Value, error: Option<RecordError>) -> StepRecord {
        let at = |text: &str| text.parse::<DateTime<Utc>>().expect("a time");
        StepRecord {
            id: "price".to_owned(),
            status: StepStatus::Handled,
            index: Some(2),
            path: Some("lines[2]/price".to_owned()),
            attempts: 3,
            input,
            output,
            error,
            started_at: at("2026-11-30T08:42:37.331621Z"),
            finished_at: at("2026-11-30T08:42:38.000001Z"),
        }
    }

    /// Every field survives the stored form: a field added to the record and forgotten
    /// there fails here.
    #[test]
    fn stored_steps_read_back_as_they_were() {
        let error = RecordError {
            step: Some("price".to_owned()),
            message: "no".to_owned(),
            kind: ErrorKind::Connector,
        };
        let mut plain = step(Value::Null, Value::Null, None);
        plain.attempts = 1;
        plain.status = StepStatus::Succeeded;
        let steps = vec![step(json!({"a": 1}), json!([1]), Some(error)), plain];
        let stored = serde_json::to_string(&StoredSteps(&steps)).expect("serializes");
        let read: Vec<StepRecord> = serde_json::from_str(&stored).expect("reads back");
        assert_eq!(read, steps);
        let full = serde_json::to_string(&steps).expect("serializes");
        assert!(stored.len() < full.len(), "{stored}");
        assert!(!stored.contains("null"), "{stored}");
        assert_eq!(stored.matches("attempts").count(), 1, "{stored}");
        assert_eq!(stored.matches("status").count(), 1, "{stored}");
        assert!(
            stored.contains(r#""started_at":1796028157331621"#),
            "{stored}"
        );
        // The full form, as the API shows it and as older rows hold it, reads the same.
        let read: Vec<StepRecord> = serde_json::from_str(&full).expect("reads back");
        assert_eq!(read, steps);
    }
}
