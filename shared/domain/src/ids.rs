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
