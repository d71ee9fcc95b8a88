//! The scheduled run of one link: time-driven transitions (R-A9), then the ESP's list page by page, each
//! difference to the known state fed through the same engine as the webhooks.
//!
//! A run holds the link's run lease, so two runs never overlap; it saves a checkpoint (phase, cursor,
//! counts) after every page, stops between pages when its budget is spent and continues from the
//! checkpoint in the next invocation. Memory stays bounded by one page whatever the list size. Every
//! input is exactly-once by itself, so a run killed in the middle of a page repeats that page without a
//! duplicate effect.
//!
//! Differences the list shows (the ESP wins on active status):
//! - a member the link does not know that receives mail → a signup: the approval queue (R-E3, R-F5);
//! - a member known as receiving that the ESP no longer lets receive → deactivated (Brevo: blacklisted)
//!   → its assignments are ended (R-E1, R-E2).

use crate::{Engine, ProcessError};
use chrono::{DateTime, Utc};
use optisync_domain::{EspEvent, EspEventKind, Input, Link, LinkId, LinkStatus, Provider, TenantId, berlin_date};
use optisync_ports::{EspLister, ListedMember, Slice, StateStore, StoreError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

/// How long a run's lease holds if its holder dies (longer than one invocation).
pub const RUN_LEASE: chrono::Duration = chrono::Duration::minutes(16);

/// What a run has done so far (per run, saved with the checkpoint).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    /// List pages read.
    pub pages: u64,
    /// Members seen on them.
    pub members: u64,
    /// Differences fed to the engine.
    pub inputs: u64,
    /// ESP operations applied.
    pub esp_operations: u64,
    /// OPTIGEM commands issued (ends, match requests).
    pub commands: u64,
    /// Unknown receiving members sent to the approval queue.
    pub queued: u64,
    /// Members the ESP deactivated whose assignments are ended.
    pub deactivated: u64,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Time-driven transitions not applied yet.
    Due,
    /// Reading the list.
    List,
}

/// The checkpoint of a run in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// The phase.
    pub phase: Phase,
    /// The cursor of the next list page (`None`: the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Invocations so far.
    pub invocations: u64,
    /// Counts so far.
    pub counts: RunCounts,
}

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

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// The run finished.
    Finished(Finished),
    /// The budget was spent; the checkpoint holds the rest (publish `link.reconcile` again).
    Continue(Progress),
    /// Another run holds the lease (or saved a newer checkpoint): nothing done.
    Busy,
    /// The link is unknown or not linked: nothing to do.
    Skipped,
}

/// Why a run stopped with an error; the checkpoint keeps what was done, the next invocation goes on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Applying an input failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The store failed.
    #[error("state store: {0}")]
    Store(#[from] StoreError),
    /// The ESP's list could not be read.
    #[error("ESP: {0}")]
    Esp(#[from] optisync_ports::EspError),
    /// The stored run state does not decode.
    #[error("run state: {0}")]
    State(String),
}

/// Runs reconciliations.
#[derive(Clone)]
pub struct Reconciler {
    engine: Engine,
    store: Arc<dyn StateStore>,
    lister: Arc<dyn EspLister>,
    clock: Arc<dyn optisync_ports::Clock>,
}

impl Reconciler {
    /// A reconciler over the engine and the ports it reads.
    pub fn new(
        engine: Engine,
        store: Arc<dyn StateStore>,
        lister: Arc<dyn EspLister>,
        clock: Arc<dyn optisync_ports::Clock>,
    ) -> Self {
        Self { engine, store, lister, clock }
    }

    /// The link's run state (checkpoint and last finished run).
    pub async fn state(&self, link: &LinkId) -> Result<RunState, RunError> {
        Ok(self.load(link).await?.0)
    }

    /// One invocation of the link's run: starts a run or continues the checkpointed one, until it
    /// finishes or the budget is spent.
    pub async fn run(&self, tenant: &TenantId, link: &LinkId, budget: Budget) -> Result<RunOutcome, RunError> {
        let Some(link) = self.store.links(tenant).await?.into_iter().find(|l| &l.id == link) else {
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
        let result = self.run_leased(tenant, &link, budget).await;
        if let Err(e) = self.store.release_lease(&lease, &owner).await {
            tracing::warn!(error = %e, "could not release the run lease; it expires by itself");
        }
        result
    }

    async fn run_leased(&self, tenant: &TenantId, link: &Link, budget: Budget) -> Result<RunOutcome, RunError> {
        let (mut state, mut version) = self.load(&link.id).await?;
        let mut progress = state.current.take().unwrap_or_else(|| Progress {
            started_at: self.clock.now(),
            phase: Phase::Due,
            cursor: None,
            invocations: 0,
            counts: RunCounts::default(),
        });
        progress.invocations += 1;
        if progress.phase == Phase::Due {
            // R-A9: what time alone changed since the last run (the engine looks at every link's due entries).
            let date = berlin_date(self.clock.now());
            let outcome = self.engine.process(tenant, &Input::Today { date }).await?;
            progress.counts.esp_operations += outcome.esp_operations as u64;
            progress.counts.commands += outcome.commands as u64;
            progress.phase = Phase::List;
            let Some(saved) = self.save(&link.id, &state, Some(&progress), version).await? else {
                return Ok(RunOutcome::Busy);
            };
            version = Some(saved);
        }
        let mut pages_now = 0u64;
        loop {
            if budget.max_pages.is_some_and(|m| pages_now >= m) || budget.deadline.is_some_and(|d| Instant::now() >= d)
            {
                tracing::info!(pages = progress.counts.pages, "run budget spent; continuing in a new invocation");
                return Ok(RunOutcome::Continue(progress));
            }
            let page = self.lister.list_page(link, None, progress.cursor.as_deref()).await?;
            self.apply_page(tenant, link, &page.members, &mut progress).await?;
            progress.counts.pages += 1;
            pages_now += 1;
            progress.cursor = page.next;
            if progress.cursor.is_none() {
                let finished = Finished {
                    started_at: progress.started_at,
                    finished_at: self.clock.now(),
                    invocations: progress.invocations,
                    counts: progress.counts,
                };
                state.last = Some(finished.clone());
                if self.save(&link.id, &state, None, version).await?.is_none() {
                    return Ok(RunOutcome::Busy);
                }
                tracing::info!(
                    pages = finished.counts.pages,
                    inputs = finished.counts.inputs,
                    invocations = finished.invocations,
                    "run finished"
                );
                return Ok(RunOutcome::Finished(finished));
            }
            let Some(saved) = self.save(&link.id, &state, Some(&progress), version).await? else {
                return Ok(RunOutcome::Busy);
            };
            version = Some(saved);
        }
    }

    /// Feeds the differences between one page and the known state through the engine.
    async fn apply_page(
        &self,
        tenant: &TenantId,
        link: &Link,
        members: &[ListedMember],
        progress: &mut Progress,
    ) -> Result<(), RunError> {
        progress.counts.members += members.len() as u64;
        let slice = Slice { assignments: Vec::new(), emails: members.iter().map(|m| m.email.clone()).collect() };
        let known = self.store.load(link, &slice).await?.view;
        for member in members {
            let state = known.recipients.get(&member.email);
            let receiving = state.is_some_and(|r| r.listed && r.active);
            let at = member.changed_at.unwrap_or(progress.started_at);
            let what = if member.active && state.is_none() {
                progress.counts.queued += 1;
                EspEventKind::Signup { signup: member.signup.clone() }
            } else if !member.active && receiving {
                progress.counts.deactivated += 1;
                if member.blacklisted && link.esp.provider == Provider::Brevo {
                    EspEventKind::Blacklisted
                } else {
                    EspEventKind::Deactivated
                }
            } else {
                continue;
            };
            let list = (what != EspEventKind::Blacklisted).then(|| link.list.clone());
            let event = EspEvent { esp: link.esp.clone(), list, email: member.email.clone(), at, what };
            let outcome = self.engine.process(tenant, &Input::Esp(event)).await?;
            progress.counts.inputs += 1;
            progress.counts.esp_operations += outcome.esp_operations as u64;
            progress.counts.commands += outcome.commands as u64;
        }
        Ok(())
    }

    async fn load(&self, link: &LinkId) -> Result<(RunState, Option<u64>), RunError> {
        match self.store.run_state(link).await? {
            Some((raw, version)) => {
                let state = serde_json::from_str(&raw).map_err(|e| RunError::State(e.to_string()))?;
                Ok((state, Some(version)))
            }
            None => Ok((RunState::default(), None)),
        }
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
        let stored = RunState { current: current.cloned(), last: state.last.clone() };
        let raw = serde_json::to_string(&stored).map_err(|e| RunError::State(e.to_string()))?;
        match self.store.save_run_state(link, &raw, version).await {
            Ok(()) => Ok(Some(version.unwrap_or(0) + 1)),
            Err(StoreError::Conflict) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
