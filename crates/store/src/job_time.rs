//! Times in the job table. SQLite keeps them as integer microseconds since the Unix epoch:
//! 8 bytes where RFC 3339 text took 35, four times a row and once more in its recipe index,
//! which is most of what brought a finished job's history under a kilobyte. PostgreSQL keeps
//! `timestamptz`, which is 8 bytes already. Both hold microseconds, so a time reads back the
//! same from either.

use chrono::{DateTime, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef, Postgres};
use sqlx::sqlite::{Sqlite, SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Type};

use crate::writer::SqlValue;

/// A time in a job row, bound and read as each backend stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JobTime(pub DateTime<Utc>);

impl JobTime {
    pub(crate) fn now() -> JobTime {
        JobTime(Utc::now())
    }

    fn micros(self) -> i64 {
        self.0.timestamp_micros()
    }

    /// The value the SQLite writer thread binds.
    pub(crate) fn sql_value(self) -> SqlValue {
        SqlValue::Integer(self.micros())
    }
}

impl From<JobTime> for DateTime<Utc> {
    fn from(time: JobTime) -> DateTime<Utc> {
        time.0
    }
}

/// An optional job time, as a row gives it.
pub(crate) fn optional(time: Option<JobTime>) -> Option<DateTime<Utc>> {
    time.map(DateTime::from)
}

impl Type<Sqlite> for JobTime {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <i64 as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for JobTime {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<'q, Sqlite>>::encode(self.micros(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for JobTime {
    fn decode(value: SqliteValueRef<'r>) -> Result<JobTime, BoxDynError> {
        let micros = <i64 as Decode<'r, Sqlite>>::decode(value)?;
        DateTime::from_timestamp_micros(micros)
            .map(JobTime)
            .ok_or_else(|| format!("{micros} µs is not a time").into())
    }
}

impl Type<Postgres> for JobTime {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <DateTime<Utc> as Type<Postgres>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Postgres> for JobTime {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as Encode<'q, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for JobTime {
    fn decode(value: PgValueRef<'r>) -> Result<JobTime, BoxDynError> {
        <DateTime<Utc> as Decode<'r, Postgres>>::decode(value).map(JobTime)
    }
}
