//! The job record: what a job did, step by step, as the recipe format's contract describes it.
//!
//! The engine writes these; the store keeps them; `weft run` and the API print them. They are
//! plain data so that every layer above can share them without pulling in the engine.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
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
    pub status: StepStatus,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub index: Option<usize>,
    /// Where a step inside a loop ran, as `lines[2]/price`; absent outside loops, where the id
    /// says it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path: Option<String>,
    pub attempts: u32,
    pub input: Value,
    pub output: Value,
    pub error: Option<RecordError>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

impl StepRecord {
    /// Where the step ran: its path inside loops, else its id.
    pub fn place(&self) -> &str {
        self.path.as_deref().unwrap_or(&self.id)
    }
}

/// The record of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub recipe: String,
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
}
