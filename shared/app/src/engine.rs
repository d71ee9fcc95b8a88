//! The sync engine. [`Engine::process`] is the one path every input takes: OPTIGEM change events, ESP
//! observations and the scheduled run's "today is D".
//!
//! Effects happen exactly once under at-least-once delivery: the planner plans target states, the ESP
//! operations are applied first (each safe to repeat), then the state and the OPTIGEM commands are
//! committed atomically, conditional on the versions read. A lost race reloads and plans again; an
//! error leaves nothing committed, so a retry of the same input does the work once more.

use chrono::NaiveDate;
use optisync_domain::{
    AssignmentId, Email, EspEventKind, Input, Known, Link, LinkId, LinkStatus, LinkView, OptigemCommand, TenantId,
    audit_entries, calendar, plan, rules,
};
use optisync_ports::names::lease;
use optisync_ports::{
    Clock, Commit, EspError, EspGateway, EspReader, ItemKey, ReportNotifier, Slice, StateStore, StoreError,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How often a commit that lost a race is planned again before giving up (the input stays retryable).
pub const MAX_ATTEMPTS: u32 = 12;

/// How long a recipient lease holds if its holder dies (longer than any one input takes).
pub const LEASE_TTL: chrono::Duration = chrono::Duration::seconds(60);

/// H4, R-A9: the most due mirror entries one `Today` input plans, over all links of the tenant together.
/// An ending assignment writes its mirror entry and recipient state (and, with an end command, the
/// command's marker and feed entry), so 20 stay well inside one transaction (`MAX_COMMIT_ITEMS`) with
/// each link's audit entry; [`Engine::process_due_page`] is called until nothing is due.
pub const DUE_PAGE: usize = 20;

/// What one page of due transitions did ([`Engine::process_due_page`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DuePage {
    /// What the page's input did.
    pub outcome: Outcome,
    /// Mirror entries the page planned.
    pub entries: usize,
    /// More entries are due: call again.
    pub more: bool,
}

/// What processing one input did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// ESP operations applied.
    pub esp_operations: usize,
    /// OPTIGEM commands planned (the feed keeps each id once).
    pub commands: usize,
    /// State items written.
    pub writes: usize,
    /// Attempts needed (more than one when a concurrent writer won a race).
    pub attempts: u32,
    /// Recipients created in the ESP or put on the list (R-D1, R-F2, R-F3).
    pub created: usize,
    /// Recipients whose mapped fields were written (R-D3, R-F2).
    pub updated: usize,
    /// Recipients deactivated in the list or taken off it (R-D2, R-E2, R-G5).
    pub deactivated: usize,
    /// Signups sent to the approval queue (a `match_persons` request each, R-C2, R-C3).
    pub queued: usize,
    /// Assignments OPTIGEM is asked to end (R-E1).
    pub ended: usize,
}

impl Outcome {
    /// The counts of a plan.
    fn of(plan: &optisync_domain::Plan, attempts: u32) -> Self {
        use optisync_domain::{EspOp, OptigemCommand};
        let ops = |f: fn(&EspOp) -> bool| plan.esp.iter().filter(|a| f(&a.op)).count();
        let commands = |f: fn(&OptigemCommand) -> bool| plan.commands.iter().filter(|c| f(c)).count();
        Self {
            esp_operations: plan.esp.len(),
            commands: plan.commands.len(),
            writes: plan.writes.len(),
            attempts,
            created: ops(|op| matches!(op, EspOp::AddToList)),
            updated: ops(|op| matches!(op, EspOp::UpdateFields { .. })),
            deactivated: ops(|op| matches!(op, EspOp::Deactivate | EspOp::RemoveFromList)),
            queued: commands(|c| matches!(c, OptigemCommand::MatchPersons { .. })),
            ended: commands(|c| matches!(c, OptigemCommand::EndAssignment { .. })),
        }
    }
}

/// Why an input could not be processed now. Every variant leaves the input retryable.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The store failed.
    #[error("state store: {0}")]
    Store(#[from] StoreError),
    /// The ESP failed.
    #[error("ESP: {0}")]
    Esp(#[from] EspError),
    /// Concurrent writers kept winning.
    #[error("gave up after {0} attempts lost to concurrent writers")]
    Contention(u32),
}

impl ProcessError {
    /// Whether trying again later may succeed (HTTP 429 rather than a dead letter).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Store(StoreError::Permanent(_)) | Self::Esp(EspError::Rejected(_) | EspError::Unauthorized) => false,
            Self::Store(_) | Self::Esp(EspError::Transient { .. }) | Self::Contention(_) => true,
        }
    }
}

/// The sync engine over the ports.
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn StateStore>,
    esp: Arc<dyn EspGateway>,
    clock: Arc<dyn Clock>,
    reader: Option<Arc<dyn EspReader>>,
    notifier: Option<Arc<dyn ReportNotifier>>,
}

impl Engine {
    /// An engine over a store, an ESP gateway and a clock.
    pub fn new(store: Arc<dyn StateStore>, esp: Arc<dyn EspGateway>, clock: Arc<dyn Clock>) -> Self {
        Self { store, esp, clock, reader: None, notifier: None }
    }

    /// With a reader that completes a signup whose report carried no names before it is queued (R-E3,
    /// R-C3: Brevo's `list_addition`); the worker's engine has one.
    pub fn with_reader(mut self, reader: Arc<dyn EspReader>) -> Self {
        self.reader = Some(reader);
        self
    }

    /// With a notifier that delivers a deletion report right after the commit that made it (R-J2, best
    /// effort: the scheduler's tick delivers what this misses).
    pub fn with_notifier(mut self, notifier: Arc<dyn ReportNotifier>) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// Processes one input with exactly-once effects.
    ///
    /// The recipients the input touches are leased first: ESP operations happen before the commit, so
    /// two writers on one recipient must not interleave, or an older value could reach the ESP last.
    pub async fn process(&self, tenant: &TenantId, input: &Input) -> Result<Outcome, ProcessError> {
        let leases = self.leases(tenant, input).await?;
        let owner = format!("{:032x}", rand::random::<u128>());
        self.acquire(&leases, &owner).await?;
        let result = self.process_leased(tenant, input).await;
        self.release(&leases, &owner).await;
        result
    }

    /// Processes several inputs (a run's deferred ends) with the effects each has alone, their ESP
    /// operations sent together: one [`EspGateway::apply_batch`] for the inputs whose recipients no
    /// earlier one of the batch touches, so a Brevo list removal takes 150 addresses a call instead of one.
    /// One result per input, in order, as [`Engine::process`] gives it: an input whose operations the ESP
    /// did not all apply (an address its batch answer lists as failed) commits nothing and stays
    /// retryable; the others commit. One that loses its commit to a concurrent writer is processed again
    /// by itself.
    pub async fn process_batch(&self, tenant: &TenantId, inputs: &[Input]) -> Vec<Result<Outcome, ProcessError>> {
        let mut results: Vec<Option<Result<Outcome, ProcessError>>> = inputs.iter().map(|_| None).collect();
        let mut pending: Vec<(usize, Vec<String>)> = Vec::new();
        for (i, input) in inputs.iter().enumerate() {
            match self.leases(tenant, input).await {
                Ok(leases) => pending.push((i, leases)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        while !pending.is_empty() {
            // The inputs of one batch lease disjoint recipients; one sharing a recipient waits for the next.
            let mut taken = std::collections::BTreeSet::new();
            let (batch, later): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(_, leases)| {
                let free = leases.iter().all(|l| !taken.contains(l));
                if free {
                    taken.extend(leases.iter().cloned());
                }
                free
            });
            pending = later;
            let leases: Vec<String> = taken.into_iter().collect();
            let owner = format!("{:032x}", rand::random::<u128>());
            if self.acquire(&leases, &owner).await.is_err() {
                // Contended: each input takes its own leases, one by one.
                for (i, _) in batch {
                    results[i] = Some(self.process(tenant, &inputs[i]).await);
                }
                continue;
            }
            for (i, result) in self.process_batch_leased(tenant, inputs, &batch).await {
                results[i] = Some(result);
            }
            self.release(&leases, &owner).await;
        }
        results.into_iter().map(|r| r.unwrap_or(Err(ProcessError::Contention(0)))).collect()
    }

    /// One batch under its leases: every input planned, the plans' ESP operations applied together, each
    /// input whose operations all reached the ESP committed.
    async fn process_batch_leased(
        &self,
        tenant: &TenantId,
        inputs: &[Input],
        batch: &[(usize, Vec<String>)],
    ) -> Vec<(usize, Result<Outcome, ProcessError>)> {
        let mut done = Vec::with_capacity(batch.len());
        let mut planned = Vec::with_capacity(batch.len());
        for (i, _) in batch {
            let mut completed = None;
            match self.plan_once(tenant, &inputs[*i], &mut completed).await {
                Ok(p) => planned.push((*i, completed, p)),
                Err(e) => done.push((*i, Err(e))),
            }
        }
        let groups: Vec<Vec<optisync_domain::EspAction>> = planned.iter().map(|(_, _, p)| p.plan.esp.clone()).collect();
        let applied = if groups.iter().all(Vec::is_empty) {
            groups.iter().map(|_| Ok(())).collect()
        } else {
            self.esp.apply_batch(&groups).await
        };
        for ((i, completed, p), applied) in planned.into_iter().zip(applied) {
            let given = &inputs[i];
            let result = match applied {
                Err(e) => Err(e.into()),
                Ok(()) => match self.commit_planned(tenant, completed.as_ref().unwrap_or(given), p, 1).await {
                    Err(StoreError::Conflict) => self.process_leased(tenant, given).await,
                    other => other.map_err(Into::into),
                },
            };
            done.push((i, result));
        }
        done
    }

    /// The leases an input needs: every recipient it may touch (sorted, each once).
    async fn leases(&self, tenant: &TenantId, input: &Input) -> Result<Vec<String>, ProcessError> {
        let (known, _) = self.load(tenant, input).await?;
        let mut leases: Vec<String> = known
            .links
            .iter()
            .flat_map(|v| v.mirror.values().filter_map(|e| e.email.clone()).chain(v.recipients.keys().cloned()))
            .chain(input_emails(input))
            .map(|e| lease::recipient(tenant, e.key()))
            .collect();
        leases.sort();
        leases.dedup();
        Ok(leases)
    }

    async fn release(&self, leases: &[String], owner: &str) {
        for lease in leases {
            if let Err(e) = self.store.release_lease(lease, owner).await {
                tracing::warn!(error = %e, "could not release a lease; it expires by itself");
            }
        }
    }

    /// What processing `input` now would do, without doing it: the plan over the state as stored, with no
    /// lease taken, nothing applied to the ESP and nothing committed (the dry run of a settings change,
    /// R-A10, R-F8).
    pub async fn dry_plan(&self, tenant: &TenantId, input: &Input) -> Result<optisync_domain::Plan, ProcessError> {
        let (known, _) = self.load(tenant, input).await?;
        Ok(plan(&known, input, self.clock.now()))
    }

    /// Everything the tenant's links hold about one address, as the planner would see it for its erasure:
    /// recipient states, approval entries, the mirror entries carrying it, and the keyed-hash tombstone
    /// of an erased one (R-J7: a data-subject access request).
    pub async fn subject(&self, tenant: &TenantId, email: &Email) -> Result<Known, StoreError> {
        let input = Input::EraseOnRequest { email: email.clone(), request: optisync_domain::CommandId::new("lookup") };
        Ok(self.load(tenant, &input).await?.0)
    }

    /// Takes every lease (in sorted order, so two processors cannot deadlock), waiting with jitter.
    async fn acquire(&self, leases: &[String], owner: &str) -> Result<(), ProcessError> {
        for lease in leases {
            let mut attempt = 0;
            loop {
                let now = self.clock.now();
                if self.store.try_lease(lease, owner, now, now + LEASE_TTL).await? {
                    break;
                }
                attempt += 1;
                if attempt >= MAX_ATTEMPTS * 4 {
                    for taken in leases.iter().take_while(|l| *l != lease) {
                        let _ = self.store.release_lease(taken, owner).await;
                    }
                    return Err(ProcessError::Contention(attempt));
                }
                backoff(attempt).await;
            }
        }
        Ok(())
    }

    async fn process_leased(&self, tenant: &TenantId, given: &Input) -> Result<Outcome, ProcessError> {
        // A signup completed with what the ESP holds, read at most once per input (R-E3).
        let mut completed: Option<Input> = None;
        for attempt in 1..=MAX_ATTEMPTS {
            let planned = self.plan_once(tenant, given, &mut completed).await?;
            if !planned.plan.esp.is_empty() {
                self.esp.apply(&planned.plan.esp).await?;
            }
            match self.commit_planned(tenant, completed.as_ref().unwrap_or(given), planned, attempt).await {
                Ok(outcome) => return Ok(outcome),
                Err(StoreError::Conflict) => {
                    // Only a writer without the lease (an expired one) gets here: plan again.
                    tracing::debug!(attempt, "lost a race to a concurrent writer; planning again");
                    backoff(attempt).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ProcessError::Contention(MAX_ATTEMPTS))
    }

    /// One attempt's plan over the state as read now; `completed` keeps a signup completed with what the
    /// ESP holds, so it is read at most once per input (R-E3).
    async fn plan_once(
        &self,
        tenant: &TenantId,
        given: &Input,
        completed: &mut Option<Input>,
    ) -> Result<Planned, ProcessError> {
        let now = self.clock.now();
        let current = completed.as_ref().unwrap_or(given);
        let (mut known, versions) = self.load(tenant, current).await?;
        self.observe(&mut known, current).await?;
        let mut plan = plan(&known, current, now);
        if completed.is_none()
            && let Some(reader) = &self.reader
            && let Some((link, email)) = queued_without_names(&known, given, &plan)
        {
            let read = reader.signup(link, email).await?;
            let with_names = with_signup_names(given, read.unwrap_or_default());
            plan = optisync_domain::plan(&known, &with_names, now);
            *completed = Some(with_names);
        }
        Ok(Planned { now, known, versions, plan })
    }

    /// Commits a plan whose ESP operations were applied: the erasures first, then the state, the
    /// commands and the audit, conditional on the versions read.
    async fn commit_planned(
        &self,
        tenant: &TenantId,
        input: &Input,
        planned: Planned,
        attempt: u32,
    ) -> Result<Outcome, StoreError> {
        let Planned { now, known, versions, plan } = planned;
        let outcome = Outcome::of(&plan, attempt);
        let audit = audit_entries(&known, input, &plan, now);
        let expiry = crate::retention::plan_expiry(tenant, &known, &plan); // R-J6
        let writes = plan.writes.into_iter().map(|w| {
            let expected = versions.get(&ItemKey::of(&w)).copied();
            (w, expected)
        });
        let ends = plan.commands.iter().filter(|c| matches!(c, OptigemCommand::EndAssignment { .. })).count();
        // R-J2, R-J3: the store forgets an erased recipient before the commit that writes the report;
        // interrupted in between, the input is planned again from the keyed hash (the store hashes with
        // the tenant's key) and finishes.
        for erasure in &plan.erasures {
            self.store.erase_recipient(tenant, &erasure.link, &erasure.email, &erasure.tombstone).await?;
        }
        let reported = plan.commands.iter().any(|c| matches!(c, OptigemCommand::ErasureReport { .. }));
        let commit = Commit { writes: writes.collect(), commands: plan.commands, audit, expiry };
        self.store.commit(tenant, commit).await?;
        if reported && let Some(notifier) = &self.notifier {
            // R-J2: best effort; a failure leaves the report in the outbox for the tick.
            let delivered = crate::reports::deliver(&*self.store, &**notifier, tenant, now).await;
            if let Err(e) = delivered {
                tracing::warn!(error = %e, "deletion report delivery deferred to the next tick");
            }
        }
        if !tenant.is_preview() {
            optisync_ports::metrics::assignments_ended(ends as u64);
        }
        tracing::debug!(attempt, esp = outcome.esp_operations, commands = outcome.commands, "input processed");
        Ok(outcome)
    }

    /// Loads the links an input may touch and, of each, the slice the planner needs.
    /// R-D1: before an OPTIGEM assignment puts a recipient the link holds no state of on its list, read
    /// what the ESP shows of it (a CleverReach receiver inactive since 2023, a Brevo contact blacklisted
    /// from a list that is not linked), so the planner activates it instead of a later listing ending the
    /// new assignment. Not at the first sync (the ESP wins there, R-F3) and not for an assignment that
    /// is not active (it lists nobody).
    async fn observe(&self, known: &mut Known, input: &Input) -> Result<(), EspError> {
        let Input::AssignmentChanged { assignment } = input else { return Ok(()) };
        let Some(email) = rules::email_used(assignment) else { return Ok(()) };
        for view in &mut known.links {
            let unseen = !view.recipients.contains_key(email) && !view.observed.contains_key(email);
            let today = calendar::berlin_date(self.clock.now());
            let active = rules::verdict(assignment, &view.link.settings, &known.tenant, today).is_active();
            if view.link.status == LinkStatus::Linked
                && unseen
                && active
                && let Some(observed) = self.esp.observe(&view.link, email).await?
            {
                view.observed.insert(email.clone(), observed);
            }
        }
        Ok(())
    }

    /// H4, R-A9: one page of the transitions time alone makes due on `date`: at most [`DUE_PAGE`] due
    /// mirror entries of the tenant's links, planned and committed as one `Today` input (each page
    /// atomic; a page repeated after a crash finds its entries moved on and plans nothing for them).
    /// `more` says entries are still due; a page whose entries the plan did not move on is not repeated
    /// (a warning, `DueStuck`), so a caller looping while `more` always ends.
    pub async fn process_due_page(&self, tenant: &TenantId, date: NaiveDate) -> Result<DuePage, ProcessError> {
        let before = self.due_page(tenant, date).await?;
        if before.is_empty() {
            return Ok(DuePage::default());
        }
        let outcome = self.process(tenant, &Input::Today { date }).await?;
        let after = self.due_page(tenant, date).await?;
        let stuck = after == before;
        if stuck {
            tracing::warn!(metric = "DueStuck", entries = after.len(), "due entries the plan left due; not repeated");
        }
        Ok(DuePage { outcome, entries: before.len(), more: !after.is_empty() && !stuck })
    }

    /// The due entries the next `Today` input plans: up to [`DUE_PAGE`] over the tenant's links in order.
    async fn due_page(&self, tenant: &TenantId, date: NaiveDate) -> Result<Vec<(LinkId, AssignmentId)>, StoreError> {
        let mut page = Vec::new();
        for link in self.store.links(tenant).await?.into_iter().filter(|l| l.status != LinkStatus::NotLinked) {
            let left = DUE_PAGE - page.len();
            if left == 0 {
                break;
            }
            page.extend(self.store.due(&link, date, left).await?.into_iter().map(|id| (link.id.clone(), id)));
        }
        Ok(page)
    }

    async fn load(&self, tenant: &TenantId, input: &Input) -> Result<(Known, BTreeMap<ItemKey, u64>), StoreError> {
        // A dry run plans with the settings of the tenant it stands for (R-F8, R-J6).
        let settings = self.store.tenant_settings(&tenant.real()).await?;
        let links = match input {
            Input::AssignmentChanged { assignment } => {
                self.store.links_for_newsletter(tenant, &assignment.newsletter).await?
            }
            Input::AssignmentDeleted { newsletter, .. } => self.store.links_for_newsletter(tenant, newsletter).await?,
            Input::Esp(event) => self.store.links_for_account(tenant, &event.esp).await?,
            Input::Today { .. } => self.store.links(tenant).await?,
            Input::Replan { link, .. } => self.store.link(tenant, link).await?.into_iter().collect(),
            // R-J2: the other links of the account decide whether a Brevo contact may go.
            Input::EndConfirmed { .. } => self.store.links(tenant).await?,
            // R-J7: a request erases the address from every link of the tenant.
            Input::EraseOnRequest { .. } => self.store.links(tenant).await?,
        };
        // A link not (or no longer) linked takes no part: unlinking stops its sync (R-F1). A data-subject
        // request covers everything the service holds, an unlinked link's state too (R-J7).
        let every = matches!(input, Input::EraseOnRequest { .. });
        let links = links.into_iter().filter(|l| every || l.status != optisync_domain::LinkStatus::NotLinked);
        let mut known = Known { tenant: settings, links: Vec::new() };
        let mut versions = BTreeMap::new();
        // H4: a `Today` input takes at most `DUE_PAGE` due entries over all links together.
        let mut due_left = DUE_PAGE;
        for link in links {
            let view = self.load_link(&link, input, &mut due_left).await?;
            versions.extend(view.versions);
            known.links.push(view.view);
        }
        self.load_other_holders(input, &mut known, &mut versions).await?;
        Ok((known, versions))
    }

    /// R-J2: a confirmed end on a link in erasure mode may delete a Brevo contact only if no other link of
    /// the account holds it. The ended assignment names the address in its own link's mirror only, so the
    /// other links of the same account are loaded again with that address. Nothing is read where no link
    /// of the tenant is in erasure mode.
    async fn load_other_holders(
        &self,
        input: &Input,
        known: &mut Known,
        versions: &mut BTreeMap<ItemKey, u64>,
    ) -> Result<(), StoreError> {
        let Input::EndConfirmed { assignment, .. } = input else { return Ok(()) };
        let erasing: Vec<(optisync_domain::EspAccount, Vec<Email>)> = known
            .links
            .iter()
            .filter(|v| v.link.settings.unsubscribe_mode == optisync_domain::UnsubscribeMode::Erasure)
            .map(|v| (v.link.esp.clone(), emails_of(v)))
            .filter(|(_, emails)| !emails.is_empty())
            .collect();
        for view in &mut known.links {
            let emails: Vec<Email> = erasing
                .iter()
                .filter(|(esp, _)| *esp == view.link.esp)
                .flat_map(|(_, emails)| emails.iter().filter(|e| !view.recipients.contains_key(*e)).cloned())
                .collect();
            if emails.is_empty() {
                continue;
            }
            let slice = Slice { assignments: vec![assignment.clone()], emails };
            let loaded = self.store.load(&view.link, &slice).await?;
            versions.extend(loaded.versions);
            view.recipients.extend(loaded.view.recipients);
        }
        Ok(())
    }

    async fn load_link(
        &self,
        link: &Link,
        input: &Input,
        due_left: &mut usize,
    ) -> Result<optisync_ports::LoadedView, StoreError> {
        let mut slice = Slice::default();
        match input {
            Input::AssignmentChanged { assignment } => {
                slice.assignments.push(assignment.id.clone());
                slice.emails.extend(rules::email_used(assignment).cloned());
            }
            Input::AssignmentDeleted { id, .. } => slice.assignments.push(id.clone()),
            Input::Esp(event) => {
                slice.emails.push(event.email.clone());
                if let EspEventKind::EmailChanged { new_email, .. } = &event.what {
                    slice.emails.push(new_email.clone());
                }
            }
            Input::Today { date } => {
                slice.assignments =
                    if *due_left == 0 { Vec::new() } else { self.store.due(link, *date, *due_left).await? };
                *due_left -= slice.assignments.len();
            }
            Input::Replan { assignment, .. } => slice.assignments.push(assignment.clone()),
            Input::EndConfirmed { assignment, .. } => slice.assignments.push(assignment.clone()),
            Input::EraseOnRequest { email, .. } => slice.emails.push(email.clone()),
        }
        // The e-mails the loaded entries use (an old address, the members of a due entry's group) are
        // needed too: load again with them.
        let first = self.store.load(link, &slice).await?;
        let more: Vec<Email> = emails_of(&first.view).into_iter().filter(|e| !slice.emails.contains(e)).collect();
        let mut loaded = if more.is_empty() {
            first
        } else {
            slice.emails.extend(more);
            self.store.load(link, &slice).await?
        };
        self.load_erased(link, &slice.emails, &mut loaded.view).await?;
        Ok(loaded)
    }

    /// R-J2, R-J3: of the e-mails loaded that the link holds no state of, the erased ones by their keyed
    /// hash, so the planner applies the same safety net as to a tombstone in a recipient state, and does
    /// not mirror an erased address's ended assignment again. An erasure leaves no state of the address
    /// in the link (the store drops its tombstone item too), so an address with a state was subscribed
    /// again after its erasure and needs no extra read.
    async fn load_erased(&self, link: &Link, emails: &[Email], view: &mut LinkView) -> Result<(), StoreError> {
        for email in emails {
            if view.recipients.contains_key(email) || view.erased.contains_key(email) {
                continue;
            }
            if let Some(tombstone) = self.store.erased(&link.tenant, email).await? {
                view.erased.insert(email.clone(), tombstone);
            }
        }
        Ok(())
    }
}

/// One attempt's plan of an input, with the state it was planned over.
struct Planned {
    now: chrono::DateTime<chrono::Utc>,
    known: Known,
    versions: BTreeMap<ItemKey, u64>,
    plan: optisync_domain::Plan,
}

/// R-E3, R-C3: the link whose approval queue this plan puts a Brevo signup in without names because its
/// report named none (a `list_addition` has no attributes), when the link maps a name: the ESP is asked
/// once for the contact's names before the entry is queued, so the entry and OPTIGEM's `match_persons`
/// have them.
fn queued_without_names<'a, 'b>(
    known: &'a Known,
    input: &'b Input,
    plan: &optisync_domain::Plan,
) -> Option<(&'a Link, &'b Email)> {
    let Input::Esp(event) = input else { return None };
    let (EspEventKind::Signup { signup }, Some(list)) = (&event.what, &event.list) else { return None };
    if event.esp.provider != optisync_domain::Provider::Brevo || signup.has_names() {
        return None;
    }
    let queued = plan.writes.iter().any(|w| match w {
        optisync_domain::StateWrite::Approval { entry } => {
            entry.email == event.email
                && entry.status == optisync_domain::ApprovalStatus::Pending
                && !entry.signup.has_names()
        }
        _ => false,
    });
    let mapped = |l: &Link| l.settings.mapping.first_name.is_some() || l.settings.mapping.last_name.is_some();
    let link =
        known.links.iter().map(|v| &v.link).find(|l| queued && l.esp == event.esp && &l.list == list && mapped(l));
    link.map(|l| (l, &event.email))
}

/// The signup input with the names the ESP holds; its time and consent evidence stay the report's (R-J1).
fn with_signup_names(input: &Input, names: optisync_domain::Signup) -> Input {
    let mut input = input.clone();
    if let Input::Esp(event) = &mut input
        && let EspEventKind::Signup { signup } = &mut event.what
    {
        signup.first_name = names.first_name;
        signup.last_name = names.last_name;
    }
    input
}

/// Full-jitter backoff, so that writers who collided do not collide again in step.
async fn backoff(attempt: u32) {
    let ceiling = 2u64.pow(attempt.min(7)) * 5;
    tokio::time::sleep(Duration::from_millis(rand::random_range(0..ceiling))).await;
}

/// The e-mails an input names itself.
fn input_emails(input: &Input) -> Vec<Email> {
    match input {
        Input::AssignmentChanged { assignment } => rules::email_used(assignment).cloned().into_iter().collect(),
        Input::EraseOnRequest { email, .. } => vec![email.clone()],
        Input::Esp(event) => {
            let mut emails = vec![event.email.clone()];
            if let EspEventKind::EmailChanged { new_email, .. } = &event.what {
                emails.push(new_email.clone());
            }
            emails
        }
        Input::AssignmentDeleted { .. } | Input::Today { .. } | Input::Replan { .. } | Input::EndConfirmed { .. } => {
            Vec::new()
        }
    }
}

fn emails_of(view: &LinkView) -> Vec<Email> {
    view.mirror.values().filter_map(|e| e.email.clone()).collect()
}
