//! The intake's port: what one webhook sender's specifics (authentication, parsing, what the body holds
//! for the sync and its key) look like to the one intake use case (`optisync_app::intake`), what became
//! of a request, and why one is refused — in words, without HTTP, which the edge maps to responses.

use crate::names::InboxKey;
use crate::{InboxItem, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optisync_domain::{AccountId, TenantId};

/// One webhook request as the hook translated it from HTTP: for whom, its headers, its body, when.
#[derive(Clone, Copy)]
pub struct Hook<'a> {
    /// The tenant from the route.
    pub tenant: &'a TenantId,
    /// The ESP account from the route (`None` for the OPTIGEM connector, which signs per tenant).
    pub account: Option<&'a AccountId>,
    /// A request header by its lower-case name (the first value, if it is text).
    pub header: &'a (dyn Fn(&str) -> Option<&'a str> + Sync),
    /// The raw body, as signed.
    pub body: &'a [u8],
    /// When it arrived.
    pub now: DateTime<Utc>,
}

/// What a request's body holds for the sync, and where the inbox keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The inbox key.
    pub key: InboxKey,
    /// A hash of what was sent: the same key with another fingerprint is another body.
    pub fingerprint: String,
    /// The work, in order.
    pub items: Vec<InboxItem>,
}

/// One sender's specifics behind the intake's one sequence: verify → parse → observe.
#[async_trait]
pub trait WebhookSource: Send + Sync {
    /// What a verified request tells beyond "genuine" (the OPTIGEM message id; `()` elsewhere).
    type Verified: Send;
    /// The parsed body.
    type Parsed: Send;

    /// Checks the request's credentials against the sender's secrets; nothing is parsed before this.
    async fn verify(&self, hook: &Hook<'_>) -> Result<Self::Verified, IntakeError>;

    /// Parses the body; the error names no value of it (R-J5).
    fn parse(&self, body: &[u8]) -> Result<Self::Parsed, IntakeError>;

    /// What the body holds for the sync, keyed; `None` when nothing (opens, clicks, our own echoes).
    async fn observe(
        &self,
        hook: &Hook<'_>,
        verified: Self::Verified,
        parsed: Self::Parsed,
    ) -> Result<Option<Observed>, IntakeError>;
}

/// What became of an accepted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Stored now: `events` items wait for the worker under `key`.
    Stored {
        /// How many items (events, observations or re-reads).
        events: usize,
        /// The inbox key, to hand to the worker.
        key: String,
    },
    /// Stored before.
    Duplicate,
    /// Nothing in it for the sync: acknowledged, not stored.
    Ignored,
}

/// Why a request was not accepted; nothing was stored in any case. The text names no value of the body.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The tenant has no signing secret: unknown tenant or not set up. Answered exactly like a wrong
    /// signature, so nobody can tell which tenants exist (L3, T14).
    #[error("no valid signature")]
    UnknownTenant,
    /// The ESP account has no webhook tokens.
    #[error("unknown account")]
    UnknownAccount,
    /// The credentials are missing or wrong (the text says which).
    #[error("{0}")]
    Unauthorized(String),
    /// The body (or query) is not as expected; `path` names the field where the format says where.
    #[error("{}", match path { Some(path) => format!("{path}: {problem}"), None => problem.clone() })]
    Malformed {
        /// Where, e.g. `events[0].assignment.person.emails[1].email`.
        path: Option<String>,
        /// What is wrong there.
        problem: String,
    },
    /// The message id was used before with another body.
    #[error("this webhook-id was used before for a different body")]
    Reused,
    /// The command or snapshot named does not exist for this tenant.
    #[error("no such {0} for this tenant")]
    NotFound(&'static str),
    /// A store fault (the secret store or the inbox).
    #[error("{0}")]
    Store(#[from] StoreError),
}
