//! A run's checkpoint as stored (counts, phase, progress, the last finished run), its limits, how an
//! invocation ends, and the reads and writes of the run state.

use crate::engine::{Outcome, ProcessError};
use chrono::{DateTime, Duration, Utc};
use optisync_domain::{CommandId, LinkId, LinkStatus, OptigemCommand, TenantId};
use optisync_ports::{Clock, EspError, StateStore, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Instant;

/// How long a run's lease holds after it was taken or last renewed (M9). A run renews it at every checkpoint
/// it saves, so it must be longer than the longest step between two checkpoints (the reconciler stops
/// starting steps a minute before the Lambda's deadline, so a step takes less than that); a run whose
/// invocation died is taken over by the first delivery after it ran out (Lambda retries after about 1 and
/// 3 minutes), not by the next six-hourly tick.
pub const RUN_LEASE: Duration = Duration::minutes(2);
/// How long a run's working data (seen e-mails, deferred ends, a dry run's report) is kept.
pub const CHUNK_RETENTION: Duration = Duration::days(7);
/// Recipient states read per sweep page.
pub const SWEEP_PAGE: usize = 500;
/// How long a reconciliation waits for the connector's export before it goes on without it.
pub const EXPORT_WAIT: Duration = Duration::hours(5);
/// Failures kept per run for the link's status.
pub const MAX_FAILURES: usize = 100;
/// Assignments read per page of a settings run (R-A10).
pub const REPLAN_PAGE: usize = 200;

/// What a run has done so far (per run, saved with the checkpoint).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    /// Pages read (snapshot pages and list pages).
    pub pages: u64,
    /// List members seen; in a settings run (R-A10), the assignments re-planned.
    pub members: u64,
    /// Assignments imported from the snapshot.
    pub imported: u64,
    /// Differences fed to the engine.
    pub inputs: u64,
    /// ESP operations applied.
    pub esp_operations: u64,
    /// OPTIGEM commands issued.
    pub commands: u64,
    /// Recipients created in the ESP or put on the list.
    pub created: u64,
    /// Recipients whose fields were written.
    pub updated: u64,
    /// Recipients deactivated or taken off the list.
    pub deactivated: u64,
    /// Signups sent to the approval queue.
    pub queued: u64,
    /// Assignments OPTIGEM is asked to end.
    pub ended: u64,
    /// Ends found by the listing and the sweep, applied after the guard; in a settings run (R-A10), the
    /// deactivations its dry run found.
    pub deferred: u64,
    /// Inputs that failed for good (see the run's failures).
    pub failed: u64,
    /// Recipients of the link that a hard bounce blocks without a deactivation: reported here, never
    /// written to OPTIGEM (R-E9, R-E6).
    #[serde(default)]
    pub bounced: u64,
}

impl RunCounts {
    /// One input fed to the engine, and what it did.
    pub(super) fn add(&mut self, outcome: &Outcome) {
        self.inputs += 1;
        self.absorb(outcome);
    }

    /// What the engine did (for the due phase's "today", which is no difference the run found).
    pub(super) fn absorb(&mut self, outcome: &Outcome) {
        self.esp_operations += outcome.esp_operations as u64;
        self.commands += outcome.commands as u64;
        self.created += outcome.created as u64;
        self.updated += outcome.updated as u64;
        self.deactivated += outcome.deactivated as u64;
        self.queued += outcome.queued as u64;
        self.ended += outcome.ended as u64;
    }
}

/// What a run is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// The first sync or a reconciliation: export, import, due, list, sweep, guard, apply.
    #[default]
    Sync,
    /// R-A10: the link's settings (or the tenant's R-A6 setting) changed: every assignment the link holds
    /// is re-planned with them, first as a dry run (replan), then through the guard and applied.
    Settings,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The snapshot is to be asked for.
    Export,
    /// Waiting for the connector to report the export done.
    AwaitExport,
    /// Applying the snapshot pages.
    Import,
    /// Time-driven transitions not applied yet.
    Due,
    /// Reading what the ESP account blocks for every list (CleverReach's blacklist and bounces, R-E9).
    Blocked,
    /// Reading the list.
    List,
    /// Looking for recipients gone from the list.
    Sweep,
    /// A settings run (R-A10): the link's assignments re-planned as a dry run, page by page; what would
    /// change is kept for the apply phase and shown as the link's preview.
    Replan,
    /// Held by the guard until an admin confirms.
    Held,
    /// Applying the deferred ends.
    Apply,
}

/// One input that failed for good, for the link's status (the recipient masked, R-J5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The recipient, masked.
    pub recipient: String,
    /// What was applied (the input's kind).
    pub input: String,
    /// Why it failed.
    pub reason: String,
}

/// The checkpoint of a run in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The run's id (names its working data).
    pub id: String,
    /// What the run is for.
    #[serde(default)]
    pub kind: RunKind,
    /// The settings changes (R-A10) the run covers: the count of re-plan requests when it started. A first
    /// sync covers them as a settings run does: it plans every assignment with the settings of then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replan: Option<u64>,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// The phase.
    pub phase: Phase,
    /// The export asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<CommandId>,
    /// When it was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_at: Option<DateTime<Utc>>,
    /// A reconciliation went on without OPTIGEM's side: why (the run reports it as its error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_problem: Option<String>,
    /// Brevo delta listing: members changed since then (`None`: the complete list, then the sweep). Runs
    /// start with `None` (R-E7: every run lists the whole list); a checkpoint saved by an earlier version
    /// with a delta listing finishes as it began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// The cursor within the phase: the next snapshot page, list cursor, sweep key or chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Chunks of seen e-mails written.
    #[serde(default)]
    pub seen_chunks: u64,
    /// Chunks of deferred ends written.
    #[serde(default)]
    pub end_chunks: u64,
    /// An admin confirmed the ends the guard held back.
    #[serde(default)]
    pub confirmed: bool,
    /// Invocations so far.
    pub invocations: u64,
    /// When the checkpoint was last saved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_at: Option<DateTime<Utc>>,
    /// Times an invocation found the run abandoned: its checkpoint older than the lease, so the
    /// invocation that saved it died (or failed) and no continuation came within the lease (the `StaleRun`
    /// metric counts them).
    #[serde(default)]
    pub stale_takeovers: u64,
    /// Counts so far.
    pub counts: RunCounts,
    /// Inputs that failed for good.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Failure>,
    /// What an admin should know about the link (e.g. R-G6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// R-G6: the warning for a segment linked to a newsletter that already has assignments.
pub const SEGMENT_OVER_ASSIGNMENTS: &str = "the newsletter already has active assignments: a segment link takes \
     membership from CleverReach only, so those outside the segment will be ended (R-G4); link the segment to a \
     newsletter of its own";

/// A finished run, for the link's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    /// What the run was for.
    #[serde(default)]
    pub kind: RunKind,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Finished.
    pub finished_at: DateTime<Utc>,
    /// Invocations it took.
    pub invocations: u64,
    /// What it did.
    pub counts: RunCounts,
    /// The list was read completely (and swept).
    #[serde(default)]
    pub complete: bool,
    /// Inputs that failed for good.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Failure>,
    /// Why the run as a whole failed (e.g. the connector could not export), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What an admin should know about the link (e.g. R-G6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Finished runs a link's history keeps, newest first.
pub const RUN_HISTORY: usize = 10;

/// A finished run as the history keeps it: what it did, and how many inputs failed (the failures
/// themselves, masked, stay with the last run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    /// What the run was for.
    pub kind: RunKind,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Finished.
    pub finished_at: DateTime<Utc>,
    /// What it did.
    pub counts: RunCounts,
    /// The list was read completely (and swept).
    pub complete: bool,
    /// Inputs that failed for good.
    pub failed: u64,
    /// Why the run as a whole failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RunSummary {
    /// The summary of a finished run.
    pub fn of(run: &Finished) -> Self {
        Self {
            kind: run.kind,
            started_at: run.started_at,
            finished_at: run.finished_at,
            counts: run.counts,
            complete: run.complete,
            failed: run.failures.len() as u64,
            error: run.error.clone(),
        }
    }
}

/// A link's run state as stored: the run in progress, the last one that finished, and the recent ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    /// The run in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<Progress>,
    /// The last finished run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Finished>,
    /// The last run that finished without error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<DateTime<Utc>>,
    /// When the last complete listing started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_complete: Option<DateTime<Utc>>,
    /// R-A10: the re-plan requests covered so far (by a settings run or a first sync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replanned: Option<u64>,
    /// The recent finished runs, newest first, at most [`RUN_HISTORY`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<RunSummary>,
}

/// When an invocation must stop: before a wall-clock deadline (the Lambda's, minus a margin), and/or
/// after a number of pages (a simulated deadline in tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct Budget {
    /// Stop before starting a page after this instant.
    pub deadline: Option<Instant>,
    /// Stop after this many pages in this invocation.
    pub max_pages: Option<u64>,
}

/// The mass-deactivation guard (R-F8); its threshold is a domain rule.
pub use optisync_domain::drift::Guard;

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// The run finished.
    Finished(Finished),
    /// The budget was spent; the checkpoint holds the rest (publish `link.reconcile` again).
    Continue(Progress),
    /// Waiting for the connector's export; its result wakes the run.
    Waiting(Progress),
    /// The guard holds the run until an admin confirms (nothing ended yet).
    Held(Progress),
    /// Another run holds the lease (or took it over, or saved a newer checkpoint): nothing done, or this
    /// invocation's last step is left to the run that took over (M9).
    Busy,
    /// The link is unknown or not linked: nothing to do.
    Skipped,
}

/// Why a run stopped with an error; the checkpoint keeps what was done, the next invocation goes on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Applying an input failed and may succeed later.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The store failed.
    #[error("state store: {0}")]
    Store(#[from] StoreError),
    /// The ESP's list could not be read.
    #[error("ESP: {0}")]
    Esp(#[from] EspError),
    /// The stored run state does not decode.
    #[error("run state: {0}")]
    State(String),
}

/// A link's run state as stored, with its version (`None`: never saved).
pub(super) async fn read_state(
    store: &dyn StateStore,
    tenant: &TenantId,
    link: &LinkId,
) -> Result<(RunState, Option<u64>), RunError> {
    match store.run_state(tenant, link).await? {
        Some((raw, version)) => {
            let state = serde_json::from_str(&raw).map_err(|e| RunError::State(e.to_string()))?;
            Ok((state, Some(version)))
        }
        None => Ok((RunState::default(), None)),
    }
}

/// Whether the link's run in progress waits for this export.
pub async fn waits_for(
    store: &dyn StateStore,
    tenant: &TenantId,
    link: &LinkId,
    export: &CommandId,
) -> Result<bool, StoreError> {
    let (state, _) = read_state(store, tenant, link).await.map_err(|e| match e {
        RunError::Store(e) => e,
        other => StoreError::Permanent(other.to_string()),
    })?;
    Ok(state.current.is_some_and(|p| p.phase == Phase::AwaitExport && p.export.as_ref() == Some(export)))
}

/// Saves `state` with `current` as the run in progress (`None`: no run in progress) over the version
/// read, and returns the new version; `None` when another run saved first (it took over).
pub(super) async fn save_state(
    store: &dyn StateStore,
    clock: &dyn Clock,
    tenant: &TenantId,
    link: &LinkId,
    state: &RunState,
    current: Option<&Progress>,
    version: Option<u64>,
) -> Result<Option<u64>, RunError> {
    let mut current = current.cloned();
    if let Some(p) = current.as_mut() {
        p.saved_at = Some(clock.now());
    }
    let stored = RunState { current, ..state.clone() };
    let raw = serde_json::to_string(&stored).map_err(|e| RunError::State(e.to_string()))?;
    match store.save_run_state(tenant, link, &raw, version).await {
        Ok(()) => Ok(Some(version.unwrap_or(0) + 1)),
        Err(StoreError::Conflict) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The scheduled runs waiting for an export, to wake when the connector reports the export's result:
/// the first syncs (and dry runs) of the newsletter's links and the reconciliations whose checkpoint
/// names the export.
pub async fn runs_waiting_for(
    store: &dyn StateStore,
    tenant: &TenantId,
    command: &CommandId,
) -> Result<Vec<(TenantId, LinkId)>, StoreError> {
    let Some((_, OptigemCommand::ExportNewsletter { newsletter, .. })) = store.command(tenant, command).await? else {
        return Ok(Vec::new());
    };
    let mut waiting = Vec::new();
    for t in [tenant.clone(), tenant.preview()] {
        for link in store.links_for_newsletter(&t, &newsletter).await? {
            if link.status == LinkStatus::Linking || waits_for(store, &link.tenant, &link.id, command).await? {
                waiting.push((t.clone(), link.id));
            }
        }
    }
    Ok(waiting)
}

/// R-A10: the run-state key under which a link's re-plan requests are counted (its version is the count;
/// `~` is outside the id grammar, so no link has that id).
fn replan_key(link: &LinkId) -> LinkId {
    LinkId::new(format!("{link}~settings"))
}

/// A re-plan request as stored: when the last one came and why (for support; the version counts them).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ReplanRequest {
    requested_at: DateTime<Utc>,
    reason: String,
}

/// R-A10: asks for a re-plan of the link's assignments with its settings as saved now; the link's next run
/// (or the one after the run in progress) is a settings run. Returns the count of requests.
pub(super) async fn request_replan(
    store: &dyn StateStore,
    clock: &dyn Clock,
    tenant: &TenantId,
    link: &LinkId,
    reason: &str,
) -> Result<u64, RunError> {
    let key = replan_key(link);
    let request = ReplanRequest { requested_at: clock.now(), reason: reason.to_owned() };
    let raw = serde_json::to_string(&request).map_err(|e| RunError::State(e.to_string()))?;
    for _ in 0..8 {
        let version = store.run_state(tenant, &key).await?.map(|(_, v)| v);
        match store.save_run_state(tenant, &key, &raw, version).await {
            Ok(()) => return Ok(version.unwrap_or(0) + 1),
            Err(StoreError::Conflict) => continue, // another save at the same time: count this one too
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// R-A10: the count of re-plan requests of a link (0: none ever).
pub(super) async fn replan_requests(store: &dyn StateStore, tenant: &TenantId, link: &LinkId) -> Result<u64, RunError> {
    Ok(store.run_state(tenant, &replan_key(link)).await?.map_or(0, |(_, v)| v))
}

/// Eight bytes of the SHA-256 of an e-mail key: the seen-set of a listing.
pub(super) fn key_hash(key: &str) -> u64 {
    let digest = Sha256::digest(key.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("eight bytes"))
}
