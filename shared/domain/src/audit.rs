//! The audit trail: one entry per link for every input that changed something there — what came in,
//! what the ESP was told, which OPTIGEM commands were issued. Recipients appear masked only (R-J5), so an
//! entry never needs erasing; entries expire after [`AUDIT_RETENTION_DAYS`].

use crate::{AssignmentId, CommandId, EspEventKind, Input, Known, LinkId, OptigemCommand, Plan};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How long the store keeps an audit entry.
pub const AUDIT_RETENTION_DAYS: i64 = 90;

/// What one input changed in one link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The link.
    pub link: LinkId,
    /// When the change was committed.
    pub at: DateTime<Utc>,
    /// What came in: `assignment.changed`, `assignment.deleted`, `esp.{kind}`, `today`, `end.confirmed` or `erasure.requested`.
    pub input: String,
    /// The assignment the input is about, if it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment: Option<AssignmentId>,
    /// The recipient the input is about, masked (R-J5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// ESP operations applied in this link's list, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub esp: Vec<AuditOperation>,
    /// OPTIGEM commands issued for this link.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<AuditCommand>,
    /// State items written for this link (mirror, recipient, approval).
    pub writes: usize,
}

/// One ESP operation of an [`AuditEntry`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditOperation {
    /// The recipient, masked.
    pub recipient: String,
    /// The operation: `upsert`, `add_to_list`, `remove_from_list`, `activate`, `deactivate`, `update_fields`.
    pub op: String,
}

/// One OPTIGEM command of an [`AuditEntry`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCommand {
    /// `end_assignment`, `create_assignment`, `match_persons` or `export_newsletter`.
    pub kind: String,
    /// Its id (a hash: no personal data).
    pub id: CommandId,
}

impl AuditEntry {
    /// When the store may forget the entry.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.at + chrono::Duration::days(AUDIT_RETENTION_DAYS)
    }
}

/// The audit entries of a plan: one per link it changes anything in, none for a plan that does nothing
/// (a redelivered or stale input leaves no trace, just as it has no effect).
pub fn audit_entries(known: &Known, input: &Input, plan: &Plan, at: DateTime<Utc>) -> Vec<AuditEntry> {
    let mut entries: BTreeMap<LinkId, AuditEntry> = BTreeMap::new();
    let (name, assignment, recipient) = describe(input);
    let blank = AuditEntry {
        link: LinkId::new(""),
        at,
        input: name,
        assignment,
        recipient,
        esp: Vec::new(),
        commands: Vec::new(),
        writes: 0,
    };
    for action in &plan.esp {
        entry(&mut entries, &blank, &action.link)
            .esp
            .push(AuditOperation { recipient: action.email.masked(), op: action.op.name().to_owned() });
    }
    for write in &plan.writes {
        entry(&mut entries, &blank, write.link()).writes += 1;
    }
    for command in &plan.commands {
        let links: Vec<&LinkId> = match command {
            OptigemCommand::MatchPersons { link, .. } | OptigemCommand::ErasureReport { link, .. } => vec![link],
            OptigemCommand::EndAssignment { newsletter, .. }
            | OptigemCommand::CreateAssignment { newsletter, .. }
            | OptigemCommand::ExportNewsletter { newsletter, .. } => links_of(known, newsletter),
        };
        for link in links {
            entry(&mut entries, &blank, link)
                .commands
                .push(AuditCommand { kind: command.kind().to_owned(), id: command.id().clone() });
        }
    }
    entries.into_values().collect()
}

fn entry<'a>(entries: &'a mut BTreeMap<LinkId, AuditEntry>, blank: &AuditEntry, link: &LinkId) -> &'a mut AuditEntry {
    entries.entry(link.clone()).or_insert_with(|| AuditEntry { link: link.clone(), ..blank.clone() })
}

/// The links of a newsletter among those known (a command for a newsletter is listed with each).
fn links_of<'a>(known: &'a Known, newsletter: &crate::NewsletterId) -> Vec<&'a LinkId> {
    known.links.iter().filter(|v| &v.link.newsletter == newsletter).map(|v| &v.link.id).collect()
}

impl Input {
    /// What came in, as the audit trail and a run's failures name it: `assignment.changed`,
    /// `assignment.deleted`, `esp.{kind}`, `today`, `end.confirmed` or `erasure.requested`.
    pub fn name(&self) -> String {
        match self {
            Input::AssignmentChanged { .. } => "assignment.changed".to_owned(),
            Input::AssignmentDeleted { .. } => "assignment.deleted".to_owned(),
            Input::Esp(event) => {
                let kind = match &event.what {
                    EspEventKind::Unsubscribed => "unsubscribed",
                    EspEventKind::Deactivated => "deactivated",
                    EspEventKind::Deleted => "deleted",
                    EspEventKind::Blacklisted => "blacklisted",
                    EspEventKind::BlacklistedOnList => "blacklisted_on_list",
                    EspEventKind::Signup { .. } => "signup",
                    EspEventKind::EmailChanged { .. } => "email_changed",
                    EspEventKind::FieldsChanged => "fields_changed",
                    EspEventKind::Bounced => "bounced",
                    EspEventKind::SegmentMembership { .. } => "segment_membership",
                };
                format!("esp.{kind}")
            }
            Input::Today { .. } => "today".to_owned(),
            Input::Replan { .. } => "settings.replan".to_owned(),
            Input::EndConfirmed { .. } => "end.confirmed".to_owned(),
            Input::EraseOnRequest { .. } => "erasure.requested".to_owned(),
        }
    }
}

fn describe(input: &Input) -> (String, Option<AssignmentId>, Option<String>) {
    let (assignment, recipient) = match input {
        Input::AssignmentChanged { assignment } => (Some(assignment.id.clone()), None),
        Input::AssignmentDeleted { id, .. } => (Some(id.clone()), None),
        Input::Esp(event) => (None, Some(event.email.masked())),
        Input::Today { .. } => (None, None),
        Input::Replan { assignment, .. } => (Some(assignment.clone()), None),
        Input::EndConfirmed { assignment, .. } => (Some(assignment.clone()), None),
        Input::EraseOnRequest { email, .. } => (None, Some(email.masked())),
    };
    (input.name(), assignment, recipient)
}
