//! Weft's storage layer. For now it holds the job record, the shape every layer shares; the
//! SQLite and PostgreSQL stores arrive with `weft serve`.

pub mod record;

pub use record::{ErrorKind, JobRecord, JobStatus, RecordError, StepRecord, StepStatus};
