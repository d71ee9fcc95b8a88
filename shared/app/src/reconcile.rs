//! The scheduled run of one link: the first sync of a new link (R-F1…F6), the reconciliation every six
//! hours (R-E7, R-A9), and the dry run an admin looks at before saving a link (R-F8).
//!
//! A run holds the link's run lease, so two runs never overlap; it saves a checkpoint after every page,
//! stops between pages when its budget is spent and continues from the checkpoint in the next
//! invocation. Memory stays bounded by one page (and eight bytes per list member for the sweep) whatever
//! the list size. Every input goes through the same engine as the webhooks and is exactly-once by
//! itself, so a run killed in the middle of a page repeats that page without a duplicate effect.
//!
//! Phases, in order:
//! 1. *Export* and *Await export*: `export_newsletter` asks the connector for the newsletter's
//!    snapshot; the run waits (no invocation is held) until the connector reports the export done,
//!    which wakes it again. A first sync fails when the export fails; a reconciliation whose export
//!    fails, or stays unanswered for [`EXPORT_WAIT`], goes on with the ESP side and reports the problem.
//! 2. *Import*: the snapshot pages, page by page: every active assignment is imported (R-F2: created in
//!    the ESP if unknown there, OPTIGEM's field values written; R-F3: on the list; the ESP gateways never
//!    re-activate on an upsert, so deactivated and blacklisted recipients stay so). At a reconciliation
//!    this is the OPTIGEM side of the drift: an assignment whose change event never arrived reaches the
//!    list (R-D1). One the link holds at that version changes nothing and costs no write. The listing
//!    that follows sees what the ESP holds against the imported recipients (R-F5).
//! 3. *Due*: what time alone changed (R-A9), from the index of next transition dates.
//! 4. *List*: the ESP's list page by page, each difference to the known state fed through the engine.
//!    A receiving member the link does not know → a signup for the approval queue (R-E3, R-F4); on a
//!    segment link, a segment member without an active assignment → segment membership (R-G3, R-G4).
//!    A member known as receiving that the ESP no longer lets receive → its assignments are to be ended
//!    (R-E1, R-E2, R-F5): deferred, see 6. Brevo is listed with `modifiedSince` (since the last run,
//!    minus an overlap) except once a day and on a first sync; CleverReach has no delta.
//! 5. *Sweep* (after a complete listing): recipients the link knows on the list that the listing did
//!    not show were deleted in the ESP (R-E1; an e-mail changed inside the ESP shows as this deletion
//!    plus a signup of the new address, R-E4); on a segment link they left the segment (R-G4).
//! 6. *Guard* and *Apply*: the ends found in 4 and 5 are applied last, unless they would end more than
//!    the guard's share of the list: then the run is held until an admin confirms it (R-F8).

use crate::engine::{Engine, ProcessError};
use crate::inbox::snapshot_page_key;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use optisync_domain::{
    CommandId, CommandResult, Email, EspAction, EspEvent, EspEventKind, Input, Link, LinkId, LinkStatus,
    OptigemCommand, PREVIEW_SUFFIX, Provider, TenantId, berlin_date, command_id, rules,
};
use optisync_ports::{EspError, EspGateway, EspLister, Inbox, InboxItem, ListedMember, Slice, StateStore, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

/// How long a run's lease holds if its holder dies (longer than one invocation).
pub const RUN_LEASE: Duration = Duration::minutes(16);
/// How far a Brevo delta listing reaches back before the last run started.
pub const DELTA_OVERLAP: Duration = Duration::hours(1);
/// How often a complete listing (and with it the sweep) is due at the latest.
pub const FULL_LISTING_EVERY: Duration = Duration::hours(24);
/// How long a run's working data (seen e-mails, deferred ends, a dry run's report) is kept.
pub const CHUNK_RETENTION: Duration = Duration::days(7);
/// Recipient states read per sweep page.
pub const SWEEP_PAGE: usize = 500;
/// How long a reconciliation waits for the connector's export before it goes on without it.
pub const EXPORT_WAIT: Duration = Duration::hours(5);
/// Failures kept per run for the link's status.
pub const MAX_FAILURES: usize = 100;

/// What a run has done so far (per run, saved with the checkpoint).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    /// Pages read (snapshot pages and list pages).
    pub pages: u64,
    /// List members seen.
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
    /// Ends found by the listing and the sweep, applied after the guard.
    pub deferred: u64,
    /// Inputs that failed for good (see the run's failures).
    pub failed: u64,
}

impl RunCounts {
    /// One input fed to the engine, and what it did.
    fn add(&mut self, outcome: &crate::engine::Outcome) {
        self.inputs += 1;
        self.absorb(outcome);
    }

    /// What the engine did (for the due phase's "today", which is no difference the run found).
    fn absorb(&mut self, outcome: &crate::engine::Outcome) {
        self.esp_operations += outcome.esp_operations as u64;
        self.commands += outcome.commands as u64;
        self.created += outcome.created as u64;
        self.updated += outcome.updated as u64;
        self.deactivated += outcome.deactivated as u64;
        self.queued += outcome.queued as u64;
        self.ended += outcome.ended as u64;
    }
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
    /// Reading the list.
    List,
    /// Looking for recipients gone from the list.
    Sweep,
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
    /// Brevo delta listing: members changed since then (`None`: the complete list, then the sweep).
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
    /// invocation holding it died and no continuation came (the `StaleRun` metric counts them).
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

/// A link's run state as stored: the run in progress, and the last one that finished.
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

/// The mass-deactivation guard (R-F8): a run that would end more than `share` of the list's members, and
/// at least `min` of them, waits for an admin's confirmation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Guard {
    /// The share of the list (0.0–1.0).
    pub share: f64,
    /// Fewer ends than this never hold a run.
    pub min: u64,
}

impl Default for Guard {
    fn default() -> Self {
        Self { share: 0.1, min: 10 }
    }
}

impl Guard {
    /// Whether `ends` ends among `members` list members hold a run.
    pub fn holds(&self, ends: u64, members: u64) -> bool {
        ends >= self.min && ends as f64 > self.share * members.max(1) as f64
    }
}

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
    /// Another run holds the lease (or saved a newer checkpoint): nothing done.
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

/// The run-state key under which a link's latest dry run is named.
fn preview_pointer(link: &LinkId) -> LinkId {
    LinkId::new(format!("{link}{PREVIEW_SUFFIX}"))
}

/// What a dry run would do to one recipient or assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewLine {
    /// `create` (created in the ESP if missing and put on the list), `update` (fields written),
    /// `deactivate` (deactivated or taken off the list), `reactivate`, `queue` (approval queue),
    /// `end` (assignment ended in OPTIGEM).
    pub action: String,
    /// The recipient (for admins; never logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
    /// The assignment, for `end`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment: Option<optisync_domain::AssignmentId>,
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
struct RecordingEsp {
    store: Arc<dyn StateStore>,
    clock: Arc<dyn optisync_ports::Clock>,
}

#[async_trait]
impl EspGateway for RecordingEsp {
    async fn apply(&self, actions: &[EspAction]) -> Result<(), EspError> {
        let unavailable = |e: StoreError| {
            tracing::warn!(error = %e, "could not record a dry run's operation");
            EspError::Transient { retry_after_secs: Some(1) }
        };
        for action in actions {
            let op = action.op.name();
            let action_name = match op {
                "upsert" => continue, // followed by add_to_list, or an update of a listed one
                "add_to_list" => "create",
                "update_fields" => "update",
                "activate" => "reactivate",
                _ => "deactivate",
            };
            let line = PreviewLine { action: action_name.into(), email: Some(action.email.clone()), assignment: None };
            let value = serde_json::to_string(&line).map_err(|e| EspError::Rejected(e.to_string()))?;
            // One line per recipient and action, whatever the retries: the index is their hash.
            let index = key_hash(&format!("{}#{action_name}", action.email.key())) % 1_000_000_000_000;
            let expires = self.clock.now() + CHUNK_RETENTION;
            self.store.put_run_chunk(&action.link, "ops", index, &value, expires).await.map_err(unavailable)?;
        }
        Ok(())
    }
}

/// Eight bytes of the SHA-256 of an e-mail key: the seen-set of a listing.
fn key_hash(key: &str) -> u64 {
    let digest = Sha256::digest(key.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("eight bytes"))
}

/// Runs reconciliations.
#[derive(Clone)]
pub struct Reconciler {
    store: Arc<dyn StateStore>,
    esp: Arc<dyn EspGateway>,
    lister: Arc<dyn EspLister>,
    inbox: Arc<dyn Inbox>,
    clock: Arc<dyn optisync_ports::Clock>,
    guard: Guard,
}

impl Reconciler {
    /// A reconciler over the ports: the state, the ESP to apply to and to list, the inbox holding
    /// snapshot pages, and the clock.
    pub fn new(
        store: Arc<dyn StateStore>,
        esp: Arc<dyn EspGateway>,
        lister: Arc<dyn EspLister>,
        inbox: Arc<dyn Inbox>,
        clock: Arc<dyn optisync_ports::Clock>,
    ) -> Self {
        Self { store, esp, lister, inbox, clock, guard: Guard::default() }
    }

    /// With another mass-deactivation guard.
    pub fn with_guard(mut self, guard: Guard) -> Self {
        self.guard = guard;
        self
    }

    /// The link's run state (checkpoint, last finished run).
    pub async fn state(&self, link: &LinkId) -> Result<RunState, RunError> {
        Ok(self.load(link).await?.0)
    }

    /// Confirms a run the guard holds: its ends are applied in the next invocation (publish
    /// `link.reconcile`). False when no run of the link is held.
    pub async fn confirm(&self, link: &LinkId) -> Result<bool, RunError> {
        let (mut state, version) = self.load(link).await?;
        let Some(mut progress) = state.current.take().filter(|p| p.phase == Phase::Held) else { return Ok(false) };
        progress.confirmed = true;
        progress.phase = Phase::Apply;
        progress.cursor = None;
        Ok(self.save(link, &state, Some(&progress), version).await?.is_some())
    }

    /// Starts a dry run of the first sync of `link` as it would be saved (R-F8): nothing reaches the ESP
    /// or OPTIGEM except the request for the newsletter's snapshot. Returns the (tenant, link) to run
    /// (publish `link.reconcile` for them, or call [`Reconciler::run`]).
    pub async fn start_preview(&self, link: &Link) -> Result<(TenantId, LinkId), RunError> {
        let now = self.clock.now();
        let tenant = link.tenant.preview();
        let shadow = Link {
            id: LinkId::new(format!("{}{PREVIEW_SUFFIX}~{}", link.id, now.timestamp_millis())),
            tenant: tenant.clone(),
            status: LinkStatus::Linking,
            ..link.clone()
        };
        self.store.put_link(&shadow).await?;
        let pointer = preview_pointer(&link.id);
        let version = self.store.run_state(&pointer).await?.map(|(_, v)| v);
        match self.store.save_run_state(&pointer, shadow.id.as_str(), version).await {
            Ok(()) | Err(StoreError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
        Ok((tenant, shadow.id))
    }

    /// The latest dry run of a link: where it stands and what it would do (up to `limit` lines).
    pub async fn preview(&self, tenant: &TenantId, link: &LinkId, limit: usize) -> Result<Option<Preview>, RunError> {
        let Some((shadow, _)) = self.store.run_state(&preview_pointer(link)).await? else { return Ok(None) };
        let shadow = LinkId::new(shadow);
        let state = self.state(&shadow).await?;
        let mut lines = Vec::new();
        let mut after = None;
        while lines.len() < limit {
            let chunks = self.store.run_chunks(&shadow, "ops", after, 500).await?;
            let Some((last, _)) = chunks.last() else { break };
            after = Some(*last);
            for (_, raw) in chunks {
                lines.push(serde_json::from_str(&raw).map_err(|e| RunError::State(e.to_string()))?);
            }
        }
        let mut seq = 0;
        let shadow_tenant = tenant.preview();
        while lines.len() < limit {
            let page = self.store.commands(&shadow_tenant, seq, 500).await?;
            let Some((last, _)) = page.last() else { break };
            seq = *last;
            for (_, command) in page {
                match command {
                    OptigemCommand::EndAssignment { assignment, .. } => {
                        lines.push(PreviewLine { action: "end".into(), email: None, assignment: Some(assignment) })
                    }
                    OptigemCommand::MatchPersons { link: l, email, .. } if l == shadow => {
                        lines.push(PreviewLine { action: "queue".into(), email: Some(email), assignment: None })
                    }
                    _ => {}
                }
            }
        }
        lines.truncate(limit);
        Ok(Some(Preview { shadow, state, lines }))
    }

    /// One invocation of the link's run: starts a run or continues the checkpointed one, until it
    /// finishes, waits, is held, or the budget is spent.
    pub async fn run(&self, tenant: &TenantId, link: &LinkId, budget: Budget) -> Result<RunOutcome, RunError> {
        let Some(link) = self.store.link(tenant, link).await? else {
            return Ok(RunOutcome::Skipped);
        };
        if link.status == LinkStatus::NotLinked {
            return Ok(RunOutcome::Skipped);
        }
        let lease = format!("run#{}", link.id);
        let owner = format!("{:032x}", rand::random::<u128>());
        let now = self.clock.now();
        if !self.store.try_lease(&lease, &owner, now, now + RUN_LEASE).await? {
            return Ok(RunOutcome::Busy);
        }
        let engine = if tenant.is_preview() {
            let recording = RecordingEsp { store: self.store.clone(), clock: self.clock.clone() };
            Engine::new(self.store.clone(), Arc::new(recording), self.clock.clone())
        } else {
            Engine::new(self.store.clone(), self.esp.clone(), self.clock.clone())
        };
        let run = Run { r: self, engine, tenant: tenant.clone(), link: &link, budget, pages_now: 0, seen: None };
        let result = run.go().await;
        if let Err(e) = self.store.release_lease(&lease, &owner).await {
            tracing::warn!(error = %e, "could not release the run lease; it expires by itself");
        }
        result
    }

    async fn load(&self, link: &LinkId) -> Result<(RunState, Option<u64>), RunError> {
        read_state(self.store.as_ref(), link).await
    }

    /// Saves the state with `current` as the run in progress (`None`: no run in progress) over the
    /// version read, and returns the new version; `None` when another run saved first (it took over).
    async fn save(
        &self,
        link: &LinkId,
        state: &RunState,
        current: Option<&Progress>,
        version: Option<u64>,
    ) -> Result<Option<u64>, RunError> {
        let mut current = current.cloned();
        if let Some(p) = current.as_mut() {
            p.saved_at = Some(self.clock.now());
        }
        let stored = RunState { current, ..state.clone() };
        let raw = serde_json::to_string(&stored).map_err(|e| RunError::State(e.to_string()))?;
        match self.store.save_run_state(link, &raw, version).await {
            Ok(()) => Ok(Some(version.unwrap_or(0) + 1)),
            Err(StoreError::Conflict) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// A link's run state as stored, with its version (`None`: never saved).
async fn read_state(store: &dyn StateStore, link: &LinkId) -> Result<(RunState, Option<u64>), RunError> {
    match store.run_state(link).await? {
        Some((raw, version)) => {
            let state = serde_json::from_str(&raw).map_err(|e| RunError::State(e.to_string()))?;
            Ok((state, Some(version)))
        }
        None => Ok((RunState::default(), None)),
    }
}

/// Whether the link's run in progress waits for this export.
pub async fn waits_for(store: &dyn StateStore, link: &LinkId, export: &CommandId) -> Result<bool, StoreError> {
    let (state, _) = read_state(store, link).await.map_err(|e| match e {
        RunError::Store(e) => e,
        other => StoreError::Permanent(other.to_string()),
    })?;
    Ok(state.current.is_some_and(|p| p.phase == Phase::AwaitExport && p.export.as_ref() == Some(export)))
}

/// What one step of a phase asks of the loop.
enum Step {
    /// Go on with the next step (the checkpoint is saved first).
    Next,
    /// Stop here with this outcome (the checkpoint is saved first).
    Stop(fn(Progress) -> RunOutcome),
    /// The run is over.
    Done { error: Option<String> },
}

/// One invocation of one link's run.
struct Run<'a> {
    r: &'a Reconciler,
    engine: Engine,
    tenant: TenantId,
    link: &'a Link,
    budget: Budget,
    pages_now: u64,
    /// The e-mails the complete listing saw, read once per invocation for the sweep.
    seen: Option<HashSet<u64>>,
}

impl Run<'_> {
    fn id(&self) -> &LinkId {
        &self.link.id
    }

    async fn go(mut self) -> Result<RunOutcome, RunError> {
        let (mut state, mut version) = self.r.load(self.id()).await?;
        let mut progress = match state.current.take() {
            Some(p) => p,
            None => self.start(&state),
        };
        let now = self.r.clock.now();
        if progress.phase != Phase::AwaitExport
            && progress.phase != Phase::Held
            && progress.saved_at.is_some_and(|at| now - at > RUN_LEASE)
        {
            // Waiting and held runs rest on purpose; any other was dropped by an invocation that died.
            progress.stale_takeovers += 1;
            tracing::warn!(metric = "StaleRun", phase = ?progress.phase, "a run abandoned by a dead invocation is taken over");
        }
        progress.invocations += 1;
        loop {
            if matches!(progress.phase, Phase::Import | Phase::List | Phase::Sweep | Phase::Apply) && self.spent() {
                tracing::info!(pages = progress.counts.pages, "run budget spent; continuing in a new invocation");
                return Ok(RunOutcome::Continue(progress));
            }
            let step = self.step(&mut progress).await?;
            match step {
                Step::Next => {}
                Step::Stop(outcome) => {
                    if self.r.save(self.id(), &state, Some(&progress), version).await?.is_none() {
                        return Ok(RunOutcome::Busy);
                    }
                    return Ok(outcome(progress));
                }
                Step::Done { error } => return self.finish(state, progress, version, error).await,
            }
            let Some(saved) = self.r.save(self.id(), &state, Some(&progress), version).await? else {
                return Ok(RunOutcome::Busy);
            };
            version = Some(saved);
        }
    }

    fn first_sync(&self) -> bool {
        self.link.status == LinkStatus::Linking
    }

    fn spent(&self) -> bool {
        self.budget.max_pages.is_some_and(|m| self.pages_now >= m)
            || self.budget.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn start(&self, state: &RunState) -> Progress {
        let now = self.r.clock.now();
        let first_sync = self.first_sync();
        // Brevo lists only what changed since the last run, except on a first sync and once a day.
        let since = match (&state.last, state.last_complete) {
            (Some(last), Some(complete))
                if !first_sync && self.link.esp.provider == Provider::Brevo && now - complete < FULL_LISTING_EVERY =>
            {
                Some(last.started_at - DELTA_OVERLAP)
            }
            _ => None,
        };
        Progress {
            id: format!("{}-{:08x}", now.timestamp_millis(), rand::random::<u32>()),
            started_at: now,
            phase: Phase::Export,
            export: None,
            export_at: None,
            export_problem: None,
            since,
            cursor: None,
            seen_chunks: 0,
            end_chunks: 0,
            confirmed: false,
            invocations: 0,
            saved_at: None,
            stale_takeovers: 0,
            counts: RunCounts::default(),
            failures: Vec::new(),
            warnings: Vec::new(),
        }
    }

    async fn step(&mut self, p: &mut Progress) -> Result<Step, RunError> {
        match p.phase {
            Phase::Export => {
                // R-F1: the snapshot is asked of the real tenant's connector, also for a dry run.
                let id = command_id("export", &[self.id().as_str(), &p.started_at.to_rfc3339()]);
                let command =
                    OptigemCommand::ExportNewsletter { id: id.clone(), newsletter: self.link.newsletter.clone() };
                let commit = optisync_ports::Commit { writes: vec![], commands: vec![command], audit: vec![] };
                self.r.store.commit(&self.tenant.real(), commit).await?;
                p.export = Some(id);
                p.export_at = Some(self.r.clock.now());
                p.phase = Phase::AwaitExport;
                Ok(Step::Next)
            }
            Phase::AwaitExport => {
                let id = p.export.clone().ok_or_else(|| RunError::State("no export named".into()))?;
                let problem = match self.r.store.command_result(&self.tenant.real(), &id).await? {
                    None if self.first_sync()
                        || p.export_at.is_none_or(|at| self.r.clock.now() - at <= EXPORT_WAIT) =>
                    {
                        return Ok(Step::Stop(RunOutcome::Waiting));
                    }
                    None => "the connector did not answer the export in time",
                    Some(CommandResult::Failed { .. }) => "the connector could not export the newsletter",
                    Some(_) => {
                        p.phase = Phase::Import;
                        p.cursor = None;
                        return Ok(Step::Next);
                    }
                };
                if self.first_sync() {
                    return Ok(Step::Done { error: Some(problem.into()) });
                }
                // A reconciliation does the ESP side all the same.
                tracing::warn!(problem, "reconciling without OPTIGEM's snapshot");
                p.export_problem = Some(problem.into());
                p.phase = Phase::Due;
                p.cursor = None;
                Ok(Step::Next)
            }
            Phase::Import => self.import_page(p).await,
            Phase::Due => {
                // R-A9: what time alone changed since the last run (the engine looks at every link's due entries).
                let date = berlin_date(self.r.clock.now());
                let outcome = self.engine.process(&self.tenant, &Input::Today { date }).await?;
                p.counts.absorb(&outcome);
                p.phase = Phase::List;
                p.cursor = None;
                Ok(Step::Next)
            }
            Phase::List => self.list_page(p).await,
            Phase::Sweep => self.sweep_page(p).await,
            Phase::Held => Ok(Step::Stop(RunOutcome::Held)),
            Phase::Apply => self.apply_chunk(p).await,
        }
    }

    /// R-F2, R-F3: one snapshot page, as the connector uploaded it (pages count from 1).
    async fn import_page(&mut self, p: &mut Progress) -> Result<Step, RunError> {
        let export = p.export.clone().ok_or_else(|| RunError::State("no export named".into()))?;
        let n: u64 = p.cursor.as_deref().and_then(|c| c.parse().ok()).unwrap_or(1);
        let key = snapshot_page_key(&export, n);
        let Some(entry) = self.r.inbox.get(&self.tenant.real(), &key).await? else {
            p.phase = Phase::Due;
            p.cursor = None;
            return Ok(Step::Next);
        };
        let inputs: Vec<&Input> = entry
            .items
            .iter()
            .filter_map(|item| match item {
                InboxItem::Input { input } => Some(input.as_ref()),
                _ => None,
            })
            .collect();
        p.counts.imported += inputs.len() as u64;
        let assignments = || {
            inputs.iter().filter_map(|i| match i {
                Input::AssignmentChanged { assignment } => Some(assignment),
                _ => None,
            })
        };
        if self.first_sync() && self.link.segment.is_some() && !p.warnings.iter().any(|w| w == SEGMENT_OVER_ASSIGNMENTS)
        {
            let tenant = self.r.store.tenant_settings(&self.tenant.real()).await?;
            let today = berlin_date(self.r.clock.now());
            if assignments().any(|a| rules::verdict(a, &self.link.settings, &tenant, today).is_active()) {
                // R-G6: discouraged, not refused; the dry run shows it before the link is saved.
                tracing::warn!("a segment is linked to a newsletter that already has assignments");
                p.warnings.push(SEGMENT_OVER_ASSIGNMENTS.to_owned());
            }
        }
        // What the link has seen at that version or a newer one changes nothing (the planner's version
        // rule): one read for the page instead of an engine pass (with its leases) per assignment.
        let slice = Slice { assignments: assignments().map(|a| a.id.clone()).collect(), emails: Vec::new() };
        let known = self.r.store.load(self.link, &slice).await?.view.mirror;
        for input in inputs {
            if let Input::AssignmentChanged { assignment } = input
                && known.get(&assignment.id).is_some_and(|m| m.has_seen(assignment.version))
            {
                continue;
            }
            self.apply(p, input).await?;
        }
        p.counts.pages += 1;
        self.pages_now += 1;
        p.cursor = Some((n + 1).to_string());
        Ok(Step::Next)
    }

    /// One page of the list: signups and segment members applied at once, ends deferred.
    async fn list_page(&mut self, p: &mut Progress) -> Result<Step, RunError> {
        let page = self.r.lister.list_page(self.link, p.since, p.cursor.as_deref()).await?;
        p.counts.members += page.members.len() as u64;
        let expires = self.r.clock.now() + CHUNK_RETENTION;
        if p.since.is_none() && !page.members.is_empty() {
            let seen: String = page.members.iter().map(|m| format!("{:016x}", key_hash(m.email.key()))).collect();
            self.r.store.put_run_chunk(self.id(), &format!("{}/seen", p.id), p.seen_chunks, &seen, expires).await?;
            p.seen_chunks += 1;
        }
        let (now_inputs, ends) = self.differences(p, &page.members).await?;
        for event in now_inputs {
            self.apply(p, &Input::Esp(event)).await?;
        }
        self.defer(p, ends).await?;
        p.counts.pages += 1;
        self.pages_now += 1;
        p.cursor = page.next;
        if p.cursor.is_none() {
            // A dry run's own state is as fresh as the run: nothing in it can have left the list, and what it
            // would create never reached the ESP to be listed.
            let sweep = p.since.is_none() && !self.tenant.is_preview();
            p.phase = if sweep { Phase::Sweep } else { self.after_listing(p) };
        }
        Ok(Step::Next)
    }

    /// The differences between a page and the known state: what to apply now, and the ends to defer.
    async fn differences(
        &self,
        p: &Progress,
        members: &[ListedMember],
    ) -> Result<(Vec<EspEvent>, Vec<EspEvent>), RunError> {
        let slice = Slice { assignments: Vec::new(), emails: members.iter().map(|m| m.email.clone()).collect() };
        let known = self.r.store.load(self.link, &slice).await?.view;
        let (mut now, mut ends) = (Vec::new(), Vec::new());
        let segment = self.link.segment.clone();
        for member in members {
            let state = known.recipients.get(&member.email);
            let at = member.changed_at.unwrap_or(p.started_at);
            let event = |what| EspEvent {
                esp: self.link.esp.clone(),
                list: Some(self.link.list.clone()),
                email: member.email.clone(),
                at,
                what,
            };
            if let Some(segment) = &segment {
                // R-G3, R-G4: a segment member without an active assignment.
                let active =
                    known.mirror.values().any(|e| e.email.as_ref() == Some(&member.email) && e.effectively_active());
                if member.active
                    && !(active && state.is_some_and(|s| s.listed && s.active && s.pending_create.is_none()))
                {
                    let pending = state.is_some_and(|s| s.pending_create.is_some() && s.listed);
                    let queued = known
                        .approvals
                        .get(&member.email)
                        .is_some_and(|a| a.status == optisync_domain::ApprovalStatus::Pending);
                    if !pending && !queued {
                        now.push(event(EspEventKind::SegmentMembership { segment: segment.clone(), member: true }));
                    }
                }
                continue;
            }
            let receiving = state.is_some_and(|r| r.listed && r.active);
            if member.active && !state.is_some_and(|s| s.listed) {
                // R-E3, R-F4: receives mail, unknown to the link (or back on the list by the ESP's doing).
                now.push(event(EspEventKind::Signup { signup: member.signup.clone() }));
            } else if !member.active && receiving {
                // R-E1, R-E2, R-F5: the ESP wins on active status.
                let what = if member.blacklisted && self.link.esp.provider == Provider::Brevo {
                    EspEventKind::Blacklisted
                } else {
                    EspEventKind::Deactivated
                };
                let mut e = event(what);
                if e.what == EspEventKind::Blacklisted {
                    e.list = None; // account-wide (R-E2)
                }
                ends.push(e);
            }
        }
        Ok((now, ends))
    }

    /// Keeps ends for the guard and the apply phase.
    async fn defer(&self, p: &mut Progress, ends: Vec<EspEvent>) -> Result<(), RunError> {
        if ends.is_empty() {
            return Ok(());
        }
        p.counts.deferred += ends.len() as u64;
        let raw = serde_json::to_string(&ends).map_err(|e| RunError::State(e.to_string()))?;
        let expires = self.r.clock.now() + CHUNK_RETENTION;
        self.r.store.put_run_chunk(self.id(), &format!("{}/ends", p.id), p.end_chunks, &raw, expires).await?;
        p.end_chunks += 1;
        Ok(())
    }

    /// After the listing (and the sweep): the guard, then the deferred ends.
    fn after_listing(&self, p: &mut Progress) -> Phase {
        p.cursor = None;
        let dry = self.tenant.is_preview();
        if !dry && !p.confirmed && self.r.guard.holds(p.counts.deferred, p.counts.members) {
            tracing::warn!(
                ends = p.counts.deferred,
                members = p.counts.members,
                "the run would end more than the guard allows; held until an admin confirms"
            );
            Phase::Held
        } else {
            Phase::Apply
        }
    }

    /// R-E1, R-E4, R-G4: one page of the link's recipients; those on the list the listing did not show
    /// left it.
    async fn sweep_page(&mut self, p: &mut Progress) -> Result<Step, RunError> {
        if self.seen.is_none() {
            self.seen = Some(self.seen(p).await?);
        }
        let seen = self.seen.as_ref().expect("read above");
        let page = self.r.store.recipients(self.id(), p.cursor.as_deref(), SWEEP_PAGE).await?;
        let now = self.r.clock.now();
        let mut ends = Vec::new();
        for (email, state) in &page {
            // A segment is listed by its active receivers: one deactivated in the group is not missing.
            let expected = state.listed && (self.link.segment.is_none() || state.active);
            if !expected || seen.contains(&key_hash(email.key())) {
                continue;
            }
            // Offset and page cursors can miss a member when the list changes between two pages: one
            // lookup confirms the member is really gone before anything is ended. (A segment's membership
            // cannot be looked up per receiver; a segment link trusts its listing.)
            if self.link.segment.is_none() && self.r.lister.is_listed(self.link, email).await? {
                tracing::info!("a member the listing missed is still on the list; kept");
                continue;
            }
            let what = match &self.link.segment {
                Some(segment) => EspEventKind::SegmentMembership { segment: segment.clone(), member: false },
                None => EspEventKind::Deleted,
            };
            ends.push(EspEvent {
                esp: self.link.esp.clone(),
                list: Some(self.link.list.clone()),
                email: email.clone(),
                at: now,
                what,
            });
        }
        self.defer(p, ends).await?;
        p.cursor = page.last().map(|(e, _)| e.key().to_owned());
        if page.len() < SWEEP_PAGE {
            p.phase = self.after_listing(p);
        }
        Ok(Step::Next)
    }

    /// The e-mails the complete listing saw (eight bytes each).
    async fn seen(&self, p: &Progress) -> Result<HashSet<u64>, RunError> {
        let run = format!("{}/seen", p.id);
        let mut seen = HashSet::new();
        let mut after = None;
        loop {
            let chunks = self.r.store.run_chunks(self.id(), &run, after, 100).await?;
            let Some((last, _)) = chunks.last() else { break };
            after = Some(*last);
            for (_, raw) in &chunks {
                for i in (0..raw.len()).step_by(16) {
                    if let Some(h) = raw.get(i..i + 16).and_then(|h| u64::from_str_radix(h, 16).ok()) {
                        seen.insert(h);
                    }
                }
            }
        }
        Ok(seen)
    }

    /// One chunk of deferred ends.
    async fn apply_chunk(&mut self, p: &mut Progress) -> Result<Step, RunError> {
        let after = p.cursor.as_deref().and_then(|c| c.parse().ok());
        let run = format!("{}/ends", p.id);
        let Some((index, raw)) = self.r.store.run_chunks(self.id(), &run, after, 1).await?.pop() else {
            return Ok(Step::Done { error: None });
        };
        let events: Vec<EspEvent> = serde_json::from_str(&raw).map_err(|e| RunError::State(e.to_string()))?;
        for event in events {
            self.apply(p, &Input::Esp(event)).await?;
        }
        self.pages_now += 1;
        p.cursor = Some(index.to_string());
        Ok(Step::Next)
    }

    /// Feeds one input through the engine; a failure that retrying will not mend is recorded and the run
    /// goes on, anything else stops the run (the checkpoint repeats the page).
    async fn apply(&self, p: &mut Progress, input: &Input) -> Result<(), RunError> {
        match self.engine.process(&self.tenant, input).await {
            Ok(outcome) => {
                p.counts.add(&outcome);
                Ok(())
            }
            Err(e) if !e.is_transient() => {
                p.counts.failed += 1;
                let reason = match &e {
                    ProcessError::Esp(EspError::Unauthorized) => "the ESP refused the credentials",
                    ProcessError::Esp(_) => "the ESP refused the change",
                    _ => "the state store refused the change",
                };
                tracing::warn!(reason, "an input of the run failed; the run goes on");
                if p.failures.len() < MAX_FAILURES {
                    p.failures.push(Failure {
                        recipient: input_email(input).map(|e| e.masked()).unwrap_or_default(),
                        input: input.name(),
                        reason: reason.into(),
                    });
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn finish(
        &self,
        mut state: RunState,
        progress: Progress,
        version: Option<u64>,
        error: Option<String>,
    ) -> Result<RunOutcome, RunError> {
        let now = self.r.clock.now();
        let complete = error.is_none() && progress.since.is_none();
        let error = error.or(progress.export_problem);
        let finished = Finished {
            started_at: progress.started_at,
            finished_at: now,
            invocations: progress.invocations,
            counts: progress.counts,
            complete,
            failures: progress.failures,
            error: error.clone(),
            warnings: progress.warnings,
        };
        state.last = Some(finished.clone());
        if error.is_none() {
            state.last_success = Some(now);
        }
        if complete {
            // The ESP side was listed completely (even if OPTIGEM's snapshot was missing).
            state.last_complete = Some(progress.started_at);
        }
        if self.r.save(self.id(), &state, None, version).await?.is_none() {
            return Ok(RunOutcome::Busy);
        }
        if error.is_none() && self.link.status == LinkStatus::Linking {
            // R-F1: linked once the first sync has finished in both directions; a dry run's own link
            // goes back to rest, so that no schedule runs it again.
            let status = if self.tenant.is_preview() { LinkStatus::NotLinked } else { LinkStatus::Linked };
            self.r.store.put_link(&Link { status, ..self.link.clone() }).await?;
        }
        match &error {
            Some(e) => tracing::warn!(error = %e, "run failed"),
            None => tracing::info!(
                pages = finished.counts.pages,
                inputs = finished.counts.inputs,
                invocations = finished.invocations,
                "run finished"
            ),
        }
        Ok(RunOutcome::Finished(finished))
    }
}

fn input_email(input: &Input) -> Option<&Email> {
    match input {
        Input::Esp(e) => Some(&e.email),
        Input::AssignmentChanged { assignment } => optisync_domain::rules::email_used(assignment),
        _ => None,
    }
}
