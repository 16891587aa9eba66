//! Errors a connector returns, classified so that the engine records the right kind.

/// How an action failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The input breaks the action's rules; retrying the same input will not help.
    Validation,
    /// The remote system failed, refused or could not be reached.
    Remote,
    /// The call ran past its time limit.
    Timeout,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ConnectorError {
    pub kind: FailureKind,
    pub message: String,
}

impl ConnectorError {
    pub fn validation(message: impl Into<String>) -> Self {
        ConnectorError {
            kind: FailureKind::Validation,
            message: message.into(),
        }
    }

    pub fn remote(message: impl Into<String>) -> Self {
        ConnectorError {
            kind: FailureKind::Remote,
            message: message.into(),
        }
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        ConnectorError {
            kind: FailureKind::Timeout,
            message: message.into(),
        }
    }
}
