//! What the planner knows, what it is told, and the plan of effects it returns.

use crate::rules::{FieldValues, Verdict};
use crate::{
    Assignment, AssignmentId, CommandId, ConsentEvidence, Email, EmailTarget, EspAccount, Link, LinkId, ListId,
    NewsletterId, PersonId, PersonalText, SegmentId, Signup, TenantSettings, UnsubscribeSource, Unsubscription,
    YearMonth,
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

// ---------------------------------------------------------------------------------------------
// Known state
// ---------------------------------------------------------------------------------------------

/// Our mirror of one linked assignment: its latest snapshot and what the rules made of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorEntry {
    /// The assignment.
    pub id: AssignmentId,
    /// The highest version seen; an older or equal one changes nothing.
    pub version: u64,
    /// The latest snapshot; `None` once the assignment was deleted (its personal data is dropped).
    pub snapshot: Option<Assignment>,
    /// The e-mail used (R-B1) at the last evaluation.
    pub email: Option<Email>,
    /// The verdict (R-A1) at the last evaluation.
    pub verdict: Verdict,
    /// When time alone may change the verdict next (R-A9); the scheduled run looks these up.
    pub next_transition: Option<NaiveDate>,
    /// The last deliberate subscription (R-J3): the creation or a re-activation in OPTIGEM, or for an
    /// assignment an approval created, the approver's decision. A change of e-mail is none (B7).
    pub subscribed_at: Option<DateTime<Utc>>,
    /// When the assignment took the e-mail it uses now by a change of address (R-D4), if it did after its
    /// last deliberate subscription. An unsubscribe of that address ends it as of then, never earlier
    /// (000: the history shows until when the newsletter went to the old address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_since: Option<DateTime<Utc>>,
    /// An `end_assignment` command we issued and OPTIGEM has not yet reflected; until it does the
    /// assignment counts as inactive, so stale snapshots cannot revive it (R-E1, R-J3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_requested: Option<EndRequest>,
}

impl MirrorEntry {
    /// Active by the rules and not being ended by us.
    pub fn effectively_active(&self) -> bool {
        self.snapshot.is_some() && self.verdict.is_active() && self.end_requested.is_none()
    }

    /// Since when the assignment has been subscribed with the e-mail it uses now: its last deliberate
    /// subscription, or the change of address after it (R-E1: an end is never dated before this).
    pub fn started_at(&self) -> Option<DateTime<Utc>> {
        let subscribed = self.subscribed_at.or(self.snapshot.as_ref().map(|s| s.created_at));
        subscribed.max(self.email_since)
    }

    /// Whether this version (of a change or a deletion) is already known: an older or equal one changes
    /// nothing.
    pub fn has_seen(&self, version: u64) -> bool {
        self.version >= version
    }
}

/// An end we asked OPTIGEM to write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndRequest {
    /// The command that asks for it.
    pub command: CommandId,
    /// The end month asked for.
    pub end: YearMonth,
    /// The unsubscription record asked for.
    pub unsubscription: Unsubscription,
}

/// The unsubscribe tombstone of R-J3: since `at`, only a deliberate new subscription re-subscribes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// When the recipient left.
    pub at: DateTime<Utc>,
    /// How and where.
    pub source: UnsubscribeSource,
}

/// What we know of one recipient in one link's list.
///
/// Brevo: `listed` = on the list, `active` = not on the account-wide blacklist.
/// CleverReach: `listed` = a receiver in the group, `active` = its active flag there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientState {
    /// On the list / in the group.
    pub listed: bool,
    /// Not blacklisted (Brevo) / active in the group (CleverReach).
    pub active: bool,
    /// The sync has put it on the list for an assignment; only then does it take it off again (R-D2).
    pub linked: bool,
    /// The mapped OPTIGEM values last written or adopted (R-D3, R-C5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_fields: Option<FieldValues>,
    /// Came in as a signup: the first assignment adopts the ESP's names without writing (R-C5).
    #[serde(default)]
    pub adopt_fields: bool,
    /// R-J3 tombstone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tombstone: Option<Tombstone>,
    /// The last deliberate (re-)subscription acted on; ESP events older than it are stale (R-J3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribed_at: Option<DateTime<Utc>>,
    /// A `create_assignment` already asked for this recipient (R-G4), so it is not asked twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_create: Option<CommandId>,
    /// The last change of list membership or active status optisync wrote, and when (R-C6, R-D1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written: Option<Written>,
}

/// A change of list membership or active status optisync wrote to a recipient in one list (R-C6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    /// What was written.
    pub op: WrittenOp,
    /// When it was planned; an ESP report dated before it describes the recipient before the write.
    pub at: DateTime<Utc>,
}

/// The kinds of [`Written`] changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WrittenOp {
    /// Created if missing and put on the list (the active status kept as the ESP had it).
    Listed,
    /// Activated: CleverReach `setactive` in the group; Brevo: off the blacklist.
    Activated,
    /// Deactivated in the group (CleverReach).
    Deactivated,
    /// Taken off the list (Brevo).
    Removed,
}

impl Default for RecipientState {
    /// Nothing known: not on the list, nothing against it being active.
    fn default() -> Self {
        Self {
            listed: false,
            active: true,
            linked: false,
            synced_fields: None,
            adopt_fields: false,
            tombstone: None,
            subscribed_at: None,
            pending_create: None,
            written: None,
        }
    }
}

/// Where an approval entry stands (R-C2, R-C3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for a person to decide.
    Pending,
    /// Approved; the assignment is being created.
    Approved,
    /// Rejected by the approver.
    Rejected,
    /// An active assignment with this e-mail appeared in OPTIGEM by other means.
    Resolved,
    /// The recipient left the list before anyone decided.
    Withdrawn,
}

/// One signup waiting in the approval queue, per (link, e-mail) (R-C2, R-E3, R-J1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalEntry {
    /// The link.
    pub link: LinkId,
    /// The signup's e-mail.
    pub email: Email,
    /// What the ESP knows: names and consent evidence.
    pub signup: Signup,
    /// First signup seen.
    pub first_seen: DateTime<Utc>,
    /// Latest signup seen; a second signup updates the entry instead of adding one.
    pub last_seen: DateTime<Utc>,
    /// How many distinct signups were seen.
    pub signups: u32,
    /// Where it stands.
    pub status: ApprovalStatus,
    /// The `match_persons` command asking OPTIGEM for suggestions (R-C3).
    pub match_command: CommandId,
    /// The approver's decision, once taken (R-C3); deciding again changes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// The assignment the approval's `create_assignment` created, once OPTIGEM sent it: it is subscribed
    /// since the decision (R-J3, B8), and only this one assignment is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<AssignmentId>,
}

impl ApprovalEntry {
    /// The entry's place in the queue: oldest first, ties by e-mail key. Stores page by it.
    pub fn queue_position(&self) -> String {
        format!("{:013}#{}", self.first_seen.timestamp_millis().max(0), self.email.key())
    }
}

/// What an approver decided about a signup (R-C3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Create an assignment for this person (an existing one or a new one).
    Approve {
        /// Whose assignment.
        person: PersonChoice,
        /// The `create_assignment` command this produced.
        command: CommandId,
        /// When.
        at: DateTime<Utc>,
    },
    /// No assignment.
    Reject {
        /// When.
        at: DateTime<Utc>,
    },
}

/// What the planner knows about one link: its settings, the mirror, recipients and approvals.
/// Callers may pass only the slice an input touches (the e-mails involved and the assignment changed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkView {
    /// The link.
    pub link: Link,
    /// Mirrored assignments.
    pub mirror: BTreeMap<AssignmentId, MirrorEntry>,
    /// Recipients by e-mail.
    pub recipients: BTreeMap<Email, RecipientState>,
    /// Approval entries by e-mail.
    pub approvals: BTreeMap<Email, ApprovalEntry>,
    /// What the ESP showed, read just before planning, of recipients the link holds no state of (R-D1).
    /// Not stored: the engine reads it for the input at hand; empty when nothing was read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub observed: BTreeMap<Email, Observed>,
    /// Erased recipients of the e-mails loaded (R-J2, R-J3): the store keeps only a keyed hash of each with
    /// its tombstone, and the engine hands it over here, so the same gate applies as to a recipient state.
    /// Not stored as such; empty when nothing was erased.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub erased: BTreeMap<Email, Tombstone>,
}

impl LinkView {
    /// A link with nothing known yet.
    pub fn new(link: Link) -> Self {
        Self {
            link,
            mirror: BTreeMap::new(),
            recipients: BTreeMap::new(),
            approvals: BTreeMap::new(),
            observed: BTreeMap::new(),
            erased: BTreeMap::new(),
        }
    }
}

/// One recipient as the ESP shows it now, for a recipient optisync has never seen (R-D1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// Whether the ESP lets it receive: CleverReach: active in the group; Brevo: not on the blacklist.
    pub active: bool,
    /// Since when it has been inactive, where the ESP tells (CleverReach's deactivation stamp; Brevo's
    /// last unsubscription in the contact's 90-day statistics).
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
}

/// Everything the planner may consult for one input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Known {
    /// The tenant's settings.
    pub tenant: TenantSettings,
    /// The links the input may touch: those of a newsletter, or all of one Brevo account (R-E2).
    pub links: Vec<LinkView>,
}

impl Known {
    /// Applies a plan's state writes, as the store does after the effects succeeded.
    pub fn apply(&mut self, plan: &Plan) {
        for write in &plan.writes {
            let link = write.link();
            let Some(view) = self.links.iter_mut().find(|v| &v.link.id == link) else { continue };
            match write {
                StateWrite::Mirror { entry, .. } => {
                    view.mirror.insert(entry.id.clone(), (**entry).clone());
                }
                StateWrite::Recipient { email, state, .. } => {
                    view.recipients.insert(email.clone(), state.clone());
                }
                StateWrite::Approval { entry } => {
                    view.approvals.insert(entry.email.clone(), entry.clone());
                }
            }
        }
        for erasure in &plan.erasures {
            if let Some(view) = self.links.iter_mut().find(|v| v.link.id == erasure.link) {
                view.recipients.remove(&erasure.email);
                view.approvals.remove(&erasure.email);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

/// One thing that happened, fed to the planner. Every entry point produces these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Input {
    /// OPTIGEM: an assignment was created or changed (a full snapshot).
    AssignmentChanged {
        /// The snapshot.
        assignment: Assignment,
    },
    /// OPTIGEM: an assignment (or its person) was deleted.
    AssignmentDeleted {
        /// The assignment.
        id: AssignmentId,
        /// Its newsletter.
        newsletter: NewsletterId,
        /// The version of the deletion.
        version: u64,
    },
    /// Something observed in an ESP (webhook or reconciliation).
    Esp(EspEvent),
    /// The scheduled run: today is this date (R-A9).
    Today {
        /// The Berlin date.
        date: NaiveDate,
    },
    /// R-A10: the link's settings (or the tenant's R-A6 setting) changed: the assignment the link holds is
    /// evaluated again with them, although OPTIGEM sent no new version of it.
    Replan {
        /// The link whose settings changed.
        link: LinkId,
        /// The assignment, as the link's mirror holds it.
        assignment: AssignmentId,
    },
    /// OPTIGEM reported an `end_assignment` command done (its command result): the unsubscribe has
    /// reached OPTIGEM, so a link in erasure mode may now erase the recipient (R-J2, R-J4).
    EndConfirmed {
        /// The `end_assignment` command.
        command: CommandId,
        /// The assignment it ended.
        assignment: AssignmentId,
        /// Its newsletter.
        newsletter: NewsletterId,
        /// The unsubscription record it wrote: its cause tells whether the recipient acted (R-J4).
        unsubscription: Unsubscription,
    },
    /// R-J7: an admin asked, on the data subject's request (GDPR Art. 17), to erase this address from
    /// every link of the tenant and every ESP account, whatever the links' unsubscribe mode.
    EraseOnRequest {
        /// The address to erase.
        email: Email,
        /// The request's id: each link's deletion report names it.
        request: CommandId,
    },
}

/// An observation in an ESP about one e-mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EspEvent {
    /// The account.
    pub esp: EspAccount,
    /// The list it concerns; `None` for account-wide events (Brevo blacklist and deletion, R-E2).
    pub list: Option<ListId>,
    /// The recipient's e-mail.
    pub email: Email,
    /// When it happened in the ESP.
    pub at: DateTime<Utc>,
    /// What happened.
    pub what: EspEventKind,
}

/// What an ESP reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EspEventKind {
    /// The recipient used the unsubscribe link in this list (CleverReach) (R-E1).
    Unsubscribed,
    /// Deactivated in the list by an admin, import, API or hard bounce (R-E1, R-E6, R-J4).
    Deactivated,
    /// The recipient was deleted (R-E1).
    Deleted,
    /// Brevo: the contact is on the account-wide blacklist (R-E2).
    Blacklisted,
    /// Brevo: a listing showed the contact on the event's list while it is on the account-wide blacklist,
    /// and the link did not hold it there as a receiving recipient (R-E2, B9): it is taken off that list,
    /// whether or not it has an assignment, so that a later removal from the blacklist revives no list.
    BlacklistedOnList,
    /// A new recipient or form signup (R-E3).
    Signup {
        /// What the ESP knows.
        signup: Signup,
    },
    /// The e-mail was changed inside the ESP (R-E4).
    EmailChanged {
        /// The new address.
        new_email: Email,
        /// What the ESP knows of the recipient.
        signup: Signup,
    },
    /// Fields changed inside the ESP (R-E5: ignored).
    FieldsChanged,
    /// A bounce (R-E6: not synchronised).
    Bounced,
    /// Whether the recipient is an active member of a CleverReach segment (R-G2…G4).
    SegmentMembership {
        /// The segment.
        segment: SegmentId,
        /// Member now?
        member: bool,
        /// What CleverReach holds of a member who joined: names and consent evidence (R-G3, R-J1). Absent
        /// for a member who left, and in events recorded before.
        #[serde(default)]
        signup: Signup,
    },
}

// ---------------------------------------------------------------------------------------------
// The plan
// ---------------------------------------------------------------------------------------------

/// An operation on one recipient in one link's list. Each sets a target state, so applying it twice
/// is harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum EspOp {
    /// Create the recipient if missing, with these mapped fields; never changes its active state.
    Upsert {
        /// Mapped fields (R-D3).
        fields: FieldValues,
    },
    /// Put the recipient on the list (CleverReach: into the group, a new receiver is active) (R-D1).
    AddToList,
    /// Take the recipient off the list (Brevo's way to deactivate, R-D2, R-E2).
    RemoveFromList,
    /// Activate: CleverReach `setactive` in the group; Brevo: remove from the account-wide blacklist (R-D1,
    /// only when R-J3 allows).
    Activate,
    /// Deactivate in the group (CleverReach, R-D2, R-G5).
    Deactivate,
    /// Overwrite the mapped fields (R-D3).
    UpdateFields {
        /// Mapped fields.
        fields: FieldValues,
    },
    /// Erase the recipient (R-J2): CleverReach deletes the receiver from the group; Brevo deletes the
    /// contact account-wide (planned only when no other link of the account still holds it). Deleting
    /// one that is gone already has reached its target.
    Delete,
}

impl EspOp {
    /// The operation's name, as it is serialised (`op`): `upsert`, `add_to_list`, `remove_from_list`,
    /// `activate`, `deactivate`, `update_fields`, `delete`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Upsert { .. } => "upsert",
            Self::AddToList => "add_to_list",
            Self::RemoveFromList => "remove_from_list",
            Self::Activate => "activate",
            Self::Deactivate => "deactivate",
            Self::UpdateFields { .. } => "update_fields",
            Self::Delete => "delete",
        }
    }
}

/// An ESP operation with where it applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EspAction {
    /// The link it serves.
    pub link: LinkId,
    /// The account.
    pub esp: EspAccount,
    /// The list.
    pub list: ListId,
    /// The recipient.
    pub email: Email,
    /// What to do.
    pub op: EspOp,
}

/// Who an approved signup's assignment belongs to (R-C3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PersonChoice {
    /// An existing person.
    Existing {
        /// The person.
        person: PersonId,
    },
    /// A new person with the signup's names.
    New {
        /// First name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first_name: Option<PersonalText>,
        /// Last name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_name: Option<PersonalText>,
    },
}

/// A command for the OPTIGEM connector. Ids are derived from content, so a command planned twice is
/// the same command and the connector may run it twice without harm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OptigemCommand {
    /// Write the end month and the unsubscription record (R-E1, R-C4, R-G4).
    EndAssignment {
        /// Command id.
        id: CommandId,
        /// The assignment.
        assignment: AssignmentId,
        /// Its newsletter.
        newsletter: NewsletterId,
        /// The end month (an earlier existing end is kept).
        end: YearMonth,
        /// Date and source of the unsubscribe.
        unsubscription: Unsubscription,
    },
    /// Create an assignment (and the person first, if new) (R-C3, R-B3, R-J1, R-G4).
    CreateAssignment {
        /// Command id.
        id: CommandId,
        /// The newsletter.
        newsletter: NewsletterId,
        /// The person.
        person: PersonChoice,
        /// The e-mail.
        email: Email,
        /// Where OPTIGEM writes the e-mail (R-B3).
        email_target: EmailTarget,
        /// Consent evidence (R-J1).
        consent: ConsentEvidence,
    },
    /// Upload every assignment of the newsletter as snapshot pages, for the first sync and the
    /// reconciliation (R-F1…F6). The id is also the snapshot's id.
    ExportNewsletter {
        /// Command id.
        id: CommandId,
        /// The newsletter.
        newsletter: NewsletterId,
    },
    /// Ask OPTIGEM for persons matching a signup, for the approval queue (R-C3).
    MatchPersons {
        /// Command id.
        id: CommandId,
        /// The link of the approval entry.
        link: LinkId,
        /// The signup's e-mail.
        email: Email,
        /// The signup's first name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first_name: Option<PersonalText>,
        /// The signup's last name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_name: Option<PersonalText>,
    },
    /// The deletion report of erasure mode (R-J2, 004 "Löschbericht"): the recipient was erased after
    /// their own unsubscribe; OPTIGEM is asked to clean its own records so that no import recreates them.
    /// Personal data: it travels only on the feed, never in a log or metric (R-J5).
    ErasureReport {
        /// Command id.
        id: CommandId,
        /// The link in erasure mode.
        link: LinkId,
        /// Its newsletter.
        newsletter: NewsletterId,
        /// The erased address.
        email: Email,
        /// The `end_assignment` whose result started the erasure, or the id of the erasure request
        /// (R-J7).
        ended: CommandId,
        /// What was deleted where.
        deleted: Vec<ErasedItem>,
        /// What was kept, and why.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        kept: Vec<KeptItem>,
        /// Where the report is meant to go (the tenant's `deletion_report_email`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        notify: Option<Email>,
        /// When the erasure was carried out.
        at: DateTime<Utc>,
    },
}

/// One thing an erasure deleted (R-J2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasedItem {
    /// Where: `cleverreach`, `brevo` or `optisync`.
    pub system: String,
    /// What: `receiver` (CleverReach group), `contact` (Brevo account), `list_membership` (Brevo list),
    /// `recipient_state`, `approval_entry`, `assignment_mirror` (optisync).
    pub item: String,
}

/// One thing an erasure kept, and why (R-J2, R-J3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptItem {
    /// Where.
    pub system: String,
    /// What.
    pub item: String,
    /// Why it was kept.
    pub reason: String,
}

/// An erasure for the store to carry out with the commit (R-J2, R-J3): forget the recipient state and the
/// approval entry of this e-mail in this link, and keep only the keyed hash with the tombstone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    /// The link.
    pub link: LinkId,
    /// The e-mail (turned into its keyed hash before it is stored).
    pub email: Email,
    /// The unsubscribe the hash keeps for the safety net (R-J3).
    pub tombstone: Tombstone,
}

impl OptigemCommand {
    /// The command's id.
    pub fn id(&self) -> &CommandId {
        match self {
            Self::EndAssignment { id, .. }
            | Self::CreateAssignment { id, .. }
            | Self::MatchPersons { id, .. }
            | Self::ExportNewsletter { id, .. }
            | Self::ErasureReport { id, .. } => id,
        }
    }

    /// The command's type, as it is serialised (`type`): `end_assignment`, `create_assignment`,
    /// `export_newsletter`, `match_persons` or `erasure_report`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::EndAssignment { .. } => "end_assignment",
            Self::CreateAssignment { .. } => "create_assignment",
            Self::ExportNewsletter { .. } => "export_newsletter",
            Self::MatchPersons { .. } => "match_persons",
            Self::ErasureReport { .. } => "erasure_report",
        }
    }
}

/// What the connector reports after executing a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CommandResult {
    /// Executed.
    Done {
        /// `create_assignment`: the new assignment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assignment: Option<AssignmentId>,
        /// `create_assignment`: the (new) person.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        person: Option<PersonId>,
        /// `match_persons`: candidate persons.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        suggestions: Vec<Candidate>,
    },
    /// Not executed; the reason is for people and holds no personal data.
    Failed {
        /// Why.
        reason: String,
    },
}

impl CommandResult {
    /// A plain success.
    pub fn done() -> Self {
        Self::Done { assignment: None, person: None, suggestions: Vec::new() }
    }

    /// Whether the command was executed.
    pub fn is_done(&self) -> bool {
        matches!(self, Self::Done { .. })
    }
}

/// A person OPTIGEM offers for a signup (R-C3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// The person.
    pub person: PersonId,
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<PersonalText>,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<PersonalText>,
    /// The person's e-mails (assignment and standard communication).
    #[serde(default)]
    pub emails: Vec<Email>,
}

/// A state item to write once the plan's effects succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "item", rename_all = "snake_case")]
pub enum StateWrite {
    /// A mirror entry.
    Mirror {
        /// The link.
        link: LinkId,
        /// The new entry.
        entry: Box<MirrorEntry>,
    },
    /// A recipient state.
    Recipient {
        /// The link.
        link: LinkId,
        /// The recipient.
        email: Email,
        /// The new state.
        state: RecipientState,
    },
    /// An approval entry.
    Approval {
        /// The new entry.
        entry: ApprovalEntry,
    },
}

impl StateWrite {
    /// The link the item belongs to.
    pub fn link(&self) -> &LinkId {
        match self {
            Self::Mirror { link, .. } | Self::Recipient { link, .. } => link,
            Self::Approval { entry } => &entry.link,
        }
    }
}

/// The planner's answer: ESP operations, OPTIGEM commands, and the state to store afterwards.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// ESP operations, in order.
    pub esp: Vec<EspAction>,
    /// OPTIGEM commands.
    pub commands: Vec<OptigemCommand>,
    /// State writes.
    pub writes: Vec<StateWrite>,
    /// Recipients to erase from this service's store, leaving only the keyed hash (R-J2, R-J3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub erasures: Vec<Erasure>,
}

impl Plan {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.esp.is_empty() && self.commands.is_empty() && self.writes.is_empty() && self.erasures.is_empty()
    }
}

/// A command id derived from what makes the command unique (a hash, so no personal data shows in it).
pub fn command_id(kind: &str, parts: &[&str]) -> CommandId {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0u8]);
    }
    CommandId::new(format!("{kind}-{}", &hex::encode(hash.finalize())[..32]))
}
