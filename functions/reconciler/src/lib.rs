//! reconciler: on `link.reconcile` from EventBridge, one invocation of that link's scheduled run
//! ([`optisync_app::reconcile::Reconciler::run`]): the first sync, the six-hourly reconciliation, a dry
//! run, or the settings run that re-plans a link's assignments after a settings change (R-A10). On the daily `optisync.due` schedule (just after midnight Europe/Berlin), the transitions time
//! alone makes due for every tenant ([`optisync_app::schedule::apply_due`], R-A11), whatever the links'
//! runs are doing. It stops a minute before the Lambda's deadline and announces itself again to continue from the
//! checkpoint. A delivery that finds the link's run lease held waits the lease out once (M9, [`busy_wait`]):
//! a run whose invocation died is continued by it, a live one is left to announce its own continuation.
//! An error goes back to Lambda, which retries and then hands the event to the dead-letter queue; the
//! checkpoint keeps what was done, and the next tick starts the link again.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{Error, LambdaEvent};
use optisync_app::Engine;
use optisync_app::reconcile::{Budget, Guard, RUN_LEASE, Reconciler, RunOutcome};
use optisync_app::schedule::apply_due;
use optisync_domain::{LinkId, TenantId};
use optisync_eventbridge::Detail;
use optisync_ports::{BusEvent, Clock, EspGateway, EspLister, EventPublisher, Inbox, StateStore};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::Instrument;

/// How long before the Lambda's deadline a run stops starting pages.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(60);

/// M9: how long a delivery that finds the link's run lease held waits before it tries once more: the lease
/// and ten seconds. A live run renews its lease at every checkpoint and still holds it then; the lease of a
/// run whose invocation died has run out, and this delivery continues the run.
pub fn busy_wait() -> Duration {
    RUN_LEASE.to_std().unwrap_or_default() + Duration::from_secs(10)
}

/// What the handler needs, built once per process.
#[derive(Clone)]
pub struct Deps {
    /// The runs.
    pub reconciler: Reconciler,
    /// Announces a continuation.
    pub publisher: Arc<dyn EventPublisher>,
    /// Stop after this many pages per invocation (tests; `None` in production).
    pub max_pages: Option<u64>,
    /// M9: how long a delivery that finds the link's run lease held waits before it tries once more
    /// ([`busy_wait`]; shorter in tests).
    pub busy_wait: Duration,
    /// The daily due tick: every syncing link (state) and the engine that applies the transitions.
    due: Due,
}

/// What the daily due tick needs (R-A11).
#[derive(Clone)]
struct Due {
    store: Arc<dyn StateStore>,
    engine: Engine,
    clock: Arc<dyn Clock>,
}

/// The `detail-type` of the daily schedule's event (its `Input` in `template.yaml`).
pub const DUE_DETAIL_TYPE: &str = "optisync.due";

impl Deps {
    /// The handler over its ports: state, the inbox (snapshot pages), the ESP gateway and lister, the
    /// bus, the clock, and the mass-deactivation guard; no page limit.
    pub fn new(
        store: Arc<dyn StateStore>,
        inbox: Arc<dyn Inbox>,
        esp: Arc<dyn EspGateway>,
        lister: Arc<dyn EspLister>,
        publisher: Arc<dyn EventPublisher>,
        clock: Arc<dyn Clock>,
        guard: Guard,
    ) -> Self {
        let due = Due {
            store: store.clone(),
            engine: Engine::new(store.clone(), esp.clone(), clock.clone()),
            clock: clock.clone(),
        };
        let reconciler = Reconciler::new(store, esp, lister, inbox, clock).with_guard(guard);
        Self { reconciler, publisher, max_pages: None, busy_wait: busy_wait(), due }
    }
}

/// What one invocation reports (also the function's result, visible in the console).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// `finished`, `continue`, `waiting`, `held`, `busy`, `skipped` or `ignored`.
    pub outcome: &'static str,
    /// Pages read in the run so far.
    pub pages: u64,
    /// The run finished with an error or with records it could not apply (`RunFailed`).
    pub failed: bool,
}

/// The instant `margin` before a Lambda deadline given in epoch milliseconds (`None` if there is none).
pub fn budget_deadline(deadline_ms: u64, margin: Duration) -> Option<Instant> {
    if deadline_ms == 0 {
        return None;
    }
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_millis() as u64;
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms)).saturating_sub(margin);
    Some(Instant::now() + left)
}

/// Handles one EventBridge event.
pub async fn handle(deps: &Deps, event: LambdaEvent<EventBridgeEvent<serde_json::Value>>) -> Result<Report, Error> {
    if event.payload.detail_type == DUE_DETAIL_TYPE {
        return due(deps).await;
    }
    let detail: Detail = serde_json::from_value(event.payload.detail).map_err(|e| format!("unexpected detail: {e}"))?;
    let Detail::ReconcileLink { tenant, link } = detail else {
        tracing::warn!(detail_type = %event.payload.detail_type, "not a reconcile event; ignored");
        return Ok(Report { outcome: "ignored", pages: 0, failed: false });
    };
    let span = tracing::info_span!("event", function = "reconciler", tenant = %tenant, link = %link);
    let started = Instant::now();
    let result =
        run_link(deps, TenantId::new(tenant), LinkId::new(link), event.context.deadline).instrument(span).await;
    let outcome = match &result {
        Err(_) => Some("failed"),
        Ok(r) => match r.outcome {
            "finished" if r.failed => Some("failed"),
            "finished" => Some("completed"),
            "held" => Some("held"),
            _ => None,
        },
    };
    optisync_ports::metrics::reconcile(outcome, started.elapsed().as_millis() as u64);
    result
}

/// One invocation's share of a link's run.
/// The daily due tick (R-A11): applies what time made due today for every tenant; an error goes back to
/// Lambda (the schedule retries, then its dead-letter queue). Repeating it the same day changes nothing.
async fn due(deps: &Deps) -> Result<Report, Error> {
    let span = tracing::info_span!("event", function = "reconciler", tick = "due");
    let Due { store, engine, clock } = &deps.due;
    match apply_due(store.as_ref(), engine, clock.now()).instrument(span.clone()).await {
        Ok(_) => Ok(Report { outcome: "due", pages: 0, failed: false }),
        Err(e) => {
            let _entered = span.enter();
            tracing::warn!(error = %e, metric = "RunFailed", "due tick failed; the schedule retries it");
            Err(Error::from(e.to_string()))
        }
    }
}

async fn run_link(deps: &Deps, tenant: TenantId, link: LinkId, deadline_ms: u64) -> Result<Report, Error> {
    let budget = Budget { deadline: budget_deadline(deadline_ms, DEADLINE_MARGIN), max_pages: deps.max_pages };
    let run = || async {
        deps.reconciler.run(&tenant, &link, budget).await.map_err(|e| {
            // A metric filter counts these (the run failed; its checkpoint stays for the retry).
            tracing::warn!(error = %e, metric = "RunFailed", "run failed; Lambda retries it");
            Error::from(e.to_string())
        })
    };
    let mut outcome = run().await?;
    if outcome == RunOutcome::Busy {
        // M9: the lease holder may be a run whose invocation died (this delivery may be Lambda's retry of
        // it), and answering `busy` would leave that run to the next six-hourly tick. A delivery cannot
        // tell a dead holder from a live one, so it waits one lease out: a live run has renewed its lease
        // by then and announces its own continuation; a dead run's lease has run out and this delivery
        // continues it from its checkpoint.
        if budget.deadline.is_some_and(|d| Instant::now() + deps.busy_wait >= d) {
            tracing::warn!("the link's run lease is held and no time is left to wait it out; Lambda retries");
            return Err(Error::from("the link's run lease is held"));
        }
        tracing::info!("the link's run lease is held; waiting it out once");
        tokio::time::sleep(deps.busy_wait).await;
        outcome = run().await?;
        if outcome == RunOutcome::Busy {
            tracing::info!("the link's run renewed its lease meanwhile: it is alive and continues itself");
        }
    }
    let report = |outcome, pages| Ok(Report { outcome, pages, failed: false });
    match outcome {
        RunOutcome::Finished(f) => {
            let failed = f.error.is_some() || !f.failures.is_empty();
            if failed {
                tracing::warn!(metric = "RunFailed", failed = f.counts.failed, "run finished with failures");
            }
            Ok(Report { outcome: "finished", pages: f.counts.pages, failed })
        }
        RunOutcome::Continue(progress) => {
            deps.publisher.publish(&[BusEvent::ReconcileLink { tenant, link }]).await.map_err(|e| {
                tracing::warn!(error = %e, "could not announce the continuation; Lambda retries");
                Error::from(e.to_string())
            })?;
            report("continue", progress.counts.pages)
        }
        RunOutcome::Waiting(p) => report("waiting", p.counts.pages),
        RunOutcome::Held(p) => {
            tracing::warn!(
                metric = "RunHeld",
                ends = p.counts.deferred,
                "run held by the guard until an admin confirms"
            );
            report("held", p.counts.pages)
        }
        RunOutcome::Busy => report("busy", 0),
        RunOutcome::Skipped => report("skipped", 0),
    }
}
