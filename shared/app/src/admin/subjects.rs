//! Data-subject requests (R-J7, GDPR Art. 15 and 17): what the service holds about one address of a
//! tenant, and its erasure on request.
//!
//! The address comes in the request's body, never in a URL (R-J5: URLs land in access logs). The
//! erasure goes through the engine like every other input ([`Input::EraseOnRequest`]), planned by the
//! same erasure planning as erasure mode (R-J2), so the store keeps only the keyed hash (R-J3) and each
//! link's deletion report goes on the connector's feed.

use super::{Admin, AdminError};
use crate::engine::ProcessError;
use chrono::{DateTime, NaiveDate, Utc};
use optisync_domain::{
    ApprovalStatus, AssignmentId, AuditEntry, CommandId, ConsentEvidence, Email, ErasedItem, EspAccount, Input,
    KeptItem, LinkId, ListId, NewsletterId, OptigemCommand, TenantId, Tombstone, UnsubscribeCause, YearMonth,
    command_id,
};
use optisync_ports::StoreError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Most audit entries of a link searched for one address.
pub const MAX_SUBJECT_AUDIT: usize = 10_000;
/// The connector's feed is read in pages of this many commands.
const FEED_PAGE: usize = 500;

/// The body of both data-subject routes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectRequest {
    /// The data subject's e-mail address.
    pub email: String,
}

/// Everything the service holds about one address of a tenant (R-J7).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubjectExport {
    /// The address, as the service keys it.
    pub email: Email,
    /// Whether the address was erased: only its keyed hash with the unsubscribe date is left (R-J3).
    pub erased: Option<ErasedMarker>,
    /// What each link of the tenant holds; a link that holds nothing has empty sections.
    pub links: Vec<SubjectLink>,
}

impl SubjectExport {
    /// Whether any link holds anything of the address (the keyed hash aside).
    pub fn holds_anything(&self) -> bool {
        self.links.iter().any(SubjectLink::holds_anything)
    }
}

/// The keyed hash an erasure left (R-J3).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErasedMarker {
    /// The unsubscribe the hash keeps.
    pub unsubscribe: Unsubscribe,
}

/// What one link holds about the address.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubjectLink {
    /// The link.
    pub link: LinkId,
    /// Its OPTIGEM newsletter.
    pub newsletter: NewsletterId,
    /// Its ESP account.
    pub esp: EspAccount,
    /// Its list.
    pub list: ListId,
    /// The recipient state: whether the address is on the list and active there; `None`: none held.
    pub recipient: Option<RecipientView>,
    /// The OPTIGEM assignments the mirror holds with this address, each with its verdict in words.
    pub assignments: Vec<AssignmentView>,
    /// Consent evidence: the signups the ESP reported, and what was handed to OPTIGEM with them.
    pub consent: Vec<ConsentRecord>,
    /// Unsubscribe history: the tombstone and the unsubscriptions handed to OPTIGEM.
    pub unsubscribes: Vec<Unsubscribe>,
    /// Pending approval (R-C2): the signup waits for an approver's decision.
    pub pending_approval: Option<PendingApproval>,
    /// The link's audit entries about this recipient, newest first (masked, as the audit log keeps them).
    pub audit: Vec<AuditEntry>,
}

impl SubjectLink {
    fn holds_anything(&self) -> bool {
        self.recipient.is_some()
            || !self.assignments.is_empty()
            || !self.consent.is_empty()
            || !self.unsubscribes.is_empty()
            || self.pending_approval.is_some()
    }
}

/// A recipient state as the export shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipientView {
    /// On the ESP list.
    pub listed: bool,
    /// Active (receiving) there.
    pub active: bool,
    /// When the service subscribed it, if it did.
    pub subscribed_at: Option<DateTime<Utc>>,
}

/// One assignment that carries the address, with its verdict (R-A1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssignmentView {
    /// The assignment.
    pub id: AssignmentId,
    /// Its version as last seen.
    pub version: u64,
    /// Whether it is active (R-A1).
    pub active: bool,
    /// Why not, one sentence each.
    pub reasons: Vec<ReasonView>,
    /// Its end month, if any.
    pub end: Option<YearMonth>,
    /// Whether the service asked OPTIGEM to end it (R-E1).
    pub end_requested: bool,
}

/// One reason of a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReasonView {
    /// A stable key (`end_passed`, `privacy_blocked`, …).
    pub code: String,
    /// The reason in words.
    pub text: String,
    /// What it names (end month `2026-04`, privacy category, delivery-block type), for other languages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One piece of consent evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsentRecord {
    /// `esp_signup` (an approval entry: what the ESP reported) or `handed_to_optigem` (a
    /// `create_assignment` command on the connector's feed).
    pub kind: String,
    /// The evidence.
    pub evidence: ConsentEvidence,
    /// The command that handed it to OPTIGEM, if any.
    pub command: Option<CommandId>,
}

/// One unsubscribe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unsubscribe {
    /// `tombstone` (what the service keeps, R-J3) or `handed_to_optigem` (an `end_assignment`).
    pub kind: String,
    /// When (the tombstone's time) …
    pub at: Option<DateTime<Utc>>,
    /// … or the unsubscription date handed to OPTIGEM.
    pub date: Option<NaiveDate>,
    /// The ESP it happened in.
    pub provider: String,
    /// Why, as the ESP reported it.
    pub cause: UnsubscribeCause,
    /// The assignment an `end_assignment` ended.
    pub assignment: Option<AssignmentId>,
    /// The command, if one went to OPTIGEM.
    pub command: Option<CommandId>,
}

/// A pending approval entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingApproval {
    /// First seen.
    pub first_seen: DateTime<Utc>,
    /// Last seen.
    pub last_seen: DateTime<Utc>,
    /// How many signups.
    pub signups: u32,
}

/// What an erasure on request did (R-J7).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubjectErasure {
    /// The request's id; each link's deletion report on the feed names it (`ended`).
    pub request: CommandId,
    /// Whether anything was held (false: a repeated request; nothing is held any more).
    pub erased: bool,
    /// Per link: what was deleted where, what was kept and why.
    pub links: Vec<ErasedLink>,
}

/// One link's part of an erasure on request: its deletion report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErasedLink {
    /// The link.
    pub link: LinkId,
    /// The deletion report's command id on the connector's feed.
    pub report: CommandId,
    /// What was deleted where.
    pub deleted: Vec<ErasedItem>,
    /// What was kept, and why.
    pub kept: Vec<KeptItem>,
}

fn parse_email(raw: &str) -> Result<Email, AdminError> {
    Email::parse(raw).map_err(|_| AdminError::invalid("email", "not an e-mail address"))
}

fn process_error(e: ProcessError) -> AdminError {
    match e {
        ProcessError::Store(e) => AdminError::Store(e),
        ProcessError::Esp(e) => AdminError::esp(e),
        ProcessError::Contention(_) => AdminError::Store(StoreError::Transient("busy".into())),
    }
}

impl Admin {
    /// R-J7 (GDPR Art. 15): everything the tenant's links hold about one address. An address the
    /// service does not know gives every link with empty sections.
    pub async fn subject_lookup(
        &self,
        tenant: &TenantId,
        request: &SubjectRequest,
    ) -> Result<SubjectExport, AdminError> {
        let email = parse_email(&request.email)?;
        let engine = self.reconciler.engine();
        let known = engine.subject(tenant, &email).await?;
        let feed = self.subject_feed(tenant, &email, &known).await?;
        let masked = email.masked();
        let now = self.clock.now();
        let mut erased = None;
        let mut links = Vec::new();
        for view in &known.links {
            let link = &view.link;
            let entries: Vec<_> = view.mirror.values().filter(|e| e.email.as_ref() == Some(&email)).collect();
            let ids: BTreeSet<&AssignmentId> = entries.iter().map(|e| &e.id).collect();
            let assignments = entries
                .iter()
                .filter(|e| e.snapshot.is_some())
                .map(|e| AssignmentView {
                    id: e.id.clone(),
                    version: e.version,
                    active: e.verdict.is_active(),
                    reasons: e
                        .verdict
                        .reasons
                        .iter()
                        .map(|r| ReasonView { code: r.code().into(), text: r.describe(), detail: r.detail() })
                        .collect(),
                    end: e.snapshot.as_ref().and_then(|s| s.end),
                    end_requested: e.end_requested.is_some(),
                })
                .collect();
            let state = view.recipients.get(&email);
            let recipient =
                state.map(|s| RecipientView { listed: s.listed, active: s.active, subscribed_at: s.subscribed_at });
            let mut consent = Vec::new();
            let approval = view.approvals.get(&email);
            if let Some(entry) = approval {
                consent.push(ConsentRecord {
                    kind: "esp_signup".into(),
                    evidence: entry.signup.evidence.clone(),
                    command: Some(entry.match_command.clone()),
                });
            }
            let mut unsubscribes = Vec::new();
            let tombstone = state.and_then(|s| s.tombstone.as_ref());
            if let Some(t) = tombstone {
                unsubscribes.push(tombstone_view(t));
            }
            if let Some(t) = view.erased.get(&email) {
                erased.get_or_insert_with(|| ErasedMarker { unsubscribe: tombstone_view(t) });
            }
            for command in &feed {
                match command {
                    OptigemCommand::CreateAssignment { id, newsletter, consent: evidence, .. }
                        if newsletter == &link.newsletter =>
                    {
                        consent.push(ConsentRecord {
                            kind: "handed_to_optigem".into(),
                            evidence: evidence.clone(),
                            command: Some(id.clone()),
                        });
                    }
                    OptigemCommand::EndAssignment { id, assignment, unsubscription, .. }
                        if ids.contains(assignment) =>
                    {
                        unsubscribes.push(Unsubscribe {
                            kind: "handed_to_optigem".into(),
                            at: None,
                            date: Some(unsubscription.date),
                            provider: unsubscription.source.provider.as_str().into(),
                            cause: unsubscription.source.cause,
                            assignment: Some(assignment.clone()),
                            command: Some(id.clone()),
                        });
                    }
                    _ => {}
                }
            }
            let pending_approval = approval.filter(|e| e.status == ApprovalStatus::Pending).map(|e| PendingApproval {
                first_seen: e.first_seen,
                last_seen: e.last_seen,
                signups: e.signups,
            });
            // The audit log keeps recipients masked (R-J5): an entry is this recipient's when it names the
            // masked address or one of the assignments that carry it.
            let audit = self
                .store
                .audit(tenant, &link.id, now, MAX_SUBJECT_AUDIT)
                .await?
                .into_iter()
                .filter(|a| {
                    a.recipient.as_deref() == Some(masked.as_str())
                        || a.assignment.as_ref().is_some_and(|id| ids.contains(id))
                        || a.esp.iter().any(|op| op.recipient == masked)
                })
                .collect();
            links.push(SubjectLink {
                link: link.id.clone(),
                newsletter: link.newsletter.clone(),
                esp: link.esp.clone(),
                list: link.list.clone(),
                recipient,
                assignments,
                consent,
                unsubscribes,
                pending_approval,
                audit,
            });
        }
        Ok(SubjectExport { email, erased, links })
    }

    /// R-J7 (GDPR Art. 17): erases the address from every link of the tenant and every ESP account
    /// through the engine (the erasure planning of erasure mode, R-J2); only the keyed hash is kept
    /// (R-J3). A repeated request finds nothing and says so.
    pub async fn subject_erase(
        &self,
        tenant: &TenantId,
        request: &SubjectRequest,
    ) -> Result<SubjectErasure, AdminError> {
        let email = parse_email(&request.email)?;
        let now = self.clock.now();
        // The id names no personal data: the tenant, the time and a random part.
        let nonce = format!("{:032x}", rand::random::<u128>());
        let id = command_id("erasure-request", &[tenant.as_str(), &now.to_rfc3339(), &nonce]);
        let engine = self.reconciler.engine();
        let input = Input::EraseOnRequest { email, request: id.clone() };
        let plan = engine.dry_plan(tenant, &input).await.map_err(process_error)?;
        if plan.erasures.is_empty() {
            return Ok(SubjectErasure { request: id, erased: false, links: Vec::new() });
        }
        engine.process(tenant, &input).await.map_err(process_error)?;
        // What the reports on the feed say (the plan processed may differ from the dry one if the state
        // changed meanwhile; the feed is what happened).
        let mut links = Vec::new();
        for command in plan.commands {
            let OptigemCommand::ErasureReport { id: report, link, .. } = command else { continue };
            if let Some((_, OptigemCommand::ErasureReport { deleted, kept, .. })) =
                self.store.command(tenant, &report).await?
            {
                links.push(ErasedLink { link, report, deleted, kept });
            }
        }
        Ok(SubjectErasure { request: id, erased: !links.is_empty(), links })
    }

    /// The commands of the tenant's feed about this address: `create_assignment` with it, and
    /// `end_assignment` of the assignments that carry it.
    async fn subject_feed(
        &self,
        tenant: &TenantId,
        email: &Email,
        known: &optisync_domain::Known,
    ) -> Result<Vec<OptigemCommand>, StoreError> {
        let ids: BTreeSet<&AssignmentId> = known
            .links
            .iter()
            .flat_map(|v| v.mirror.values().filter(|e| e.email.as_ref() == Some(email)).map(|e| &e.id))
            .collect();
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = self.store.commands(tenant, after, FEED_PAGE).await?;
            let Some((last, _)) = page.last() else { break };
            after = *last;
            let full = page.len() == FEED_PAGE;
            out.extend(page.into_iter().map(|(_, c)| c).filter(|c| match c {
                OptigemCommand::CreateAssignment { email: e, .. } => e == email,
                OptigemCommand::EndAssignment { assignment, .. } => ids.contains(assignment),
                _ => false,
            }));
            if !full {
                break;
            }
        }
        Ok(out)
    }
}

fn tombstone_view(t: &Tombstone) -> Unsubscribe {
    Unsubscribe {
        kind: "tombstone".into(),
        at: Some(t.at),
        date: None,
        provider: t.source.provider.as_str().into(),
        cause: t.source.cause,
        assignment: None,
        command: None,
    }
}
