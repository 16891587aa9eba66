//! Weft's storage layer: the job record every layer shares, and the store of users, tokens,
//! recipes, connections and jobs on SQLite (the default, in the data folder) or PostgreSQL.

mod access;
mod account_links;
mod account_rights;
mod audit;
mod billing;
mod closing;
mod connections;
mod db;
mod job_time;
mod leases;
mod library;
mod masking;
mod notices;
mod platform;
mod polls;
mod profiles;
pub mod record;
mod retention;
mod sessions;
mod sign_ins;
mod sso;
mod stats;
mod subjects;
mod tables;
mod usage;
pub mod vault;
mod workspaces;
mod writer;

pub use access::{Caller, Credential, DEFAULT_WORKSPACE, NewToken, Role, TokenInfo};
pub use account_links::{AccountLink, LinkPurpose};
pub use account_rights::{Consent, SessionInfo};
pub use audit::{AuditEvent, AuditFilter};
pub use billing::{BillingInvoice, BillingPayment, BillingSubscription};
pub use connections::StoredConnection;
pub use db::{
    CONNECT_WAIT, ClaimedJob, Durability, JobFilter, JobSummary, RecipeRef, RecipeVersion, Result,
    Store, StoreError, StoredRecipe, UnfinishedJobs, User, new_id, parse_status, status_text,
};
pub use leases::Leadership;
pub use library::LibraryEntry;
pub use masking::MaskSettings;
pub use notices::FailureNotice;
pub use platform::{Listening, PlatformEvent, PlatformEvents};
pub use polls::{PollState, SEEN_KEYS_KEPT};
pub use profiles::{Member, MembershipChange, Profile};
pub use record::{ErrorKind, JobRecord, JobStatus, RecordError, StepRecord, StepStatus};
pub use retention::{HistoryHeld, RetentionSettings};
pub use sessions::NewSession;
pub use sign_ins::{PendingSignIn, sign_in_row};
pub use sso::{SsoSettings, sso_row, sso_sign_in_row};
pub use stats::{FailingRecipe, HourOfJobs, LastJob};
pub use subjects::{JobHolding, JobPayloads};
pub use tables::StoredTable;
pub use usage::{UsageMonth, UsageNotice, WorkspaceHoldings, period_of};
pub use workspaces::WorkspaceOf;

#[doc(hidden)]
pub mod testing;
#[cfg(test)]
mod tests;
