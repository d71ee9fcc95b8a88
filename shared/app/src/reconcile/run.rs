//! One invocation of a link's run and its phases (export, import, due, list, sweep, guard, apply); the
//! module documentation of [`super`] describes them in order.

use super::preview::{self as dry, PreviewAction, PreviewLine};
use super::state::{
    Budget, CHUNK_RETENTION, EXPORT_WAIT, Failure, Finished, Guard, MAX_FAILURES, Phase, Progress, REPLAN_PAGE,
    RUN_HISTORY, RUN_LEASE, RunCounts, RunError, RunKind, RunOutcome, RunState, RunSummary, SEGMENT_OVER_ASSIGNMENTS,
    SWEEP_PAGE, key_hash, read_state, replan_requests, save_state,
};
use crate::engine::{Engine, Outcome, ProcessError};
use crate::inbox::snapshot_page_key;
use optisync_domain::drift::{self, Differences};
use optisync_domain::{
    AssignmentId, CommandResult, Email, EspEvent, EspOp, Input, Link, LinkId, LinkStatus, OptigemCommand, TenantId,
    berlin_date, command_id, rules,
};
use optisync_ports::{Clock, EspError, EspLister, Inbox, InboxItem, ListedMember, Slice, StateStore};
use std::collections::HashSet;
use std::time::Instant;

/// Deferred ends applied as one batch (Brevo takes 150 list members a call): chunks are read until the
/// next would take the batch beyond this (a chunk holds a page's ends, so one alone may be larger).
const END_BATCH: usize = 150;
/// Chunks of ends read at a time while a batch is gathered.
const END_BATCH_CHUNKS: usize = 50;

/// What one step of a phase asks of the loop.
enum Step {
    /// Go on with the next step (the checkpoint is saved first).
    Next,
    /// Stop here with this outcome (the checkpoint is saved first).
    Stop(fn(Progress) -> RunOutcome),
    /// The run is over.
    Done { error: Option<String> },
}

/// What a run works with: the state, the ESP's list, the inbox holding snapshot pages, the clock and the
/// mass-deactivation guard (the ESP is applied to only through the engine).
pub(super) struct Ports<'a> {
    pub(super) store: &'a dyn StateStore,
    pub(super) lister: &'a dyn EspLister,
    pub(super) inbox: &'a dyn Inbox,
    pub(super) clock: &'a dyn Clock,
    pub(super) guard: Guard,
}

impl Ports<'_> {
    async fn load(&self, tenant: &TenantId, link: &LinkId) -> Result<(RunState, Option<u64>), RunError> {
        read_state(self.store, tenant, link).await
    }

    async fn save(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        state: &RunState,
        current: Option<&Progress>,
        version: Option<u64>,
    ) -> Result<Option<u64>, RunError> {
        save_state(self.store, self.clock, tenant, link, state, current, version).await
    }
}

/// The run lease an invocation holds: its name and this invocation's owner id (M9: renewed at every
/// checkpoint).
#[derive(Clone, Copy)]
pub(super) struct Holder<'a> {
    pub(super) lease: &'a str,
    pub(super) owner: &'a str,
}

/// One invocation of one link's run.
pub(super) struct Run<'a> {
    r: Ports<'a>,
    holder: Holder<'a>,
    engine: Engine,
    tenant: TenantId,
    link: &'a Link,
    budget: Budget,
    pages_now: u64,
    /// The e-mails the complete listing saw, read once per invocation for the sweep.
    seen: Option<HashSet<u64>>,
}

impl<'a> Run<'a> {
    /// An invocation of `link`'s run under `tenant` and the run lease `holder` took, applying through
    /// `engine`.
    pub(super) fn new(
        r: Ports<'a>,
        holder: Holder<'a>,
        engine: Engine,
        tenant: TenantId,
        link: &'a Link,
        budget: Budget,
    ) -> Self {
        Self { r, holder, engine, tenant, link, budget, pages_now: 0, seen: None }
    }

    /// Saves the run state (`current`: the checkpoint, `None`: the run is over) under the run lease,
    /// renewed first for another [`RUN_LEASE`] (M9: a live run keeps its lease however long it runs, a dead
    /// one loses it [`RUN_LEASE`] after its last checkpoint). `None` when another invocation took the lease
    /// over (this one was too slow: the other goes on from the last checkpoint) or saved first.
    async fn checkpoint(
        &self,
        state: &RunState,
        current: Option<&Progress>,
        version: Option<u64>,
    ) -> Result<Option<u64>, RunError> {
        let now = self.r.clock.now();
        if !self.r.store.try_lease(self.holder.lease, self.holder.owner, now, now + RUN_LEASE).await? {
            tracing::warn!("another invocation took the run lease over; this one stops");
            return Ok(None);
        }
        self.r.save(&self.tenant, self.id(), state, current, version).await
    }

    fn id(&self) -> &LinkId {
        &self.link.id
    }

    /// Starts the run or continues its checkpoint, phase by phase, saving the checkpoint after every
    /// step, until it finishes, waits, is held or the budget is spent.
    pub(super) async fn go(mut self) -> Result<RunOutcome, RunError> {
        let (mut state, mut version) = self.r.load(&self.tenant, self.id()).await?;
        let mut progress = match state.current.take() {
            Some(p) => p,
            None => {
                let requests = replan_requests(self.r.store, &self.tenant, self.id()).await?;
                self.start(&state, requests)
            }
        };
        let now = self.r.clock.now();
        if progress.phase != Phase::AwaitExport
            && progress.phase != Phase::Held
            && progress.saved_at.is_some_and(|at| now - at > RUN_LEASE)
        {
            // Waiting and held runs rest on purpose; any other was dropped by an invocation that died (or
            // failed, and its retry came after the lease).
            progress.stale_takeovers += 1;
            tracing::warn!(metric = "StaleRun", phase = ?progress.phase, "a run abandoned by a dead invocation is taken over");
        }
        progress.invocations += 1;
        loop {
            if matches!(
                progress.phase,
                Phase::Import | Phase::Due | Phase::Blocked | Phase::List | Phase::Sweep | Phase::Replan | Phase::Apply
            ) && self.spent()
            {
                tracing::info!(pages = progress.counts.pages, "run budget spent; continuing in a new invocation");
                return Ok(RunOutcome::Continue(progress));
            }
            let step = self.step(&mut progress).await?;
            match step {
                Step::Next => {}
                Step::Stop(outcome) => {
                    if self.checkpoint(&state, Some(&progress), version).await?.is_none() {
                        return Ok(RunOutcome::Busy);
                    }
                    return Ok(outcome(progress));
                }
                Step::Done { error } => return self.finish(state, progress, version, error).await,
            }
            let Some(saved) = self.checkpoint(&state, Some(&progress), version).await? else {
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

    /// A new run: a settings run when the link's settings changed since the last run that covered them
    /// (R-A10: `requests` re-plan requests so far), else a first sync or a reconciliation.
    fn start(&self, state: &RunState, requests: u64) -> Progress {
        let now = self.r.clock.now();
        let first_sync = self.first_sync();
        let settings = !first_sync && !self.tenant.is_preview() && requests > state.replanned.unwrap_or(0);
        Progress {
            id: format!("{}-{:08x}", now.timestamp_millis(), rand::random::<u32>()),
            kind: if settings { RunKind::Settings } else { RunKind::Sync },
            replan: (settings || first_sync).then_some(requests),
            started_at: now,
            phase: if settings { Phase::Replan } else { Phase::Export },
            export: None,
            export_at: None,
            export_problem: None,
            // R-E7 (B15): every run lists the whole list, then sweeps. Brevo's `modifiedSince` does not
            // show a member taken off a list, and only the sweep after a complete listing finds it gone:
            // a delta listing would leave that removal to a later complete run, beyond the 6 hours.
            since: None,
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
                let commit = optisync_ports::Commit { commands: vec![command], ..Default::default() };
                self.r.store.commit(&self.tenant.real(), commit).await?;
                p.export = Some(id);
                p.export_at = Some(self.r.clock.now());
                p.phase = Phase::AwaitExport;
                Ok(Step::Next)
            }
            Phase::AwaitExport => {
                let id = p.export.clone().ok_or_else(|| RunError::State("no export named".into()))?;
                let problem = match self.r.store.command_result(&self.tenant.real(), &id).await? {
                    // A first sync waits for its snapshot however long it takes; a dry run (M9) and a
                    // reconciliation wait up to EXPORT_WAIT.
                    None if (self.first_sync() && !self.tenant.is_preview())
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
                // R-A9: what time alone changed since the last run (the engine looks at every link's due
                // entries). H4: one page of due entries a step, each its own commit, checkpointed after
                // it, until none is due; a month-end of thousands fits no single transaction.
                let date = berlin_date(self.r.clock.now());
                let page = self.engine.process_due_page(&self.tenant, date).await?;
                p.counts.absorb(&page.outcome);
                self.pages_now += u64::from(page.entries > 0);
                if !page.more {
                    p.phase = Phase::Blocked;
                    p.cursor = None;
                }
                Ok(Step::Next)
            }
            Phase::Blocked => self.blocked_page(p).await,
            Phase::List => self.list_page(p).await,
            Phase::Sweep => self.sweep_page(p).await,
            Phase::Replan => self.replan_page(p).await,
            Phase::Held => Ok(Step::Stop(RunOutcome::Held)),
            Phase::Apply if p.kind == RunKind::Settings => self.apply_replans(p).await,
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

    /// R-E9: one page of what the ESP account blocks for every list (read once per run; none at Brevo,
    /// whose listing shows its blacklist): blacklisted recipients the link holds as receiving are
    /// account-wide ends, deferred like the listing's; blocked hard bounces are counted, never written
    /// (R-E6). Decided by [`drift::blocked`].
    async fn blocked_page(&mut self, p: &mut Progress) -> Result<Step, RunError> {
        let page = self.r.lister.blocked_page(self.link, p.cursor.as_deref()).await?;
        if !page.blocked.is_empty() {
            let emails = page.blocked.iter().map(|b| b.email.clone()).collect();
            let known = self.r.store.load(self.link, &Slice { assignments: Vec::new(), emails }).await?.view;
            let blocks = drift::blocked(self.link, &known, &page.blocked, p.started_at);
            p.counts.bounced += blocks.bounced;
            self.defer(p, blocks.ends).await?;
            self.pages_now += 1;
        }
        p.cursor = page.next;
        if p.cursor.is_none() {
            p.phase = Phase::List;
        }
        Ok(Step::Next)
    }

    /// One page of the list: signups and segment members applied at once, ends deferred.
    async fn list_page(&mut self, p: &mut Progress) -> Result<Step, RunError> {
        let page = self.r.lister.list_page(self.link, p.since, p.cursor.as_deref()).await?;
        p.counts.members += page.members.len() as u64;
        let expires = self.r.clock.now() + CHUNK_RETENTION;
        if p.since.is_none() && !page.members.is_empty() {
            let seen: String = page.members.iter().map(|m| format!("{:016x}", key_hash(m.email.key()))).collect();
            self.r
                .store
                .put_run_chunk(&self.tenant, self.id(), &format!("{}/seen", p.id), p.seen_chunks, &seen, expires)
                .await?;
            p.seen_chunks += 1;
        }
        let Differences { now: now_inputs, ends } = self.differences(p, &page.members).await?;
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

    /// The differences between a page and the known state: what to apply now, and the ends to defer
    /// (decided by [`drift::differences`]: R-E1, R-E2, R-E3, R-F4, R-F5, R-G3, R-G4).
    async fn differences(&self, p: &Progress, members: &[ListedMember]) -> Result<Differences, RunError> {
        let slice = Slice { assignments: Vec::new(), emails: members.iter().map(|m| m.email.clone()).collect() };
        let known = self.r.store.load(self.link, &slice).await?.view;
        Ok(drift::differences(self.link, &known, members, p.started_at))
    }

    /// Keeps ends for the guard and the apply phase.
    async fn defer(&self, p: &mut Progress, ends: Vec<EspEvent>) -> Result<(), RunError> {
        if ends.is_empty() {
            return Ok(());
        }
        p.counts.deferred += ends.len() as u64;
        let raw = serde_json::to_string(&ends).map_err(|e| RunError::State(e.to_string()))?;
        let expires = self.r.clock.now() + CHUNK_RETENTION;
        self.r
            .store
            .put_run_chunk(&self.tenant, self.id(), &format!("{}/ends", p.id), p.end_chunks, &raw, expires)
            .await?;
        p.end_chunks += 1;
        Ok(())
    }

    /// After the listing (and the sweep): the guard, then the deferred ends.
    fn after_listing(&self, p: &mut Progress) -> Phase {
        p.cursor = None;
        let dry = self.tenant.is_preview();
        // R-F8: the threshold is the domain's (`drift::Guard::holds`); a dry run and a confirmed run go on.
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
        let page = self.r.store.recipients(&self.tenant, self.id(), p.cursor.as_deref(), SWEEP_PAGE).await?;
        let now = self.r.clock.now();
        let mut ends = Vec::new();
        // Which recipients the listing should have shown, whether one is looked up first, and what one
        // gone becomes are the domain's (`drift`); the lookups are I/O.
        for email in drift::sweep_candidates(self.link, &page, |e| seen.contains(&key_hash(e.key()))) {
            // One lookup confirms the member is really gone before anything is ended.
            if drift::lookup_before_ending(self.link) && self.r.lister.is_listed(self.link, email).await? {
                tracing::info!("a member the listing missed is still on the list; kept");
                continue;
            }
            ends.push(drift::gone_from_list(self.link, email, now));
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
            let chunks = self.r.store.run_chunks(&self.tenant, self.id(), &run, after, 100).await?;
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

    /// Deferred ends, chunk by chunk up to [`END_BATCH`] of them, applied as one batch: the ESP takes
    /// their list removals together (Brevo: 150 addresses a call), each end still committed or recorded
    /// as failed by itself.
    async fn apply_chunk(&mut self, p: &mut Progress) -> Result<Step, RunError> {
        let mut after: Option<u64> = p.cursor.as_deref().and_then(|c| c.parse().ok());
        let run = format!("{}/ends", p.id);
        let mut events: Vec<EspEvent> = Vec::new();
        let mut last = None;
        'chunks: loop {
            let chunks = self.r.store.run_chunks(&self.tenant, self.id(), &run, after, END_BATCH_CHUNKS).await?;
            let read = chunks.len();
            for (index, raw) in chunks {
                let chunk: Vec<EspEvent> = serde_json::from_str(&raw).map_err(|e| RunError::State(e.to_string()))?;
                if !events.is_empty() && events.len() + chunk.len() > END_BATCH {
                    break 'chunks;
                }
                events.extend(chunk);
                last = Some(index);
                after = Some(index);
            }
            if read < END_BATCH_CHUNKS {
                break;
            }
        }
        let Some(index) = last else {
            return Ok(Step::Done { error: None });
        };
        let inputs: Vec<Input> = events.into_iter().map(Input::Esp).collect();
        let results = self.engine.process_batch(&self.tenant, &inputs).await;
        // Every end is counted or recorded; one that may succeed later stops the run after the batch, and
        // the checkpoint repeats the batch (what was committed plans nothing the second time).
        let mut retry = None;
        for (input, result) in inputs.iter().zip(results) {
            if let Err(e) = self.record(p, input, result) {
                retry.get_or_insert(e);
            }
        }
        if let Some(e) = retry {
            return Err(e);
        }
        self.pages_now += 1;
        p.cursor = Some(index.to_string());
        Ok(Step::Next)
    }

    /// R-A10: one page of the link's assignments, each planned again with the settings as saved now, as a dry
    /// run: nothing reaches the ESP or OPTIGEM yet. What would change is kept (the assignments, for the apply
    /// phase; the lines, as the link's preview) and the deactivations are counted for the guard (R-F8).
    async fn replan_page(&mut self, p: &mut Progress) -> Result<Step, RunError> {
        let shadow = dry::settings_shadow(self.id(), &p.id);
        if p.cursor.is_none() {
            dry::name_latest(self.r.store, &self.tenant, self.id(), &shadow).await?;
        }
        let after = p.cursor.as_deref().map(AssignmentId::new);
        let ids = self.r.store.assignments(&self.tenant, self.id(), after.as_ref(), REPLAN_PAGE).await?;
        let mut changing = Vec::new();
        let mut lines = Vec::new();
        for id in &ids {
            let input = Input::Replan { link: self.id().clone(), assignment: id.clone() };
            let plan = self.engine.dry_plan(&self.tenant, &input).await?;
            if plan.is_empty() {
                continue;
            }
            changing.push(id.clone());
            for action in &plan.esp {
                let what = match &action.op {
                    EspOp::Upsert { .. } => continue, // followed by add_to_list
                    EspOp::AddToList => PreviewAction::Create,
                    EspOp::UpdateFields { .. } => PreviewAction::Update,
                    EspOp::Activate => PreviewAction::Reactivate,
                    EspOp::RemoveFromList | EspOp::Deactivate | EspOp::Delete => {
                        p.counts.deferred += 1;
                        PreviewAction::Deactivate
                    }
                };
                lines.push(PreviewLine { action: what, email: Some(action.email.clone()), assignment: None });
            }
            for command in &plan.commands {
                if let OptigemCommand::EndAssignment { assignment, .. } = command {
                    lines.push(PreviewLine {
                        action: PreviewAction::End,
                        email: None,
                        assignment: Some(assignment.clone()),
                    });
                }
            }
        }
        dry::record(self.r.store, self.r.clock, &self.tenant.preview(), &shadow, &lines).await?;
        if !changing.is_empty() {
            let raw = serde_json::to_string(&changing).map_err(|e| RunError::State(e.to_string()))?;
            let expires = self.r.clock.now() + CHUNK_RETENTION;
            self.r
                .store
                .put_run_chunk(&self.tenant, self.id(), &format!("{}/replan", p.id), p.end_chunks, &raw, expires)
                .await?;
            p.end_chunks += 1;
        }
        p.counts.members += ids.len() as u64;
        p.counts.pages += 1;
        self.pages_now += 1;
        p.cursor = ids.last().map(|id| id.as_str().to_owned()).or(p.cursor.take());
        if ids.len() < REPLAN_PAGE {
            let report = Finished {
                kind: RunKind::Settings,
                started_at: p.started_at,
                finished_at: self.r.clock.now(),
                invocations: p.invocations,
                counts: p.counts,
                complete: true,
                failures: Vec::new(),
                error: None,
                warnings: Vec::new(),
            };
            dry::finish_settings_preview(self.r.store, self.r.clock, &self.tenant.preview(), &shadow, report).await?;
            p.phase = self.after_listing(p);
        }
        Ok(Step::Next)
    }

    /// R-A10: one chunk of the assignments the settings run's dry run found changing, re-planned through the
    /// engine (the settings are the link's as saved now; what changed since is planned anew).
    async fn apply_replans(&mut self, p: &mut Progress) -> Result<Step, RunError> {
        let after = p.cursor.as_deref().and_then(|c| c.parse().ok());
        let run = format!("{}/replan", p.id);
        let Some((index, raw)) = self.r.store.run_chunks(&self.tenant, self.id(), &run, after, 1).await?.pop() else {
            return Ok(Step::Done { error: None });
        };
        let ids: Vec<AssignmentId> = serde_json::from_str(&raw).map_err(|e| RunError::State(e.to_string()))?;
        for assignment in ids {
            self.apply(p, &Input::Replan { link: self.id().clone(), assignment }).await?;
        }
        self.pages_now += 1;
        p.cursor = Some(index.to_string());
        Ok(Step::Next)
    }

    /// Feeds one input through the engine; a failure that retrying will not mend is recorded and the run
    /// goes on, anything else stops the run (the checkpoint repeats the page).
    async fn apply(&self, p: &mut Progress, input: &Input) -> Result<(), RunError> {
        let result = self.engine.process(&self.tenant, input).await;
        self.record(p, input, result)
    }

    /// What an input fed through the engine did: counted, or a failure that retrying will not mend
    /// recorded; anything else stops the run.
    fn record(&self, p: &mut Progress, input: &Input, result: Result<Outcome, ProcessError>) -> Result<(), RunError> {
        match result {
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
        let complete = error.is_none() && progress.since.is_none() && progress.kind == RunKind::Sync;
        let error = error.or(progress.export_problem);
        if error.is_none()
            && let Some(covered) = progress.replan
        {
            // R-A10: the settings changes this run planned every assignment with.
            state.replanned = Some(state.replanned.unwrap_or(0).max(covered));
        }
        let finished = Finished {
            kind: progress.kind,
            started_at: progress.started_at,
            finished_at: now,
            invocations: progress.invocations,
            counts: progress.counts,
            complete,
            failures: progress.failures,
            error: error.clone(),
            warnings: progress.warnings,
        };
        state.history.insert(0, RunSummary::of(&finished));
        state.history.truncate(RUN_HISTORY);
        state.last = Some(finished.clone());
        if error.is_none() {
            state.last_success = Some(now);
        }
        if complete {
            // The ESP side was listed completely (even if OPTIGEM's snapshot was missing).
            state.last_complete = Some(progress.started_at);
        }
        if self.checkpoint(&state, None, version).await?.is_none() {
            return Ok(RunOutcome::Busy);
        }
        if self.link.status == LinkStatus::Linking && (error.is_none() || self.tenant.is_preview()) {
            // R-F1: linked once the first sync has finished in both directions. A dry run's own link goes
            // back to rest once it finished, with or without an error (M9: a failed one would otherwise be
            // announced by every tick and ask for a new export each time); only a new dry run runs again.
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
