//! The dry run an admin looks at before saving a link (R-F8): the first sync runs under the link's
//! preview tenant against an ESP that records instead of applying, and its report is read back here. A
//! settings run (R-A10) reports its own dry run the same way, so the link's preview shows what a settings
//! change would do.

use super::state::{CHUNK_RETENTION, Finished, RunError, RunState, key_hash, read_state, save_state};
use async_trait::async_trait;
use optisync_domain::{
    AssignmentId, Email, EspAction, EspOp, Link, LinkId, LinkStatus, OptigemCommand, PREVIEW_SUFFIX, TenantId,
};
use optisync_ports::{Clock, EspError, EspGateway, StateStore, StoreError};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// The run-state key (under the preview tenant) naming a link's latest dry run.
fn preview_pointer(link: &LinkId) -> LinkId {
    LinkId::new(format!("{link}{PREVIEW_SUFFIX}"))
}

/// What a dry run would do to one recipient or assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreviewAction {
    /// Created in the ESP if missing and put on the list.
    Create,
    /// Fields written.
    Update,
    /// Deactivated or taken off the list.
    Deactivate,
    /// Activated again.
    Reactivate,
    /// Sent to the approval queue.
    Queue,
    /// The assignment ended in OPTIGEM.
    End,
}

impl PreviewAction {
    /// The action's name, as it is serialised: `create`, `update`, `deactivate`, `reactivate`, `queue`,
    /// `end`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Deactivate => "deactivate",
            Self::Reactivate => "reactivate",
            Self::Queue => "queue",
            Self::End => "end",
        }
    }
}

impl fmt::Display for PreviewAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a dry run would do to one recipient or assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewLine {
    /// What would be done.
    pub action: PreviewAction,
    /// The recipient (for admins; never logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
    /// The assignment, for `end`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment: Option<AssignmentId>,
}

/// A dry run: where it stands and what it would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    /// The dry run's own link id.
    pub shadow: LinkId,
    /// Its run state (counts; `last` once finished).
    pub state: RunState,
    /// What it would do, one line per recipient and action.
    pub lines: Vec<PreviewLine>,
}

/// The dry run's ESP: records what would be applied, applies nothing.
pub(super) struct RecordingEsp {
    store: Arc<dyn StateStore>,
    clock: Arc<dyn Clock>,
    /// The dry run's tenant, whose link records what the run would do.
    tenant: TenantId,
}

impl RecordingEsp {
    /// Records into the dry run's own run chunks.
    pub(super) fn new(store: Arc<dyn StateStore>, clock: Arc<dyn Clock>, tenant: TenantId) -> Self {
        Self { store, clock, tenant }
    }
}

#[async_trait]
impl EspGateway for RecordingEsp {
    /// A dry run is a first sync, where the ESP's state wins and nothing is read ahead (R-F3, R-F5).
    async fn observe(
        &self,
        _link: &optisync_domain::Link,
        _email: &optisync_domain::Email,
    ) -> Result<Option<optisync_domain::Observed>, EspError> {
        Ok(None)
    }

    async fn apply(&self, actions: &[EspAction]) -> Result<(), EspError> {
        let unavailable = |e: StoreError| {
            tracing::warn!(error = %e, "could not record a dry run's operation");
            EspError::Transient { retry_after_secs: Some(1) }
        };
        for action in actions {
            let what = match &action.op {
                EspOp::Upsert { .. } => continue, // followed by add_to_list, or an update of a listed one
                EspOp::AddToList => PreviewAction::Create,
                EspOp::UpdateFields { .. } => PreviewAction::Update,
                EspOp::Activate => PreviewAction::Reactivate,
                EspOp::RemoveFromList | EspOp::Deactivate | EspOp::Delete => PreviewAction::Deactivate,
            };
            let line = PreviewLine { action: what, email: Some(action.email.clone()), assignment: None };
            let value = serde_json::to_string(&line).map_err(|e| EspError::Rejected(e.to_string()))?;
            let index = line_index(&line);
            let expires = self.clock.now() + CHUNK_RETENTION;
            self.store
                .put_run_chunk(&self.tenant, &action.link, "ops", index, &value, expires)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }
}

/// One line per recipient (or assignment) and action, whatever the retries: the chunk index is their hash.
fn line_index(line: &PreviewLine) -> u64 {
    let who = match (&line.email, &line.assignment) {
        (Some(email), _) => email.key().to_owned(),
        (None, Some(assignment)) => format!("assignment:{assignment}"),
        (None, None) => String::new(),
    };
    key_hash(&format!("{who}#{}", line.action)) % 1_000_000_000_000
}

/// R-A10: the id under the preview tenant that a settings run's dry run reports under.
pub(super) fn settings_shadow(link: &LinkId, run: &str) -> LinkId {
    LinkId::new(format!("{link}{PREVIEW_SUFFIX}~settings-{run}"))
}

/// Names `shadow` the link's latest dry run (what [`preview`] reads).
pub(super) async fn name_latest(
    store: &dyn StateStore,
    tenant: &TenantId,
    link: &LinkId,
    shadow: &LinkId,
) -> Result<(), RunError> {
    let tenant = tenant.preview();
    let pointer = preview_pointer(link);
    let version = store.run_state(&tenant, &pointer).await?.map(|(_, v)| v);
    match store.save_run_state(&tenant, &pointer, shadow.as_str(), version).await {
        Ok(()) | Err(StoreError::Conflict) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// R-A10: records a settings run's dry-run lines under its shadow id in the preview tenant.
pub(super) async fn record(
    store: &dyn StateStore,
    clock: &dyn Clock,
    tenant: &TenantId,
    shadow: &LinkId,
    lines: &[PreviewLine],
) -> Result<(), RunError> {
    let expires = clock.now() + CHUNK_RETENTION;
    for line in lines {
        let value = serde_json::to_string(line).map_err(|e| RunError::State(e.to_string()))?;
        store.put_run_chunk(tenant, shadow, "ops", line_index(line), &value, expires).await?;
    }
    Ok(())
}

/// R-A10: a settings run's dry run is complete: its report (the counts) is the shadow's finished run.
pub(super) async fn finish_settings_preview(
    store: &dyn StateStore,
    clock: &dyn Clock,
    tenant: &TenantId,
    shadow: &LinkId,
    report: Finished,
) -> Result<(), RunError> {
    let (mut state, version) = read_state(store, tenant, shadow).await?;
    state.last = Some(report);
    save_state(store, clock, tenant, shadow, &state, None, version).await?;
    Ok(())
}

/// Puts the dry run's own link under the preview tenant and names it the link's latest dry run.
pub(super) async fn start_preview(
    store: &dyn StateStore,
    clock: &dyn Clock,
    link: &Link,
) -> Result<(TenantId, LinkId), RunError> {
    let now = clock.now();
    let tenant = link.tenant.preview();
    let shadow = Link {
        id: LinkId::new(format!("{}{PREVIEW_SUFFIX}~{}", link.id, now.timestamp_millis())),
        tenant: tenant.clone(),
        status: LinkStatus::Linking,
        ..link.clone()
    };
    store.put_link(&shadow).await?;
    let pointer = preview_pointer(&link.id);
    let version = store.run_state(&tenant, &pointer).await?.map(|(_, v)| v);
    match store.save_run_state(&tenant, &pointer, shadow.id.as_str(), version).await {
        Ok(()) | Err(StoreError::Conflict) => {}
        Err(e) => return Err(e.into()),
    }
    Ok((tenant, shadow.id))
}

/// The latest dry run of a link: its run state, the recorded ESP operations, then the ends and the
/// approval requests in the preview tenant's feed (up to `limit` lines).
pub(super) async fn preview(
    store: &dyn StateStore,
    tenant: &TenantId,
    link: &LinkId,
    limit: usize,
) -> Result<Option<Preview>, RunError> {
    let shadow_tenant = tenant.preview();
    let Some((shadow, _)) = store.run_state(&shadow_tenant, &preview_pointer(link)).await? else { return Ok(None) };
    let shadow = LinkId::new(shadow);
    let (state, _) = read_state(store, &shadow_tenant, &shadow).await?;
    let mut lines = Vec::new();
    let mut after = None;
    while lines.len() < limit {
        let chunks = store.run_chunks(&shadow_tenant, &shadow, "ops", after, 500).await?;
        let Some((last, _)) = chunks.last() else { break };
        after = Some(*last);
        for (_, raw) in chunks {
            lines.push(serde_json::from_str(&raw).map_err(|e| RunError::State(e.to_string()))?);
        }
    }
    let mut seq = 0;
    while lines.len() < limit {
        let page = store.commands(&shadow_tenant, seq, 500).await?;
        let Some((last, _)) = page.last() else { break };
        seq = *last;
        for (_, command) in page {
            match command {
                OptigemCommand::EndAssignment { assignment, .. } => {
                    lines.push(PreviewLine { action: PreviewAction::End, email: None, assignment: Some(assignment) })
                }
                OptigemCommand::MatchPersons { link: l, email, .. } if l == shadow => {
                    lines.push(PreviewLine { action: PreviewAction::Queue, email: Some(email), assignment: None })
                }
                _ => {}
            }
        }
    }
    lines.truncate(limit);
    Ok(Some(Preview { shadow, state, lines }))
}
