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
    /// The remote end asked to be left alone this long (HTTP 429 or 503 with `Retry-After`):
    /// every call on the connection waits, and this one is tried again after.
    pub retry_after: Option<std::time::Duration>,
    /// The remote end refused the connection's credentials (HTTP 401): a connection whose
    /// tokens can be refreshed is refreshed, and the call made once more.
    pub credentials_rejected: bool,
}

impl ConnectorError {
    pub fn with_retry_after(mut self, pause: std::time::Duration) -> Self {
        self.retry_after = Some(pause);
        self
    }

    pub fn validation(message: impl Into<String>) -> Self {
        ConnectorError {
            kind: FailureKind::Validation,
            message: message.into(),
            retry_after: None,
            credentials_rejected: false,
        }
    }

    pub fn remote(message: impl Into<String>) -> Self {
        ConnectorError {
            kind: FailureKind::Remote,
            message: message.into(),
            retry_after: None,
            credentials_rejected: false,
        }
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        ConnectorError {
            kind: FailureKind::Timeout,
            message: message.into(),
            retry_after: None,
            credentials_rejected: false,
        }
    }
}

/// Runs a call within the step's time limit, if it has one.
pub async fn within<T>(
    limit: Option<std::time::Duration>,
    work: impl std::future::Future<Output = Result<T, ConnectorError>>,
) -> Result<T, ConnectorError> {
    let Some(limit) = limit else {
        return work.await;
    };
    tokio::time::timeout(limit, work).await.map_err(|_| {
        ConnectorError::timeout(format!(
            "the remote end did not answer within {}",
            weft_recipe::duration::format_duration(limit)
        ))
    })?
}
