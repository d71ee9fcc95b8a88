//! The admin's use cases: tenant settings and connector signing secrets, ESP accounts (R-H1), links per
//! newsletter with their dry run, first sync, status and unlinking (R-F1, R-F7, R-F8, R-G6, R-H2), and the
//! approval queue (R-C2, R-C3). The admin API is a thin HTTP layer over this.
//!
//! Every use case checks everything before it writes, so a refused request changes nothing.

use crate::approvals::{ApprovalError, ApprovalView, Approvals, Choice};
use crate::reconcile::{Preview, Reconciler, RunError, RunState};
use base64::Engine as _;
use chrono::Duration;
use hmac::{Hmac, Mac};
use optisync_domain::rules::{MappingError, validate_mapping};
use optisync_domain::{
    AccountId, AccountRecord, AccountStatus, ApprovalEntry, Email, EspAccount, Link, LinkId, LinkSettings, LinkStatus,
    ListId, NewsletterId, PersonId, Provider, SegmentId, TenantId, TenantSettings,
};
use optisync_ports::names::secret::signing_secrets as signing_secrets_name;
use optisync_ports::{
    BusEvent, Clock, EspCatalog, EspDirectory, EspError, EventPublisher, SecretStore, StateStore, StoreError,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Most connector signing secrets valid at once (a rotation keeps the old ones until retired).
pub const MAX_SIGNING_SECRETS: usize = 3;
/// How long a CleverReach authorisation may take between start and callback.
pub const OAUTH_STATE_MINUTES: i64 = 30;
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
    fn invalid(field: &str, problem: impl Into<String>) -> Self {
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

/// A tenant as the admin sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantView {
    /// The tenant.
    pub tenant: TenantId,
    /// Its settings (R-A6, R-B3).
    pub settings: TenantSettings,
    /// The ids of the connector signing secrets valid now, oldest first (never the secrets).
    pub signing_secrets: Vec<String>,
}

/// A new connector signing secret: shown once, to be configured in the connector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewSigningSecret {
    /// Its id.
    pub id: String,
    /// The secret (`whsec_…`).
    pub secret: String,
    /// The ids valid now, oldest first.
    pub valid: Vec<String>,
}

/// A link as the admin creates or changes it (R-F7, R-H2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// The OPTIGEM newsletter.
    pub newsletter: String,
    /// The ESP.
    pub provider: Provider,
    /// The account there (connected before).
    pub account: String,
    /// The list (Brevo list id, CleverReach group id).
    pub list: String,
    /// A CleverReach segment (filter id) (R-G1).
    #[serde(default)]
    pub segment: Option<String>,
    /// Mapping, relevant privacy categories and delivery blocks (none by default, R-A8), unsubscribe mode.
    #[serde(default)]
    pub settings: LinkSettings,
}

/// A saved link and what the admin should know about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SavedLink {
    /// The link.
    pub link: Link,
    /// Created now (else changed).
    pub created: bool,
    /// Warnings (R-G6).
    pub warnings: Vec<String>,
}

/// A link's status: not linked / linking / linked (R-F1), its runs and their failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkStatusView {
    /// The link.
    pub link: Link,
    /// The scheduled run: the one in progress, the last finished (counts, failures, warnings).
    pub run: RunState,
}

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

#[derive(Serialize, Deserialize)]
struct OAuthState {
    t: String,
    a: String,
    e: i64,
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
}

/// Ids in paths and bodies: letters, digits, `.`, `_`, `-`; 1 to 64 characters.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn check_id(problems: &mut Vec<FieldProblem>, field: &str, value: &str) {
    if !valid_id(value) {
        problems.push(FieldProblem::new(field, "1 to 64 letters, digits, '.', '_' or '-'"));
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
        Self { store, secrets, directory, publisher, reconciler, approvals, clock, config }
    }

    /// The public base URL the ESP webhooks point at (empty: not configured).
    pub fn public_base_url(&self) -> &str {
        &self.config.public_base_url
    }

    /// The same use cases with another public base URL (the admin API takes the host it is called at
    /// when none is configured).
    pub fn with_public_base_url(mut self, url: impl Into<String>) -> Self {
        self.config.public_base_url = url.into();
        self
    }

    // ---- tenants --------------------------------------------------------------------------------

    async fn signing_secrets(&self, tenant: &TenantId) -> Result<Vec<String>, AdminError> {
        match self.secrets.get(&signing_secrets_name(tenant)).await? {
            None => Ok(Vec::new()),
            Some(raw) => serde_json::from_str(&raw)
                .map_err(|_| StoreError::Permanent("signing secrets are not a JSON list".into()).into()),
        }
    }

    /// A tenant's settings and signing-secret ids.
    pub async fn tenant(&self, tenant: &TenantId) -> Result<TenantView, AdminError> {
        let settings = self.store.tenant_settings(tenant).await?;
        let signing_secrets = self.signing_secrets(tenant).await?.iter().map(|s| signing_secret_id(s)).collect();
        Ok(TenantView { tenant: tenant.clone(), settings, signing_secrets })
    }

    /// Saves a tenant's settings (R-A6, R-B3).
    pub async fn put_settings(&self, tenant: &TenantId, settings: &TenantSettings) -> Result<TenantView, AdminError> {
        self.store.put_tenant_settings(tenant, settings).await?;
        self.tenant(tenant).await
    }

    /// Adds a new connector signing secret; the old ones stay valid until retired, so the connector can
    /// switch without a gap.
    pub async fn rotate_signing_secret(&self, tenant: &TenantId) -> Result<NewSigningSecret, AdminError> {
        let mut secrets = self.signing_secrets(tenant).await?;
        if secrets.len() >= MAX_SIGNING_SECRETS {
            return Err(AdminError::Conflict(format!(
                "{MAX_SIGNING_SECRETS} signing secrets are valid already: retire an old one first"
            )));
        }
        let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>()));
        secrets.push(secret.clone());
        self.save_signing_secrets(tenant, &secrets).await?;
        let valid = secrets.iter().map(|s| signing_secret_id(s)).collect();
        Ok(NewSigningSecret { id: signing_secret_id(&secret), secret, valid })
    }

    /// Retires a signing secret; the last one cannot be retired (the connector would be locked out).
    pub async fn retire_signing_secret(&self, tenant: &TenantId, id: &str) -> Result<TenantView, AdminError> {
        let mut secrets = self.signing_secrets(tenant).await?;
        let Some(at) = secrets.iter().position(|s| signing_secret_id(s) == id) else {
            return Err(AdminError::NotFound("signing secret"));
        };
        if secrets.len() == 1 {
            return Err(AdminError::Conflict("the last signing secret cannot be retired: rotate first".into()));
        }
        secrets.remove(at);
        self.save_signing_secrets(tenant, &secrets).await?;
        self.tenant(tenant).await
    }

    async fn save_signing_secrets(&self, tenant: &TenantId, secrets: &[String]) -> Result<(), AdminError> {
        let raw = serde_json::to_string(secrets).map_err(|e| StoreError::Permanent(e.to_string()))?;
        Ok(self.secrets.put(&signing_secrets_name(tenant), &raw).await?)
    }

    // ---- ESP accounts ---------------------------------------------------------------------------

    /// The tenant's ESP accounts.
    pub async fn accounts(&self, tenant: &TenantId) -> Result<Vec<AccountRecord>, AdminError> {
        Ok(self.store.accounts(tenant).await?)
    }

    /// The account if it is the tenant's; [`AdminError::NotFound`] otherwise.
    async fn own_account(&self, tenant: &TenantId, esp: &EspAccount) -> Result<AccountRecord, AdminError> {
        match self.store.account(esp).await? {
            Some(record) if &record.tenant == tenant => Ok(record),
            _ => Err(AdminError::NotFound("account")),
        }
    }

    /// Refuses an account id another tenant holds (its secrets are named by it).
    async fn claimable(&self, tenant: &TenantId, esp: &EspAccount) -> Result<Option<AccountRecord>, AdminError> {
        match self.store.account(esp).await? {
            Some(record) if &record.tenant != tenant => {
                Err(AdminError::Conflict("this account id is taken: choose another".into()))
            }
            found => Ok(found),
        }
    }

    /// Connects a Brevo account by API key, after Brevo accepted the key (R-H1).
    pub async fn connect_brevo(
        &self,
        tenant: &TenantId,
        account: &str,
        api_key: &str,
    ) -> Result<AccountRecord, AdminError> {
        if !valid_id(account) {
            return Err(AdminError::NotFound("account"));
        }
        if api_key.trim().is_empty() || api_key.len() > 512 {
            return Err(AdminError::invalid("api_key", "required: the account's API key"));
        }
        let esp = EspAccount { provider: Provider::Brevo, account: AccountId::new(account) };
        self.claimable(tenant, &esp).await?;
        match self.directory.connect_brevo(&esp.account, api_key.trim()).await {
            Ok(()) => {}
            Err(EspError::Unauthorized) => return Err(AdminError::invalid("api_key", "Brevo refused this key")),
            Err(e) => return Err(AdminError::esp(e)),
        }
        self.save_account(tenant, esp, AccountStatus::Connected).await
    }

    /// Starts a CleverReach authorisation (R-H1): the URL to send the admin to. The account is listed as
    /// awaiting authorisation until the callback comes (a connected one stays connected meanwhile).
    pub async fn start_cleverreach(&self, tenant: &TenantId, account: &str) -> Result<String, AdminError> {
        if !valid_id(account) {
            return Err(AdminError::NotFound("account"));
        }
        let esp = EspAccount { provider: Provider::CleverReach, account: AccountId::new(account) };
        let existing = self.claimable(tenant, &esp).await?;
        let state = self.sign_state(tenant, &esp.account).await?;
        let url = self.directory.cleverreach_authorize_url(&state).map_err(AdminError::esp)?;
        if existing.is_none() {
            self.save_account(tenant, esp, AccountStatus::AwaitingAuthorisation).await?;
        }
        Ok(url)
    }

    /// The OAuth callback: checks the state, exchanges the code, keeps the tokens (R-H1).
    pub async fn finish_cleverreach(&self, code: &str, state: &str) -> Result<AccountRecord, AdminError> {
        let (tenant, account) = self.open_state(state).await?;
        if code.is_empty() {
            return Err(AdminError::invalid("code", "required: the authorisation code"));
        }
        let esp = EspAccount { provider: Provider::CleverReach, account };
        self.claimable(&tenant, &esp).await?;
        match self.directory.connect_cleverreach(&esp.account, code).await {
            Ok(()) => {}
            Err(EspError::Unauthorized | EspError::Rejected(_)) => {
                return Err(AdminError::invalid("code", "CleverReach refused the authorisation code"));
            }
            Err(e) => return Err(AdminError::esp(e)),
        }
        self.save_account(&tenant, esp, AccountStatus::Connected).await
    }

    /// Saves the tenant's account record with this status, changed now.
    async fn save_account(
        &self,
        tenant: &TenantId,
        esp: EspAccount,
        status: AccountStatus,
    ) -> Result<AccountRecord, AdminError> {
        let record = AccountRecord { tenant: tenant.clone(), esp, status, changed_at: self.clock.now() };
        self.store.put_account(&record).await?;
        Ok(record)
    }

    async fn state_key(&self) -> Result<Vec<u8>, AdminError> {
        if let Some(key) = self.secrets.get(OAUTH_STATE_KEY).await? {
            return Ok(key.into_bytes());
        }
        let key = hex::encode(rand::random::<[u8; 32]>());
        self.secrets.put(OAUTH_STATE_KEY, &key).await?;
        Ok(key.into_bytes())
    }

    async fn sign_state(&self, tenant: &TenantId, account: &AccountId) -> Result<String, AdminError> {
        let expires = (self.clock.now() + Duration::minutes(OAUTH_STATE_MINUTES)).timestamp();
        let body = serde_json::to_vec(&OAuthState { t: tenant.to_string(), a: account.to_string(), e: expires })
            .map_err(|e| StoreError::Permanent(e.to_string()))?;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mac = self.keyed_mac(&body).await?.finalize().into_bytes();
        Ok(format!("{}.{}", b64.encode(&body), b64.encode(mac)))
    }

    /// The HMAC of a state body under the state key, to finish or to verify.
    async fn keyed_mac(&self, body: &[u8]) -> Result<Hmac<Sha256>, AdminError> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.state_key().await?).expect("HMAC takes any key length");
        mac.update(body);
        Ok(mac)
    }

    async fn open_state(&self, state: &str) -> Result<(TenantId, AccountId), AdminError> {
        let bad = || AdminError::invalid("state", "not a state this service issued, or expired: start again");
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (body, mac) = state.split_once('.').ok_or_else(bad)?;
        let body = b64.decode(body).map_err(|_| bad())?;
        let mac = b64.decode(mac).map_err(|_| bad())?;
        self.keyed_mac(&body).await?.verify_slice(&mac).map_err(|_| bad())?;
        let state: OAuthState = serde_json::from_slice(&body).map_err(|_| bad())?;
        if state.e < self.clock.now().timestamp() {
            return Err(bad());
        }
        Ok((TenantId::new(state.t), AccountId::new(state.a)))
    }

    /// What an account offers a link: lists (with segments) and attributes (R-D6, R-H2).
    pub async fn catalog(&self, tenant: &TenantId, esp: &EspAccount) -> Result<EspCatalog, AdminError> {
        if !valid_id(esp.account.as_str()) {
            return Err(AdminError::NotFound("account"));
        }
        let record = self.own_account(tenant, esp).await?;
        if record.status != AccountStatus::Connected {
            return Err(AdminError::Conflict("the account's authorisation has not finished".into()));
        }
        self.directory.catalog(esp).await.map_err(AdminError::esp)
    }

    // ---- links ----------------------------------------------------------------------------------

    /// The tenant's links.
    pub async fn links(&self, tenant: &TenantId) -> Result<Vec<Link>, AdminError> {
        let mut links = self.store.links(tenant).await?;
        links.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(links)
    }

    async fn link(&self, tenant: &TenantId, link: &LinkId) -> Result<Link, AdminError> {
        if !valid_id(link.as_str()) {
            return Err(AdminError::NotFound("link"));
        }
        self.store.link(tenant, link).await?.ok_or(AdminError::NotFound("link"))
    }

    /// Creates a link, or changes one. A link that syncs keeps its newsletter, account, list and segment
    /// (unlink first to change them); its settings may change. The list, the segment and the mapping are
    /// checked against the ESP account first (R-D6, R-G1).
    pub async fn put_link(
        &self,
        tenant: &TenantId,
        id: &LinkId,
        request: LinkRequest,
    ) -> Result<SavedLink, AdminError> {
        if !valid_id(id.as_str()) {
            return Err(AdminError::NotFound("link"));
        }
        let mut problems = Vec::new();
        check_id(&mut problems, "newsletter", &request.newsletter);
        check_id(&mut problems, "account", &request.account);
        check_id(&mut problems, "list", &request.list);
        if let Some(segment) = &request.segment {
            check_id(&mut problems, "segment", segment);
            if request.provider != Provider::CleverReach {
                problems.push(FieldProblem::new("segment", "only CleverReach lists have segments (R-G1)"));
            }
        }
        if !problems.is_empty() {
            return Err(AdminError::Invalid(problems));
        }
        let existing = self.store.link(tenant, id).await?;
        let link = Link {
            id: id.clone(),
            tenant: tenant.clone(),
            newsletter: NewsletterId::new(&request.newsletter),
            esp: EspAccount { provider: request.provider, account: AccountId::new(&request.account) },
            list: ListId::new(&request.list),
            segment: request.segment.as_deref().map(SegmentId::new),
            settings: request.settings,
            status: existing.as_ref().map(|l| l.status).unwrap_or_default(),
        };
        if let Some(existing) = &existing
            && existing.status != LinkStatus::NotLinked
            && (existing.newsletter != link.newsletter
                || existing.esp != link.esp
                || existing.list != link.list
                || existing.segment != link.segment)
        {
            return Err(AdminError::Conflict(
                "the link syncs: unlink it before changing its newsletter, account, list or segment".into(),
            ));
        }
        match self.store.account(&link.esp).await? {
            Some(record) if &record.tenant == tenant && record.status == AccountStatus::Connected => {}
            Some(record) if &record.tenant == tenant => {
                return Err(AdminError::invalid("account", "the account's authorisation has not finished"));
            }
            _ => return Err(AdminError::invalid("account", "no such account of this tenant: connect it first")),
        }
        let catalog = self.directory.catalog(&link.esp).await.map_err(AdminError::esp)?;
        check_against(&link, &catalog)?;
        self.store.put_link(&link).await?;
        let warnings = if link.segment.is_some() { vec![SEGMENT_LINK_WARNING.to_owned()] } else { Vec::new() };
        Ok(SavedLink { link, created: existing.is_none(), warnings })
    }

    /// A link's status with its runs (R-F1).
    pub async fn status(&self, tenant: &TenantId, link: &LinkId) -> Result<LinkStatusView, AdminError> {
        let link = self.link(tenant, link).await?;
        let run = self.reconciler.state(&link.id).await?;
        Ok(LinkStatusView { link, run })
    }

    /// Starts the dry run of the link's first sync (R-F8); its report comes with [`Admin::preview`].
    pub async fn start_preview(&self, tenant: &TenantId, link: &LinkId) -> Result<(), AdminError> {
        let link = self.link(tenant, link).await?;
        let (tenant, shadow) = self.reconciler.start_preview(&link).await?;
        self.publisher.publish(&[BusEvent::ReconcileLink { tenant, link: shadow }]).await?;
        Ok(())
    }

    /// The latest dry run: where it stands and what it would do.
    pub async fn preview(&self, tenant: &TenantId, link: &LinkId, limit: usize) -> Result<Preview, AdminError> {
        let link = self.link(tenant, link).await?;
        self.reconciler
            .preview(tenant, &link.id, limit.min(MAX_PREVIEW_LINES))
            .await?
            .ok_or(AdminError::NotFound("preview"))
    }

    /// Saves the link as syncing: registers its webhooks, then starts the first sync (R-F1). A link that
    /// syncs already is left as it is.
    pub async fn start_sync(&self, tenant: &TenantId, link: &LinkId) -> Result<Link, AdminError> {
        let link = self.link(tenant, link).await?;
        if link.status != LinkStatus::NotLinked {
            return Ok(link);
        }
        // Webhooks first: should this fail, nothing is saved and the request can be repeated.
        self.directory.register_hooks(&link, &self.hook_url(&link)).await.map_err(AdminError::esp)?;
        let linking = Link { status: LinkStatus::Linking, ..link };
        self.store.put_link(&linking).await?;
        // Should the announcement fail, the scheduler's next tick starts the first sync.
        let event = BusEvent::ReconcileLink { tenant: tenant.clone(), link: linking.id.clone() };
        if let Err(e) = self.publisher.publish(&[event]).await {
            tracing::warn!(error = %e, "first sync saved; it starts with the scheduler's next tick");
        }
        Ok(linking)
    }

    /// Confirms a run the mass-deactivation guard holds. False when none is held.
    pub async fn confirm(&self, tenant: &TenantId, link: &LinkId) -> Result<bool, AdminError> {
        let link = self.link(tenant, link).await?;
        if !self.reconciler.confirm(&link.id).await? {
            return Ok(false);
        }
        self.publisher.publish(&[BusEvent::ReconcileLink { tenant: tenant.clone(), link: link.id }]).await?;
        Ok(true)
    }

    /// Stops the link's sync and removes its webhooks (unless another syncing link of the account needs
    /// them). Its settings stay, so it can be linked again. Returns the link and whether the webhooks are
    /// gone (false: the ESP could not be reached; unlinking again retries).
    pub async fn unlink(&self, tenant: &TenantId, link: &LinkId) -> Result<(Link, bool), AdminError> {
        let link = self.link(tenant, link).await?;
        let unlinked = Link { status: LinkStatus::NotLinked, ..link };
        self.store.put_link(&unlinked).await?;
        let others: Vec<Link> = self
            .store
            .links(tenant)
            .await?
            .into_iter()
            .filter(|l| l.id != unlinked.id && l.status != LinkStatus::NotLinked)
            .collect();
        let removed = match self.directory.unregister_hooks(&unlinked, &self.hook_url(&unlinked), &others).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "link stopped; its webhooks stay until it is unlinked again");
                false
            }
        };
        Ok((unlinked, removed))
    }

    fn hook_url(&self, link: &Link) -> String {
        format!(
            "{}/hooks/{}/{}/{}",
            self.config.public_base_url.trim_end_matches('/'),
            link.esp.provider,
            link.tenant,
            link.esp.account
        )
    }

    // ---- approval queue -------------------------------------------------------------------------

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
        let entries: Vec<ApprovalEntry> = self.store.pending_approvals(&link.id, after, limit).await?;
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

/// Checks a link against what its account offers: the list, the segment, the mapping (R-D6, R-G1).
fn check_against(link: &Link, catalog: &EspCatalog) -> Result<(), AdminError> {
    let mut problems = Vec::new();
    match catalog.lists.iter().find(|l| l.id == link.list) {
        None => problems.push(FieldProblem::new("list", "no such list in the account")),
        Some(list) => {
            if let Some(segment) = &link.segment
                && !list.segments.iter().any(|s| &s.id == segment)
            {
                problems.push(FieldProblem::new("segment", "no such segment of the list"));
            }
        }
    }
    if let Err(errors) = validate_mapping(&link.settings.mapping, &catalog.attributes) {
        for e in errors {
            let (MappingError::Unknown { field, .. }
            | MappingError::NotGlobal { field, .. }
            | MappingError::Duplicate { field, .. }) = &e;
            problems.push(FieldProblem::new(format!("settings.mapping.{field}"), e.to_string()));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(AdminError::Invalid(problems)) }
}
