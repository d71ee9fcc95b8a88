//! The approval queue as the admin sees it (R-C2, R-C3).

use super::{Admin, AdminError, MAX_APPROVAL_PAGE, valid_id};
use crate::approvals::{ApprovalView, Choice};
use optisync_domain::{ApprovalEntry, Email, LinkId, PersonId, TenantId};
use serde::Deserialize;

/// One page of the approval queue.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalPage {
    /// The entries, oldest first, with suggestions.
    pub entries: Vec<ApprovalView>,
    /// Where the next page starts, if there may be one.
    pub next: Option<String>,
}

/// What the approver decided, as the API takes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case", deny_unknown_fields)]
pub enum DecisionRequest {
    /// Link the signup to an existing person.
    Link {
        /// The e-mail of the entry.
        email: String,
        /// The person.
        person: String,
    },
    /// Create a new person.
    Create {
        /// The e-mail of the entry.
        email: String,
    },
    /// No assignment.
    Reject {
        /// The e-mail of the entry.
        email: String,
    },
}

impl Admin {
    /// A page of the link's pending approvals, oldest first, each with ranked suggestions (R-C3).
    pub async fn approvals(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ApprovalPage, AdminError> {
        let link = self.link(tenant, link).await?;
        let limit = limit.clamp(1, MAX_APPROVAL_PAGE);
        let entries: Vec<ApprovalEntry> = self.store.pending_approvals(&link.tenant, &link.id, after, limit).await?;
        let next = if entries.len() == limit { entries.last().map(ApprovalEntry::queue_position) } else { None };
        let mut views = Vec::with_capacity(entries.len());
        for entry in entries {
            views.push(self.approvals.view_of(tenant, entry).await?);
        }
        Ok(ApprovalPage { entries: views, next })
    }

    /// Decides about a pending signup (R-C3); the same decision again changes nothing.
    pub async fn decide(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        request: DecisionRequest,
    ) -> Result<ApprovalView, AdminError> {
        let link = self.link(tenant, link).await?;
        let (email, choice) = match &request {
            DecisionRequest::Link { email, person } => {
                if !valid_id(person) {
                    return Err(AdminError::invalid("person", "an OPTIGEM person id"));
                }
                (email, Choice::ExistingPerson(PersonId::new(person)))
            }
            DecisionRequest::Create { email } => (email, Choice::NewPerson),
            DecisionRequest::Reject { email } => (email, Choice::Reject),
        };
        let email = Email::parse(email).map_err(|_| AdminError::invalid("email", "not an e-mail address"))?;
        let entry = self.approvals.decide(tenant, &link.id, &email, choice, self.clock.now()).await?;
        Ok(self.approvals.view_of(tenant, entry).await?)
    }
}
