//! Typed errors. Display never contains e-mail addresses, tokens or secrets.

use std::time::Duration;

/// Errors of the CleverReach client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The refresh token was refused (or there is none): a person must authorise the app again.
    #[error("CleverReach re-authorisation required: {reason}")]
    ReauthorizationRequired { reason: String },
    /// The token endpoint failed for another reason (e.g. code exchange refused).
    #[error("CleverReach OAuth request failed (HTTP {status}): {error}")]
    OAuth { status: u16, error: String },
    /// The API still answers 401/403 after a token refresh.
    #[error("CleverReach refused the access token on {operation} (HTTP {status})")]
    Unauthorized { operation: &'static str, status: u16 },
    /// 404: the receiver/group/filter does not exist (in this group).
    #[error("CleverReach: not found on {operation}")]
    NotFound { operation: &'static str },
    /// 429 after all attempts.
    #[error("CleverReach rate limit on {operation} (retry after {retry_after:?})")]
    RateLimited { operation: &'static str, retry_after: Option<Duration> },
    /// 413 even for a batch of one.
    #[error("CleverReach rejected a batch of {size} as too large on {operation}")]
    BatchTooLarge { operation: &'static str, size: usize },
    /// Any other non-2xx answer. `message` has e-mails masked.
    #[error("CleverReach HTTP {status} on {operation}: {message}")]
    Api { operation: &'static str, status: u16, message: String },
    /// Network error / timeout (URL stripped, it can contain an e-mail).
    #[error("CleverReach transport error on {operation}: {message}")]
    Transport { operation: &'static str, message: String },
    /// The answer could not be parsed.
    #[error("CleverReach answer to {operation} could not be parsed: {message}")]
    Decode { operation: &'static str, message: String },
    /// The caller's token store failed to persist the new refresh token.
    #[error("token store failed: {0}")]
    TokenStore(String),
    /// Bad configuration (e.g. invalid base URL).
    #[error("CleverReach configuration error: {0}")]
    Config(String),
}

impl Error {
    /// True when the caller should raise the "re-authorise CleverReach" alarm.
    pub fn needs_reauthorization(&self) -> bool {
        matches!(self, Self::ReauthorizationRequired { .. })
    }

    /// True for failures worth retrying later (transport, 5xx, 429).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::RateLimited { .. } => true,
            Self::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
