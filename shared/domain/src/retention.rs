//! Retention of personal data (R-J6): how long each kind of record that became expirable is kept, as a
//! tenant setting with safe defaults, and which state items may expire at all.
//!
//! The data inventory that names every kind, its purpose and its expiry is `docs/privacy.md`. The
//! stores date expiries by their own clock (DynamoDB's TTL deletes by wall-clock time) and treat an
//! item past its expiry as gone before any TTL or purge has removed it.

use crate::{LinkView, MirrorEntry, RecipientState, Tombstone};
use chrono::Duration;
use serde::{Deserialize, Serialize};

/// How long records are kept once they became expirable, in days (R-J6). Part of [`TenantSettings`]
/// (`crate::TenantSettings`); every field has a default, so settings saved before keep working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// Inbox entries once the worker applied them, snapshot pages once uploaded (they are imported
    /// within the hour) and connector request ids: the window in which a redelivery is still
    /// recognised as a duplicate without running the engine.
    pub inbox_days: u32,
    /// OPTIGEM commands and their results once the connector reported a result.
    pub commands_days: u32,
    /// Approval entries once decided, withdrawn or resolved (the consent evidence went to OPTIGEM
    /// with the `create_assignment` it produced, R-J1).
    pub approvals_days: u32,
    /// Everything a dry run (R-F8) writes under the tenant's `~preview` copy.
    pub dry_run_days: u32,
    /// Recipient states on no list without an active assignment. The R-J3 tombstone outlives them as
    /// a keyed hash.
    pub recipients_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self { inbox_days: 7, commands_days: 30, approvals_days: 90, dry_run_days: 7, recipients_days: 30 }
    }
}

/// The range each retention period must lie in, by field name (as the admin API names the field).
pub const RETENTION_LIMITS: [(&str, u32, u32); 5] = [
    ("inbox_days", 1, 90),
    ("commands_days", 7, 365),
    ("approvals_days", 30, 3650),
    ("dry_run_days", 1, 30),
    ("recipients_days", 1, 365),
];

/// A retention period outside its range; names the field (`retention.inbox_days`) and the range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} must be between {min} and {max} days")]
pub struct RetentionError {
    /// The field, as the admin API names it.
    pub field: String,
    /// The shortest period allowed.
    pub min: u32,
    /// The longest period allowed.
    pub max: u32,
}

impl Retention {
    /// Checks every period against [`RETENTION_LIMITS`]; the first one outside names its field.
    pub fn validate(&self) -> Result<(), RetentionError> {
        let values =
            [self.inbox_days, self.commands_days, self.approvals_days, self.dry_run_days, self.recipients_days];
        for ((field, min, max), value) in RETENTION_LIMITS.into_iter().zip(values) {
            if !(min..=max).contains(&value) {
                return Err(RetentionError { field: format!("retention.{field}"), min, max });
            }
        }
        Ok(())
    }

    /// Processed inbox entries and snapshot pages.
    pub fn inbox(&self) -> Duration {
        Duration::days(self.inbox_days.into())
    }
    /// Acknowledged commands and their results.
    pub fn commands(&self) -> Duration {
        Duration::days(self.commands_days.into())
    }
    /// Decided, withdrawn and resolved approval entries.
    pub fn approvals(&self) -> Duration {
        Duration::days(self.approvals_days.into())
    }
    /// A dry run's copy.
    pub fn dry_run(&self) -> Duration {
        Duration::days(self.dry_run_days.into())
    }
    /// Recipient states on no list without an active assignment.
    pub fn recipients(&self) -> Duration {
        Duration::days(self.recipients_days.into())
    }
}

/// Whether a recipient state may expire (R-J6): it is on no list (Brevo: not on the list;
/// CleverReach: no receiver in the group) and no assignment of the link that uses its e-mail is
/// active. `mirror` is the link's mirror entries as they stand after the commit.
pub fn recipient_expirable<'a>(
    state: &RecipientState,
    email: &crate::Email,
    mirror: impl IntoIterator<Item = &'a MirrorEntry>,
) -> bool {
    !state.listed && !mirror.into_iter().any(|m| m.email.as_ref() == Some(email) && m.effectively_active())
}

/// Whether a link view's recipient state may expire, with the view's own mirror entries.
pub fn recipient_expirable_in(view: &LinkView, email: &crate::Email, state: &RecipientState) -> bool {
    recipient_expirable(state, email, view.mirror.values())
}

/// What outlives an expired recipient state for R-J3, stored under a keyed hash of the e-mail and
/// without the e-mail or any name: the tombstone and whether the ESP let the recipient receive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TombstoneRecord {
    /// The R-J3 tombstone.
    pub tombstone: Tombstone,
    /// The recipient's `active` flag when its state was last written.
    pub active: bool,
}

impl TombstoneRecord {
    /// The record a recipient state leaves behind, if it carries a tombstone.
    pub fn of(state: &RecipientState) -> Option<Self> {
        state.tombstone.clone().map(|tombstone| Self { tombstone, active: state.active })
    }

    /// The recipient state a load stands in for an expired one: on no list, not linked, the tombstone.
    pub fn into_state(self) -> RecipientState {
        RecipientState {
            listed: false,
            active: self.active,
            tombstone: Some(self.tombstone),
            ..RecipientState::default()
        }
    }
}
