//! The scheduled run's test harness: a link over the in-memory store, ESP and clock, the engine that
//! OPTIGEM's changes go through, and the reconciler.
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Europe::Berlin;
use optisync_app::Engine;
use optisync_app::reconcile::{Budget, Phase, Reconciler, RunOutcome};
use optisync_domain::*;
use optisync_ports::Clock;
use optisync_ports::prelude::*;
use optisync_testkit::build;
use optisync_testkit::memory::{FixedClock, MemoryEsp, MemoryStore};
use std::sync::Arc;

pub fn berlin(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Berlin.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap().with_timezone(&Utc)
}

pub fn tenant() -> TenantId {
    TenantId::new("t1")
}

pub fn link(provider: Provider) -> Link {
    build::link(format!("{provider}-nl"), "t1", "NL-1", build::esp(provider, "acc"), "list-1")
}

pub fn assignment(id: &str, mail: &str, end: Option<&str>, at: DateTime<Utc>) -> Assignment {
    Assignment { end: end.map(|e| e.parse().unwrap()), ..build::assignment(id, "NL-1", mail, at) }
}

pub struct Harness {
    pub store: Arc<MemoryStore>,
    pub esp: Arc<MemoryEsp>,
    pub clock: Arc<FixedClock>,
    pub engine: Engine,
    pub reconciler: Reconciler,
    pub link: Link,
    /// OPTIGEM's assignments as the connector exports them: every change the harness fed.
    pub optigem: std::sync::Mutex<std::collections::BTreeMap<String, Assignment>>,
}

pub async fn harness(provider: Provider, now: DateTime<Utc>) -> Harness {
    let store = Arc::new(MemoryStore::new());
    let esp = Arc::new(MemoryEsp::new());
    let clock = Arc::new(FixedClock::new(now));
    let engine = Engine::new(store.clone(), esp.clone(), clock.clone());
    let reconciler = Reconciler::new(store.clone(), esp.clone(), esp.clone(), store.clone(), clock.clone());
    let link = link(provider);
    store.put_link(&link).await.unwrap();
    Harness { store, esp, clock, engine, reconciler, link, optigem: Default::default() }
}

impl Harness {
    pub async fn change(&self, a: Assignment) {
        self.remember(&a);
        self.engine.process(&tenant(), &Input::AssignmentChanged { assignment: a }).await.unwrap();
    }

    /// One invocation; a reconciliation that asks OPTIGEM for its snapshot gets it at once (the
    /// connector answers with OPTIGEM's assignments) and goes on in a second invocation.
    pub async fn run(&self, budget: Budget) -> RunOutcome {
        let outcome = self.run_once(budget).await;
        match &outcome {
            RunOutcome::Waiting(p) if p.phase == Phase::AwaitExport && self.reconciling().await => {
                self.answer_with_optigem().await;
                self.run_once(budget).await
            }
            _ => outcome,
        }
    }

    /// Exactly one invocation.
    pub async fn run_once(&self, budget: Budget) -> RunOutcome {
        self.reconciler.run(&tenant(), &self.link.id, budget).await.unwrap()
    }

    /// The link is linked (its runs are reconciliations, not first syncs).
    async fn reconciling(&self) -> bool {
        let links = self.store.links(&tenant()).await.unwrap();
        links.iter().any(|l| l.id == self.link.id && l.status == LinkStatus::Linked)
    }

    /// The connector answers the export with OPTIGEM's assignments, 200 a page (the most, M8).
    pub async fn answer_with_optigem(&self) -> CommandId {
        let snapshot: Vec<Assignment> = self.optigem.lock().unwrap().values().cloned().collect();
        self.answer_export_paged(&snapshot, 200).await
    }

    fn remember(&self, a: &Assignment) {
        let mut optigem = self.optigem.lock().unwrap();
        if optigem.get(a.id.as_str()).is_none_or(|known| known.version <= a.version) {
            optigem.insert(a.id.as_str().to_owned(), a.clone());
        }
    }

    /// Runs invocation after invocation until the run finishes; the connector answers every export with
    /// OPTIGEM's assignments.
    pub async fn run_to_end(&self) -> optisync_app::reconcile::Finished {
        loop {
            match self.run(Budget::default()).await {
                RunOutcome::Finished(f) => return f,
                RunOutcome::Continue(_) => {}
                RunOutcome::Waiting(p) if p.phase == Phase::AwaitExport => {
                    self.answer_with_optigem().await;
                }
                other => panic!("expected a finished run, got {other:?}"),
            }
        }
    }

    /// The commands that change something in OPTIGEM (every one but the exports).
    pub async fn feed(&self) -> Vec<OptigemCommand> {
        let all = self.store.commands(&tenant(), 0, 100_000).await.unwrap().into_iter().map(|(_, c)| c);
        all.filter(|c| !matches!(c, OptigemCommand::ExportNewsletter { .. })).collect()
    }

    pub async fn audit_len(&self) -> usize {
        self.store.audit(&self.link.tenant, &self.link.id, self.clock.now(), 100_000).await.unwrap().len()
    }

    pub fn receiving(&self) -> Vec<String> {
        self.esp.receiving(&self.link.esp, &self.link.list).into_iter().collect()
    }
}

pub fn named(id: &str, mail: &str, first: &str, at: DateTime<Utc>) -> Assignment {
    let mut a = assignment(id, mail, None, at);
    a.person.first_name = Some(PersonalText::new(first));
    a
}

impl Harness {
    /// The connector's part of an export: the snapshot pages (two assignments each), then the result.
    pub async fn answer_export(&self, assignments: &[Assignment]) -> CommandId {
        self.answer_export_paged(assignments, 2).await
    }

    /// The connector's part of an export: the snapshot pages (`per_page` assignments each), then the result.
    pub async fn answer_export_paged(&self, assignments: &[Assignment], per_page: usize) -> CommandId {
        let all = self.store.commands(&tenant(), 0, 100_000).await.unwrap();
        let export = all
            .into_iter()
            .rev()
            .find_map(|(_, c)| match c {
                OptigemCommand::ExportNewsletter { id, .. } => Some(id),
                _ => None,
            })
            .expect("an export was asked for");
        for a in assignments {
            self.remember(a);
        }
        let pages: Vec<&[Assignment]> = assignments.chunks(per_page).collect();
        for (n, page) in pages.iter().enumerate() {
            let body = serde_json::json!({
                "newsletter": "NL-1", "last": n + 1 == pages.len(), "assignments": page,
            });
            let body = serde_json::to_vec(&body).unwrap();
            let (store, now) = (self.store.as_ref(), self.clock.now());
            optisync_app::optigem::accept_snapshot_page(store, store, &tenant(), &export, n as u32 + 1, &body, now)
                .await
                .unwrap();
        }
        self.store.record_result(&tenant(), &export, &CommandResult::done()).await.unwrap();
        export
    }

    pub async fn approvals(&self, link: &LinkId, email: &str) -> Option<ApprovalEntry> {
        let email = Email::parse(email).unwrap();
        let link = self.store.links(&tenant()).await.unwrap().into_iter().find(|l| &l.id == link).unwrap();
        let slice = optisync_ports::Slice { assignments: vec![], emails: vec![email.clone()] };
        self.store.load(&link, &slice).await.unwrap().view.approvals.get(&email).cloned()
    }

    pub fn ends_of(feed: &[OptigemCommand]) -> Vec<String> {
        feed.iter()
            .filter_map(|c| match c {
                OptigemCommand::EndAssignment { assignment, .. } => Some(assignment.to_string()),
                _ => None,
            })
            .collect()
    }
}
