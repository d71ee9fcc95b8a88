//! The approval queue's use case (R-C2, R-C3, R-B3, R-J1): a person decides about a signup — link it to
//! an existing person, create a new person, or reject it. Approving asks OPTIGEM to create the assignment
//! with the e-mail where the tenant wants it and the consent evidence; the connector's result names the
//! assignment created, and its change event links it like any other. Deciding twice is harmless.

use chrono::{DateTime, Utc};
use optisync_domain::audit::AuditCommand;
use optisync_domain::suggest::{Suggestion, rank};
use optisync_domain::{
    ApprovalEntry, ApprovalStatus, AuditEntry, CommandResult, Decision, Email, Link, LinkId, OptigemCommand,
    PersonChoice, PersonId, StateWrite, TenantId, command_id,
};
use optisync_ports::{Commit, ItemKey, Slice, StateStore, StoreError};
use std::sync::Arc;

/// What the approver chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Link the signup to this existing person.
    ExistingPerson(PersonId),
    /// Create a new person with the signup's names.
    NewPerson,
    /// No assignment.
    Reject,
}

/// Why a decision was not taken. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// No such link, or no approval entry for that e-mail in it (404).
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The entry was decided otherwise before, or is no longer pending (409).
    #[error("{0}")]
    Conflict(&'static str),
    /// The store failed (retry).
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// An approval entry with what the admin needs to decide: OPTIGEM's candidates, ranked with reasons.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalView {
    /// The entry (signup data and consent evidence).
    pub entry: ApprovalEntry,
    /// Ranked suggestions; empty until OPTIGEM answered `match_persons`.
    pub suggestions: Vec<Suggestion>,
    /// Whether OPTIGEM has answered yet.
    pub matched: bool,
    /// For an approved entry: OPTIGEM's result of `create_assignment`, once reported.
    pub created: Option<CommandResult>,
}

/// The approval queue over the state store.
#[derive(Clone)]
pub struct Approvals {
    store: Arc<dyn StateStore>,
}

impl Approvals {
    /// Over a store.
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        Self { store }
    }

    /// The link, the entry and its version.
    async fn entry(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        email: &Email,
    ) -> Result<(Link, ApprovalEntry, Option<u64>), ApprovalError> {
        let link = self.store.link(tenant, link).await?.ok_or(ApprovalError::NotFound("link"))?;
        let loaded = self.store.load(&link, &Slice { assignments: Vec::new(), emails: vec![email.clone()] }).await?;
        let entry = loaded.view.approvals.get(email).cloned().ok_or(ApprovalError::NotFound("approval entry"))?;
        let version = loaded.versions.get(&ItemKey::Approval(link.id.clone(), email.key().to_owned())).copied();
        Ok((link, entry, version))
    }

    /// One entry with its ranked suggestions (R-C3).
    pub async fn view(&self, tenant: &TenantId, link: &LinkId, email: &Email) -> Result<ApprovalView, ApprovalError> {
        let (_, entry, _) = self.entry(tenant, link, email).await?;
        self.view_of(tenant, entry).await
    }

    /// Adds suggestions and the creation result to an entry.
    pub async fn view_of(&self, tenant: &TenantId, entry: ApprovalEntry) -> Result<ApprovalView, ApprovalError> {
        let matched = self.store.command_result(tenant, &entry.match_command).await?;
        let suggestions = match &matched {
            Some(CommandResult::Done { suggestions, .. }) => rank(&entry.email, &entry.signup, suggestions),
            _ => Vec::new(),
        };
        let created = match &entry.decision {
            Some(Decision::Approve { command, .. }) => self.store.command_result(tenant, command).await?,
            _ => None,
        };
        Ok(ApprovalView { suggestions, matched: matched.is_some(), created, entry })
    }

    /// Decides about a pending signup. The same decision again returns the entry unchanged; another
    /// decision after one was taken is a conflict.
    pub async fn decide(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        email: &Email,
        choice: Choice,
        now: DateTime<Utc>,
    ) -> Result<ApprovalEntry, ApprovalError> {
        for _ in 0..crate::engine::MAX_ATTEMPTS {
            let (found, mut entry, version) = self.entry(tenant, link, email).await?;
            if let Some(decision) = &entry.decision {
                return if same_choice(decision, &choice) {
                    Ok(entry)
                } else {
                    Err(ApprovalError::Conflict("this signup was decided otherwise before"))
                };
            }
            if entry.status != ApprovalStatus::Pending {
                return Err(ApprovalError::Conflict("this signup is no longer waiting for a decision"));
            }
            let mut commands = Vec::new();
            match &choice {
                Choice::Reject => {
                    entry.status = ApprovalStatus::Rejected;
                    entry.decision = Some(Decision::Reject { at: now });
                }
                Choice::ExistingPerson(_) | Choice::NewPerson => {
                    let person = match &choice {
                        Choice::ExistingPerson(p) => PersonChoice::Existing { person: p.clone() },
                        _ => PersonChoice::New {
                            first_name: entry.signup.first_name.clone(),
                            last_name: entry.signup.last_name.clone(),
                        },
                    };
                    let settings = self.store.tenant_settings(tenant).await?;
                    let id = command_id("approve", &[link.as_str(), email.key(), &entry.first_seen.to_rfc3339()]);
                    commands.push(OptigemCommand::CreateAssignment {
                        id: id.clone(),
                        newsletter: found.newsletter.clone(),
                        person: person.clone(),
                        email: email.clone(),
                        email_target: settings.approved_email_target, // R-B3
                        consent: entry.signup.evidence.clone(),       // R-J1
                    });
                    entry.status = ApprovalStatus::Approved;
                    entry.decision = Some(Decision::Approve { person, command: id, at: now });
                }
            }
            let audit = vec![decision_audit(&entry, &commands, now)];
            let write = StateWrite::Approval { entry: entry.clone() };
            let retention = self.store.tenant_settings(&tenant.real()).await?.retention;
            let expiry = crate::retention::approval_expiry(tenant, &retention, &write); // R-J6
            let commit = Commit { writes: vec![(write, version)], commands, audit, expiry };
            match self.store.commit(tenant, commit).await {
                Ok(()) => return Ok(entry),
                Err(StoreError::Conflict) => continue, // a signup or a decision came in between: read again
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApprovalError::Store(StoreError::Transient("the entry kept changing; try again".into())))
    }
}

fn same_choice(decision: &Decision, choice: &Choice) -> bool {
    match (decision, choice) {
        (Decision::Reject { .. }, Choice::Reject) => true,
        (Decision::Approve { person: PersonChoice::Existing { person }, .. }, Choice::ExistingPerson(p)) => person == p,
        (Decision::Approve { person: PersonChoice::New { .. }, .. }, Choice::NewPerson) => true,
        _ => false,
    }
}

/// The audit entry of a decision: who was decided on (masked, R-J5) and the command it issued.
fn decision_audit(entry: &ApprovalEntry, commands: &[OptigemCommand], now: DateTime<Utc>) -> AuditEntry {
    let input = match entry.status {
        ApprovalStatus::Rejected => "approval.rejected",
        _ => "approval.approved",
    };
    AuditEntry {
        link: entry.link.clone(),
        at: now,
        input: input.to_owned(),
        assignment: None,
        recipient: Some(entry.email.masked()),
        esp: Vec::new(),
        commands: commands.iter().map(|c| AuditCommand { kind: c.kind().to_owned(), id: c.id().clone() }).collect(),
        writes: 1,
    }
}
