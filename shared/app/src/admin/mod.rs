//! The admin's use cases: tenant settings and connector signing secrets, ESP accounts (R-H1), links per
//! newsletter with their dry run, first sync, status and unlinking (R-F1, R-F7, R-F8, R-G6, R-H2), the
//! re-plan a settings change starts (R-A10), the approval queue (R-C2, R-C3), each link's count report, and data-subject requests
//! (R-J7: access and erasure of one address). The admin API is a thin
//! HTTP layer over this.
//!
//! Every use case checks everything before it writes, so a refused request changes nothing.

mod accounts;
mod approvals;
mod counts;
mod links;
mod reports;
mod subjects;
mod tenants;

pub use accounts::BrevoTokenState;
pub use accounts::BrowserStart;
pub use approvals::{ApprovalPage, DecisionRequest};
pub use counts::{CountReport, MAX_COUNTED};
pub use links::{LinkRequest, LinkStatusView, Replan, ReplanState, SavedLink};
pub use reports::{MAX_REPORT_PAGE, ReportPage};
pub use subjects::{
    AssignmentView, ConsentRecord, ErasedLink, ErasedMarker, MAX_SUBJECT_AUDIT, PendingApproval, ReasonView,
    RecipientView, SubjectErasure, SubjectExport, SubjectLink, SubjectRequest, Unsubscribe,
};
pub use tenants::{NewSigningSecret, TenantView};

use crate::approvals::{ApprovalError, Approvals};
use crate::reconcile::{Reconciler, RunError};
use optisync_ports::{Clock, EspDirectory, EspError, EventPublisher, SecretStore, StateStore, StoreError};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Most connector signing secrets valid at once (a rotation keeps the old ones until retired).
pub const MAX_SIGNING_SECRETS: usize = 3;
/// How long a CleverReach authorisation may take between the browser's start and the callback (M4).
pub const OAUTH_STATE_MINUTES: i64 = 10;
/// How long the start link the admin API hands out stays valid (M4; used once).
pub const OAUTH_TICKET_MINUTES: i64 = 10;
/// The secret with the key that signs OAuth states (made on first use).
pub use optisync_ports::names::secret::OAUTH_STATE_KEY;
/// Most approval entries one page returns.
pub const MAX_APPROVAL_PAGE: usize = 100;
/// Most dry-run lines one report returns.
pub const MAX_PREVIEW_LINES: usize = 1000;
/// R-G6: what saving a segment link tells the admin before the dry run can count the assignments.
pub const SEGMENT_LINK_WARNING: &str = "a segment link takes membership from CleverReach only (R-G2): run the \
     preview; it warns if the newsletter already has active assignments (R-G6)";

/// One thing wrong with a request, naming the field (`settings.mapping.first_name`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    /// The field, as a dotted path into the request.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl FieldProblem {
    /// A problem with a field.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { field: field.into(), problem: problem.into() }
    }
}

/// Why an admin request was refused. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request is well-formed but names things that do not fit (422).
    #[error("the request cannot be applied")]
    Invalid(Vec<FieldProblem>),
    /// No such tenant's link, account, entry or secret (404).
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The request conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The ESP is rate limiting or unreachable (429, retry).
    #[error("the ESP is busy or unreachable; try again shortly")]
    EspBusy {
        /// When to retry, if the ESP said.
        retry_after_secs: Option<u64>,
    },
    /// The ESP refused the request (502).
    #[error("the ESP refused the request")]
    EspRefused(String),
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl AdminError {
    /// A refusal naming one field.
    pub fn invalid(field: &str, problem: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldProblem::new(field, problem)])
    }

    /// An ESP error while using an account: refused credentials name the account.
    fn esp(e: EspError) -> Self {
        match e {
            EspError::Transient { retry_after_secs } => Self::EspBusy { retry_after_secs },
            EspError::Unauthorized => {
                Self::invalid("account", "the ESP refuses this account's credentials: connect it again")
            }
            EspError::Rejected(message) => Self::EspRefused(message),
        }
    }
}

impl From<RunError> for AdminError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Store(e) => Self::Store(e),
            other => Self::Store(StoreError::Permanent(other.to_string())),
        }
    }
}

impl From<ApprovalError> for AdminError {
    fn from(e: ApprovalError) -> Self {
        match e {
            ApprovalError::NotFound(what) => Self::NotFound(what),
            ApprovalError::Conflict(why) => Self::Conflict(why.to_owned()),
            ApprovalError::Store(e) => Self::Store(e),
        }
    }
}

/// What the admin API needs to know of the deployment.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// The public base URL of the HTTP API (the ESP webhooks point at `{base}/hooks/…`); empty: the
    /// admin API uses the host it is called at.
    pub public_base_url: String,
}

/// The admin's use cases over the ports.
#[derive(Clone)]
pub struct Admin {
    store: Arc<dyn StateStore>,
    secrets: Arc<dyn SecretStore>,
    directory: Arc<dyn EspDirectory>,
    publisher: Arc<dyn EventPublisher>,
    reconciler: Reconciler,
    approvals: Approvals,
    clock: Arc<dyn Clock>,
    config: AdminConfig,
    /// The deletion reports' target (R-J2): subscribed when the settings name one.
    subscriptions: Option<Arc<dyn optisync_ports::ReportSubscriptions>>,
}

/// Ids in paths and bodies follow the one id grammar of the domain (R-K2, [`optisync_domain::parse_id`]):
/// 1 to 64 letters, digits, `.`, `_`, `-`, starting with a letter or digit (so never `.` or `..`, L2).
pub fn valid_id(id: &str) -> bool {
    optisync_domain::parse_id("id", id).is_ok()
}

/// What a refused id in a body is told (never the value, R-J5).
pub const ID_GRAMMAR: &str = "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit";

fn check_id(problems: &mut Vec<FieldProblem>, field: &str, value: &str) {
    if !valid_id(value) {
        problems.push(FieldProblem::new(field, ID_GRAMMAR));
    }
}

/// The id a signing secret is shown by: the start of its SHA-256.
pub fn signing_secret_id(secret: &str) -> String {
    hex::encode(&Sha256::digest(secret.as_bytes())[..6])
}

impl Admin {
    /// Over the ports; the reconciler and the approval queue share the store.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn StateStore>,
        secrets: Arc<dyn SecretStore>,
        directory: Arc<dyn EspDirectory>,
        publisher: Arc<dyn EventPublisher>,
        reconciler: Reconciler,
        clock: Arc<dyn Clock>,
        config: AdminConfig,
    ) -> Self {
        let approvals = Approvals::new(store.clone());
        Self { store, secrets, directory, publisher, reconciler, approvals, clock, config, subscriptions: None }
    }

    /// The time now, by the admin's clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// The public base URL the ESP webhooks point at (empty: not configured).
    pub fn public_base_url(&self) -> &str {
        &self.config.public_base_url
    }

    /// With the deletion reports' subscriptions (R-J2): saving settings with a `deletion_report_email`
    /// subscribes it.
    pub fn with_report_subscriptions(mut self, subscriptions: Arc<dyn optisync_ports::ReportSubscriptions>) -> Self {
        self.subscriptions = Some(subscriptions);
        self
    }

    /// The same use cases with another public base URL (the admin API takes the host it is called at
    /// when none is configured).
    pub fn with_public_base_url(mut self, url: impl Into<String>) -> Self {
        self.config.public_base_url = url.into();
        self
    }
}
