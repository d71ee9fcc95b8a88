//! Links per newsletter (R-F7, R-H2): saving one, its status and dry run, the first sync, confirming a
//! held run, and unlinking (R-F1, R-F8, R-G6).

use super::{Admin, AdminError, FieldProblem, MAX_PREVIEW_LINES, SEGMENT_LINK_WARNING, check_id, valid_id};
use crate::reconcile::{Phase, Preview, RunState};
use optisync_domain::rules::{MappingError, validate_mapping};
use optisync_domain::{
    AccountId, AccountStatus, EspAccount, Link, LinkId, LinkSettings, LinkStatus, ListId, NewsletterId, Provider,
    SegmentId, TenantId, UnsubscribeMode,
};
use optisync_ports::{BusEvent, EspCatalog};
use serde::{Deserialize, Serialize};

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
    /// R-A10: the re-plan of the link's assignments the save started (`None`: the link does not sync, or
    /// nothing that decides an assignment's verdict or fields changed).
    pub replan: Option<Replan>,
}

/// R-A10: a re-plan of a syncing link's assignments with changed settings, as saving them started it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replan {
    /// The link.
    pub link: LinkId,
    /// `started` (the settings run was announced), or `queued` (it follows the run in progress).
    pub state: ReplanState,
    /// The phase of the run in progress it follows (`held`: once an admin has confirmed that run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Phase>,
}

/// Where a re-plan stands when the settings are saved (R-A10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplanState {
    /// The settings run was announced: it plans every assignment again as a dry run (the preview), then
    /// applies it, or waits for a confirmation when it would deactivate more than the guard allows (R-F8).
    Started,
    /// The link's run in progress finishes first; the settings run follows it.
    Queued,
}

/// A link's status: not linked / linking / linked (R-F1), its runs and their failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkStatusView {
    /// The link.
    pub link: Link,
    /// The scheduled run: the one in progress, the last finished (counts, failures, warnings).
    pub run: RunState,
}

impl Admin {
    /// The tenant's links.
    pub async fn links(&self, tenant: &TenantId) -> Result<Vec<Link>, AdminError> {
        let mut links = self.store.links(tenant).await?;
        links.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(links)
    }

    pub(super) async fn link(&self, tenant: &TenantId, link: &LinkId) -> Result<Link, AdminError> {
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
        self.check_erasure_target(tenant, &request.settings).await?;
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
        // R-A10: the verdicts and fields of what the link holds depend on these; a link not syncing yet
        // plans everything at its first sync.
        let replan = match &existing {
            Some(before)
                if link.status != LinkStatus::NotLinked
                    && (before.settings.relevant_privacy != link.settings.relevant_privacy
                        || before.settings.relevant_blocks != link.settings.relevant_blocks
                        || before.settings.mapping != link.settings.mapping) =>
            {
                Some(self.replan(&link, "link settings").await?)
            }
            _ => None,
        };
        Ok(SavedLink { link, created: existing.is_none(), warnings, replan })
    }

    /// R-A10: asks for the link's settings run and announces it; the run in progress, if any, finishes
    /// first.
    pub(super) async fn replan(&self, link: &Link, reason: &str) -> Result<Replan, AdminError> {
        self.reconciler.request_replan(&link.tenant, &link.id, reason).await?;
        let after = self.reconciler.state(&link.tenant, &link.id).await?.current.map(|p| p.phase);
        let event = BusEvent::ReconcileLink { tenant: link.tenant.clone(), link: link.id.clone() };
        if let Err(e) = self.publisher.publish(&[event]).await {
            tracing::warn!(error = %e, "re-plan requested; it starts with the scheduler's next tick");
        }
        let state = if after.is_some() { ReplanState::Queued } else { ReplanState::Started };
        Ok(Replan { link: link.id.clone(), state, after })
    }

    /// R-J2 (004): erasure mode needs the tenant's notification target for the deletion reports; a link
    /// in erasure mode without one is refused (422 naming the tenant setting).
    async fn check_erasure_target(&self, tenant: &TenantId, settings: &LinkSettings) -> Result<(), AdminError> {
        if settings.unsubscribe_mode != UnsubscribeMode::Erasure {
            return Ok(());
        }
        if self.store.tenant_settings(tenant).await?.deletion_report_email.is_none() {
            return Err(AdminError::invalid(
                "deletion_report_email",
                "erasure mode needs the tenant's deletion_report_email for the deletion reports (R-J2): \
                 save it in the tenant settings first",
            ));
        }
        Ok(())
    }

    /// A link's status with its runs (R-F1).
    pub async fn status(&self, tenant: &TenantId, link: &LinkId) -> Result<LinkStatusView, AdminError> {
        let link = self.link(tenant, link).await?;
        let run = self.reconciler.state(&link.tenant, &link.id).await?;
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
        if !self.reconciler.confirm(&link.tenant, &link.id).await? {
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
        self.hook_url_of(&link.tenant, &link.esp)
    }

    /// Where the account's webhooks point: `{base}/hooks/{provider}/{tenant}/{account}`.
    pub(super) fn hook_url_of(&self, tenant: &optisync_domain::TenantId, esp: &optisync_domain::EspAccount) -> String {
        format!(
            "{}/hooks/{}/{}/{}",
            self.config.public_base_url.trim_end_matches('/'),
            esp.provider,
            tenant,
            esp.account
        )
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
