//! Errors a handler returns, and how each reaches the Vault user.

use crate::vault::storage::StorageError;
use crate::vault::system_view::SystemViewError;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Bad input: becomes a response `{"error": msg}`, which Vault answers with HTTP 400.
    #[error("{0}")]
    User(String),
    /// An HTTP status of the engine's choosing with a message.
    #[error("{message}")]
    Coded { code: u16, message: String },
    #[error("unsupported operation")]
    UnsupportedOperation,
    #[error("unsupported path")]
    UnsupportedPath,
    #[error("permission denied")]
    PermissionDenied,
    /// Anything else: HTTP 500 with the message (Vault retries revocations that fail).
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    SystemView(#[from] SystemViewError),
    /// A failure of a service the engine calls (Atlas), with what the engine
    /// was doing. `caller_input` (the service refused the caller's input, or
    /// does not know an id the caller gave) makes it a 400; else a 500.
    #[error("{context}: {source}")]
    Upstream {
        context: String,
        caller_input: bool,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl BackendError {
    pub fn user(msg: impl Into<String>) -> Self {
        Self::User(msg.into())
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        Self::Internal(msg.into())
    }

    /// Whether the caller's input caused the error: Vault answers 400 with the message.
    pub fn is_user(&self) -> bool {
        matches!(
            self,
            Self::User(_)
                | Self::Upstream {
                    caller_input: true,
                    ..
                }
        )
    }

    /// The same error with `note` appended to its message (what happened next).
    pub fn with_note(self, note: &str) -> Self {
        match self {
            Self::User(m) => Self::User(format!("{m}; {note}")),
            Self::Coded { code, message } => Self::Coded {
                code,
                message: format!("{message}; {note}"),
            },
            other if other.is_user() => Self::User(format!("{other}; {note}")),
            other => Self::Internal(format!("{other}; {note}")),
        }
    }
}
