//! The scheduled run of one link: the first sync of a new link (R-F1…F6), the reconciliation every six
//! hours (R-E7, R-A9), and the dry run an admin looks at before saving a link (R-F8).
//!
//! A run holds the link's run lease, so two runs never overlap; it saves a checkpoint after every page,
//! stops between pages when its budget is spent and continues from the checkpoint in the next
//! invocation. The lease is short ([`RUN_LEASE`], 2 minutes) and renewed at every checkpoint (M9): a live
//! run keeps it however long it runs, and a run whose invocation died (Lambda's timeout) is taken over by
//! the first delivery after its lease ran out, which continues from the checkpoint. Memory stays bounded
//! by one page (and eight bytes per list member for the sweep) whatever the list size. Every input goes through the same engine as the webhooks and is exactly-once by
//! itself, so a run killed in the middle of a page repeats that page without a duplicate effect.
//!
//! Phases, in order:
//! 1. *Export* and *Await export*: `export_newsletter` asks the connector for the newsletter's
//!    snapshot; the run waits (no invocation is held) until the connector reports the export done,
//!    which wakes it again. A first sync fails when the export fails; a reconciliation whose export
//!    fails, or stays unanswered for [`EXPORT_WAIT`], goes on with the ESP side and reports the problem.
//!    A dry run fails when its export fails or stays unanswered for [`EXPORT_WAIT`], and, finished with or
//!    without an error, its own link rests (`not_linked`): no tick runs it or asks for an export again
//!    (M9); a new dry run does.
//! 2. *Import*: the snapshot pages, page by page: every active assignment is imported (R-F2: created in
//!    the ESP if unknown there, OPTIGEM's field values written; R-F3: on the list; the ESP gateways never
//!    re-activate on an upsert, so deactivated and blacklisted recipients stay so). At a reconciliation
//!    this is the OPTIGEM side of the drift: an assignment whose change event never arrived reaches the
//!    list (R-D1). One the link holds at that version changes nothing and costs no write. The listing
//!    that follows sees what the ESP holds against the imported recipients (R-F5).
//! 3. *Due*: what time alone changed (R-A9), from the index of next transition dates.
//!    *Blocked*: what the ESP account blocks for every list, read once per run (CleverReach: the
//!    blacklist in one call, then the bounces page by page; Brevo has none, its listing shows its
//!    blacklist). A blacklisted recipient the link holds as receiving → an account-wide end, deferred
//!    with the others (R-E9, like R-E2); a blocked hard bounce → counted in the run's `bounced`, nothing
//!    written to OPTIGEM (R-E6).
//! 4. *List*: the ESP's list page by page, each difference to the known state fed through the engine.
//!    A receiving member the link does not know → a signup for the approval queue (R-E3, R-F4); on a
//!    segment link, a segment member without an active assignment → segment membership (R-G3, R-G4).
//!    A member known as receiving that the ESP no longer lets receive → its assignments are to be ended
//!    (R-E1, R-E2, R-F5): deferred, see 6. A contact on a Brevo list while blacklisted, which the link
//!    does not hold as receiving, is taken off the list at once (R-E2). Every run lists the whole list
//!    (R-E7): Brevo's `modifiedSince` does not show a member taken off a list, only the sweep does.
//! 5. *Sweep* (after the listing): recipients the link knows on the list that the listing did
//!    not show were deleted in the ESP (R-E1; an e-mail changed inside the ESP shows as this deletion
//!    plus a signup of the new address, R-E4); on a segment link they left the segment (R-G4).
//! 6. *Guard* and *Apply*: the ends found in 4 and 5 are applied last, unless they would end more than
//!    the guard's share of the list: then the run is held until an admin confirms it (R-F8).
//!
//! A *settings run* (R-A10) is the other kind: after an admin changed the link's relevant privacy
//! categories, relevant delivery-block types or field mapping, or the tenant's R-A6 setting, it pages the
//! link's assignments from the store and plans each again with the new settings (`Input::Replan`), first
//! as a dry run whose lines are the link's preview and whose deactivations go before the same guard (6);
//! held, nothing changes until an admin confirms; otherwise, or once confirmed, the re-plans are applied
//! through the engine. It starts when the link has no run in progress, or right after the one in progress.
//!
//! What the listing, the sweep and the guard decide (4–6) is the domain's, in `optisync_domain::drift`; the
//! run pages, keeps the checkpoints and applies.

mod preview;
mod run;
mod state;

pub use preview::{Preview, PreviewAction, PreviewLine};
pub use state::{
    Budget, CHUNK_RETENTION, EXPORT_WAIT, Failure, Finished, Guard, MAX_FAILURES, Phase, Progress, REPLAN_PAGE,
    RUN_HISTORY, RUN_LEASE, RunCounts, RunError, RunKind, RunOutcome, RunState, RunSummary, SEGMENT_OVER_ASSIGNMENTS,
    SWEEP_PAGE, runs_waiting_for, waits_for,
};

use crate::engine::Engine;
use optisync_domain::{Link, LinkId, LinkStatus, TenantId};
use optisync_ports::names::lease;
use optisync_ports::{Clock, EspGateway, EspLister, Inbox, StateStore};
use preview::RecordingEsp;
use run::{Holder, Ports, Run};
use state::{read_state, replan_requests, save_state};
use std::sync::Arc;

/// Runs reconciliations.
#[derive(Clone)]
pub struct Reconciler {
    store: Arc<dyn StateStore>,
    esp: Arc<dyn EspGateway>,
    lister: Arc<dyn EspLister>,
    inbox: Arc<dyn Inbox>,
    clock: Arc<dyn Clock>,
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
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { store, esp, lister, inbox, clock, guard: Guard::default() }
    }

    /// With another mass-deactivation guard.
    pub fn with_guard(mut self, guard: Guard) -> Self {
        self.guard = guard;
        self
    }

    /// The link's run state (checkpoint, last finished run).
    pub async fn state(&self, tenant: &TenantId, link: &LinkId) -> Result<RunState, RunError> {
        Ok(self.load(tenant, link).await?.0)
    }

    /// Confirms a run the guard holds: its ends are applied in the next invocation (publish
    /// `link.reconcile`). False when no run of the link is held.
    pub async fn confirm(&self, tenant: &TenantId, link: &LinkId) -> Result<bool, RunError> {
        let (mut state, version) = self.load(tenant, link).await?;
        let Some(mut progress) = state.current.take().filter(|p| p.phase == Phase::Held) else { return Ok(false) };
        progress.confirmed = true;
        progress.phase = Phase::Apply;
        progress.cursor = None;
        Ok(self.save(tenant, link, &state, Some(&progress), version).await?.is_some())
    }

    /// R-A10: asks for a settings run of the link (its settings or the tenant's R-A6 setting changed):
    /// the link's next run re-plans every assignment it holds, after the run in progress if there is one.
    /// Announce `link.reconcile` for it afterwards.
    pub async fn request_replan(&self, tenant: &TenantId, link: &LinkId, reason: &str) -> Result<(), RunError> {
        state::request_replan(self.store.as_ref(), self.clock.as_ref(), tenant, link, reason).await?;
        Ok(())
    }

    /// Starts a dry run of the first sync of `link` as it would be saved (R-F8): nothing reaches the ESP
    /// or OPTIGEM except the request for the newsletter's snapshot. Returns the (tenant, link) to run
    /// (publish `link.reconcile` for them, or call [`Reconciler::run`]).
    pub async fn start_preview(&self, link: &Link) -> Result<(TenantId, LinkId), RunError> {
        preview::start_preview(self.store.as_ref(), self.clock.as_ref(), link).await
    }

    /// The latest dry run of a link: where it stands and what it would do (up to `limit` lines).
    pub async fn preview(&self, tenant: &TenantId, link: &LinkId, limit: usize) -> Result<Option<Preview>, RunError> {
        preview::preview(self.store.as_ref(), tenant, link, limit).await
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
        let lease = lease::run(tenant, &link.id);
        let owner = format!("{:032x}", rand::random::<u128>());
        let now = self.clock.now();
        if !self.store.try_lease(&lease, &owner, now, now + RUN_LEASE).await? {
            return Ok(RunOutcome::Busy);
        }
        let result = self.go(Holder { lease: &lease, owner: &owner }, tenant, link, budget).await;
        if let Err(e) = self.store.release_lease(&lease, &owner).await {
            tracing::warn!(error = %e, "could not release the run lease; it expires by itself");
        }
        result
    }

    /// One invocation under the run lease; a run that finishes while settings changes wait for a re-plan
    /// (R-A10) is followed by the settings run at once.
    async fn go(
        &self,
        holder: Holder<'_>,
        tenant: &TenantId,
        link: Link,
        budget: Budget,
    ) -> Result<RunOutcome, RunError> {
        let engine = if tenant.is_preview() {
            let recording = RecordingEsp::new(self.store.clone(), self.clock.clone(), tenant.clone());
            Engine::new(self.store.clone(), Arc::new(recording), self.clock.clone())
        } else {
            Engine::new(self.store.clone(), self.esp.clone(), self.clock.clone())
        };
        let outcome = Run::new(self.ports(), holder, engine.clone(), tenant.clone(), &link, budget).go().await?;
        if !matches!(outcome, RunOutcome::Finished(_)) || tenant.is_preview() {
            return Ok(outcome);
        }
        let (state, _) = self.load(tenant, &link.id).await?;
        if replan_requests(self.store.as_ref(), tenant, &link.id).await? <= state.replanned.unwrap_or(0) {
            return Ok(outcome);
        }
        // The first sync set the link linked: read it again.
        match self.store.link(tenant, &link.id).await? {
            Some(link) if link.status == LinkStatus::Linked => {
                tracing::info!("settings changed during the run: re-planning the link's assignments now");
                Run::new(self.ports(), holder, engine, tenant.clone(), &link, budget).go().await
            }
            _ => Ok(outcome),
        }
    }

    /// What a run works with.
    /// The engine this reconciler's runs process their inputs with (not a preview's), for the admin's
    /// data-subject requests (R-J7).
    pub fn engine(&self) -> Engine {
        Engine::new(self.store.clone(), self.esp.clone(), self.clock.clone())
    }

    fn ports(&self) -> Ports<'_> {
        Ports {
            store: self.store.as_ref(),
            lister: self.lister.as_ref(),
            inbox: self.inbox.as_ref(),
            clock: self.clock.as_ref(),
            guard: self.guard,
        }
    }

    async fn load(&self, tenant: &TenantId, link: &LinkId) -> Result<(RunState, Option<u64>), RunError> {
        read_state(self.store.as_ref(), tenant, link).await
    }

    async fn save(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        state: &RunState,
        current: Option<&Progress>,
        version: Option<u64>,
    ) -> Result<Option<u64>, RunError> {
        save_state(self.store.as_ref(), self.clock.as_ref(), tenant, link, state, current, version).await
    }
}
