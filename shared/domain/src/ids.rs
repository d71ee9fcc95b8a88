//! Identifiers. Each is a distinct type so a link id can never be passed where an assignment id is meant.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta] $name:ident),* $(,)?) => {$(
        #[$doc]
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an identifier that came from a trusted source (store, connector payload).
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            /// The identifier as text, for keys and wire formats.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl $name {
            /// Parses an identifier from an edge (URL path, request body, webhook payload) by the
            /// common id grammar (R-K2, [`parse_id`]); the error names the kind, never the value.
            pub fn parse(value: &str) -> Result<Self, IdError> {
                parse_id(stringify!($name), value).map(|v| Self(v.to_owned()))
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }
    )*};
}

id_type!(
    /// A tenant (Mandant): one OPTIGEM installation.
    TenantId,
    /// An OPTIGEM newsletter (Publikation).
    NewsletterId,
    /// An OPTIGEM newsletter assignment (Newsletterzuordnung).
    AssignmentId,
    /// An OPTIGEM person (Personendatensatz).
    PersonId,
    /// A link between one newsletter and one ESP list (Verknüpfung).
    LinkId,
    /// An ESP account (a Brevo API key's account, a CleverReach client).
    AccountId,
    /// An ESP list (Brevo list id, CleverReach group id).
    ListId,
    /// A CleverReach filter used as segment (R-G1).
    SegmentId,
    /// A privacy category (Datenschutz-Merkmal) of OPTIGEM.
    PrivacyCategory,
    /// A delivery-block type (Liefersperren-Art) of OPTIGEM.
    DeliveryBlockType,
    /// The name of a global attribute in the ESP that a field is mapped onto (R-D6).
    AttributeName,
    /// A stable id of an OPTIGEM command, so the connector can execute it twice without harm.
    CommandId,
);

/// The longest id any edge accepts (R-K2).
pub const MAX_ID_LEN: usize = 64;

/// Why an id from an edge was refused (R-K2). It names the kind and the fault, never the value (R-J5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {problem}")]
pub struct IdError {
    /// The id kind, e.g. `TenantId`.
    pub kind: &'static str,
    /// What is wrong with it.
    pub problem: IdProblem,
}

/// What is wrong with a refused id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdProblem {
    /// The id is empty.
    #[error("empty")]
    Empty,
    /// The id is longer than [`MAX_ID_LEN`] bytes.
    #[error("longer than 64 characters")]
    TooLong,
    /// The first character is not an ASCII letter or digit (this refuses `.` and `..`, L2).
    #[error("must start with a letter or digit")]
    BadStart,
    /// A character outside `A-Z a-z 0-9 . _ -` (this refuses every store key separator `# / | ~ :`,
    /// spaces, percent-decoded bytes and non-ASCII).
    #[error("only letters, digits, '.', '_' and '-' are allowed")]
    BadCharacter,
}

/// The id grammar at every edge (R-K2): 1 to 64 characters of `A-Z a-z 0-9 . _ -`, starting with a letter
/// or digit. None of the store key separators (`#`, `/`, `|`, `~`, `:`) can occur, so no id can reach a
/// reserved scope such as a dry run's `…~preview` ([`PREVIEW_SUFFIX`]). Numeric ESP ids (Brevo list
/// ids, CleverReach group and filter ids) are a subset.
pub fn parse_id<'a>(kind: &'static str, value: &'a str) -> Result<&'a str, IdError> {
    if value.len() > MAX_ID_LEN {
        return Err(IdError { kind, problem: IdProblem::TooLong });
    }
    check_chars(kind, value)
}

/// The longest `webhook-id` (Standard Webhooks message id) the intake accepts (R-K2, T28).
pub const MAX_MESSAGE_ID_LEN: usize = 128;

/// Parses a `webhook-id` header: the id grammar of [`parse_id`] with up to [`MAX_MESSAGE_ID_LEN`]
/// characters (`msg_` and 32 hex digits fit), since the inbox keeps it in a key (`optigem:{id}`).
pub fn parse_message_id(value: &str) -> Result<&str, IdError> {
    const KIND: &str = "webhook-id";
    if value.len() > MAX_MESSAGE_ID_LEN {
        return Err(IdError { kind: KIND, problem: IdProblem::TooLong });
    }
    check_chars(KIND, value)
}

fn check_chars<'a>(kind: &'static str, value: &'a str) -> Result<&'a str, IdError> {
    let first = value.chars().next().ok_or(IdError { kind, problem: IdProblem::Empty })?;
    if !first.is_ascii_alphanumeric() {
        return Err(IdError { kind, problem: IdProblem::BadStart });
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        return Err(IdError { kind, problem: IdProblem::BadCharacter });
    }
    Ok(value)
}

/// What marks a dry run's tenant, and the names of a dry run's links and its pointer.
pub const PREVIEW_SUFFIX: &str = "~preview";

impl TenantId {
    /// The tenant under which a link's dry run keeps its own state (R-F8): nothing there reaches the ESP or
    /// OPTIGEM, and no connector reads its feed.
    pub fn preview(&self) -> TenantId {
        TenantId::new(format!("{self}{PREVIEW_SUFFIX}"))
    }

    /// Whether this is a dry run's tenant.
    pub fn is_preview(&self) -> bool {
        self.0.ends_with(PREVIEW_SUFFIX)
    }

    /// The tenant a dry run's tenant stands for (itself for a real one): its connector is asked for the
    /// snapshot, and its settings and inbox are read.
    pub fn real(&self) -> TenantId {
        TenantId::new(self.0.strip_suffix(PREVIEW_SUFFIX).unwrap_or(&self.0))
    }
}
