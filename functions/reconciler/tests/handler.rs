//! The reconciler from a real `link.reconcile` EventBridge event: a long list is read across invocations,
//! each announcing the next, until the run finishes; other events are ignored.

use chrono::{TimeZone, Utc};
use optisync_app::reconcile::Guard;
use optisync_domain::*;
use optisync_ports::BusEvent;
use optisync_ports::prelude::*;
use optisync_testkit::build;
use optisync_testkit::memory::{FixedClock, MemoryBus, MemoryEsp, MemoryStore};
use reconciler::{DEADLINE_MARGIN, Deps, budget_deadline, handle};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn event(
    detail_type: &str,
) -> lambda_runtime::LambdaEvent<aws_lambda_events::eventbridge::EventBridgeEvent<serde_json::Value>> {
    let mut payload: aws_lambda_events::eventbridge::EventBridgeEvent<serde_json::Value> =
        serde_json::from_str(include_str!("fixtures/eventbridge-reconcile.json")).expect("an event");
    if detail_type != "link.reconcile" {
        payload.detail_type = detail_type.into();
        payload.detail = serde_json::json!({"tenant": "t1", "key": "optigem:1"});
    }
    lambda_runtime::LambdaEvent::new(payload, lambda_runtime::Context::default())
}

#[tokio::test]
async fn a_long_list_is_read_across_invocations_that_announce_each_other() {
    let store = Arc::new(MemoryStore::new());
    let esp = Arc::new(MemoryEsp::new());
    let clock = Arc::new(FixedClock::new(Utc.with_ymd_and_hms(2024, 5, 1, 6, 0, 0).unwrap()));
    let bus = Arc::new(MemoryBus::default());
    let link = Link {
        id: LinkId::new("L1"),
        tenant: TenantId::new("t1"),
        newsletter: NewsletterId::new("NL-1"),
        esp: EspAccount { provider: Provider::CleverReach, account: AccountId::new("acc") },
        list: ListId::new("g1"),
        segment: None,
        settings: LinkSettings::default(),
        status: LinkStatus::Linked,
    };
    store.put_link(&link).await.unwrap();
    for i in 0..25 {
        esp.set_member(&link.esp, &link.list, &format!("m{i:02}@example.com"), true);
    }
    esp.set_page_size(10);
    let mut deps =
        Deps::new(store.clone(), store.clone(), esp.clone(), esp.clone(), bus.clone(), clock, Guard::default());
    deps.max_pages = Some(1);

    // The run first asks OPTIGEM for its snapshot and waits, announcing nothing: the connector's answer
    // wakes it. Here the connector answers with an empty newsletter.
    assert_eq!(handle(&deps, event("link.reconcile")).await.unwrap().outcome, "waiting");
    assert!(bus.drain().is_empty());
    let feed = store.commands(&TenantId::new("t1"), 0, 100).await.unwrap();
    let Some((_, OptigemCommand::ExportNewsletter { id, .. })) = feed.first() else { panic!("{feed:?}") };
    store.record_result(&TenantId::new("t1"), id, &CommandResult::done()).await.unwrap();

    let mut outcomes = Vec::new();
    loop {
        let report = handle(&deps, event("link.reconcile")).await.unwrap();
        outcomes.push(report.outcome);
        let announced = bus.drain();
        if report.outcome != "continue" {
            assert!(announced.is_empty());
            break;
        }
        let again = BusEvent::ReconcileLink { tenant: TenantId::new("t1"), link: LinkId::new("L1") };
        assert_eq!(announced, vec![again], "each continuation announces the next");
    }
    // Three list pages, one per invocation; a fourth sweeps (nothing gone) and finishes.
    assert_eq!(outcomes, ["continue", "continue", "continue", "finished"]);
    let feed = store.commands(&TenantId::new("t1"), 0, 100).await.unwrap();
    let matches = feed.iter().filter(|(_, c)| matches!(c, OptigemCommand::MatchPersons { .. })).count();
    assert_eq!((matches, feed.len()), (25, 26), "every unknown member once in the approval queue, and the export");

    assert_eq!(handle(&deps, event("inbox.ready")).await.unwrap().outcome, "ignored");
}

/// M9: a link whose run announced its continuation, 10 of 25 members listed, its export answered; the
/// handler's deliveries wait `busy_wait` (20 ms of real time here) when the run lease is held.
async fn continued_run() -> (Arc<MemoryStore>, Arc<FixedClock>, Arc<MemoryBus>, Deps) {
    let store = Arc::new(MemoryStore::new());
    let esp = Arc::new(MemoryEsp::new());
    let clock = Arc::new(FixedClock::new(Utc.with_ymd_and_hms(2024, 5, 1, 6, 0, 0).unwrap()));
    let bus = Arc::new(MemoryBus::default());
    let link = build::link("L1", "t1", "NL-1", build::esp(Provider::CleverReach, "acc"), "g1");
    store.put_link(&link).await.unwrap();
    for i in 0..25 {
        esp.set_member(&link.esp, &link.list, &format!("m{i:02}@example.com"), true);
    }
    esp.set_page_size(10);
    let mut deps =
        Deps::new(store.clone(), store.clone(), esp.clone(), esp, bus.clone(), clock.clone(), Guard::default());
    deps.max_pages = Some(1);
    deps.busy_wait = Duration::from_millis(20);
    assert_eq!(handle(&deps, event("link.reconcile")).await.unwrap().outcome, "waiting");
    let feed = store.commands(&TenantId::new("t1"), 0, 100).await.unwrap();
    let Some((_, OptigemCommand::ExportNewsletter { id, .. })) = feed.first() else { panic!("{feed:?}") };
    store.record_result(&TenantId::new("t1"), id, &CommandResult::done()).await.unwrap();
    assert_eq!(handle(&deps, event("link.reconcile")).await.unwrap().outcome, "continue");
    bus.drain();
    (store, clock, bus, deps)
}

/// The continuation's invocation takes the run lease as `owner` at the clock's time, as `Reconciler::run`
/// does.
async fn hold_lease(store: &MemoryStore, clock: &FixedClock, owner: &str) -> bool {
    let lease = optisync_ports::names::lease::run(&TenantId::new("t1"), &LinkId::new("L1"));
    let now = optisync_ports::Clock::now(clock);
    store.try_lease(&lease, owner, now, now + optisync_app::reconcile::RUN_LEASE).await.unwrap()
}

#[tokio::test]
async fn m9_a_delivery_that_finds_a_dead_runs_lease_waits_it_out_and_continues_the_run() {
    let (store, clock, bus, deps) = continued_run().await;
    // The continuation's invocation took the lease and died (Lambda's timeout); Lambda retries the event a
    // minute later, while the lease still holds.
    assert!(hold_lease(&store, &clock, "dead").await);
    clock.set(optisync_ports::Clock::now(clock.as_ref()) + chrono::Duration::minutes(1));
    // While the delivery waits, the lease runs out (nobody renews it).
    let later = clock.clone();
    let expiry = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        later.set(optisync_ports::Clock::now(later.as_ref()) + chrono::Duration::minutes(2));
    });
    let report = handle(&deps, event("link.reconcile")).await.unwrap();
    expiry.await.unwrap();
    assert_eq!(report.outcome, "continue", "the dead run is continued, not left to the next tick");
    assert_eq!(report.pages, 2);
    assert_eq!(bus.drain(), vec![BusEvent::ReconcileLink { tenant: TenantId::new("t1"), link: LinkId::new("L1") }]);
    let state = deps.reconciler.state(&TenantId::new("t1"), &LinkId::new("L1")).await.unwrap();
    assert_eq!(state.current.map(|p| p.stale_takeovers), Some(1), "StaleRun");
}

#[tokio::test]
async fn m9_a_delivery_that_finds_a_live_run_leaves_it_alone() {
    let (store, clock, bus, deps) = continued_run().await;
    assert!(hold_lease(&store, &clock, "live").await);
    let before = deps.reconciler.state(&TenantId::new("t1"), &LinkId::new("L1")).await.unwrap();
    // While the delivery waits, the live run checkpoints and renews its lease.
    let later = (clock.clone(), store.clone());
    let renewal = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        later.0.set(optisync_ports::Clock::now(later.0.as_ref()) + chrono::Duration::seconds(90));
        assert!(hold_lease(&later.1, &later.0, "live").await);
    });
    let report = handle(&deps, event("link.reconcile")).await.unwrap();
    renewal.await.unwrap();
    assert_eq!(report.outcome, "busy", "the live run announces its own continuation");
    assert!(bus.drain().is_empty());
    assert_eq!(deps.reconciler.state(&TenantId::new("t1"), &LinkId::new("L1")).await.unwrap(), before);

    // A delivery without the time to wait the lease out hands the event back to Lambda, which retries it.
    let mut short = event("link.reconcile");
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    short.context.deadline = now_ms + 30_000;
    assert!(handle(&deps, short).await.is_err());
}

#[test]
fn the_budget_ends_a_minute_before_the_lambda_deadline() {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let deadline = budget_deadline(now_ms + 15 * 60 * 1000, DEADLINE_MARGIN).unwrap();
    let left = deadline.saturating_duration_since(Instant::now());
    assert!(left > Duration::from_secs(13 * 60) && left <= Duration::from_secs(14 * 60), "{left:?}");
    assert!(budget_deadline(now_ms + 30_000, DEADLINE_MARGIN).unwrap() <= Instant::now(), "already spent");
    assert_eq!(budget_deadline(0, DEADLINE_MARGIN), None, "no deadline known");
}

/// The daily schedule's event, as `template.yaml`'s `Input` gives it (EventBridge Scheduler passes it on
/// unchanged).
fn due_event() -> lambda_runtime::LambdaEvent<aws_lambda_events::eventbridge::EventBridgeEvent<serde_json::Value>> {
    let payload = serde_json::from_str(r#"{"detail-type":"optisync.due","source":"optisync.schedule","detail":{}}"#)
        .expect("the schedule's input");
    lambda_runtime::LambdaEvent::new(payload, lambda_runtime::Context::default())
}

struct MonthEnd {
    store: Arc<MemoryStore>,
    esp: Arc<MemoryEsp>,
    clock: Arc<FixedClock>,
    deps: Deps,
    link: Link,
    april: Assignment,
    may: Assignment,
}

/// A Brevo link with two active recipients: one whose assignment ends "April 2024", one without an end.
async fn month_end(guard: Guard) -> MonthEnd {
    let store = Arc::new(MemoryStore::new());
    let esp = Arc::new(MemoryEsp::new());
    let clock = Arc::new(FixedClock::new(Utc.with_ymd_and_hms(2024, 4, 20, 10, 0, 0).unwrap()));
    let link = Link {
        settings: LinkSettings { mapping: build::mapping("FIRSTNAME", None), ..Default::default() },
        status: LinkStatus::Linked,
        ..build::link("L1", "t1", "NL-1", build::esp(Provider::Brevo, "acc"), "l1")
    };
    store.put_link(&link).await.unwrap();
    let since = Utc.with_ymd_and_hms(2024, 1, 1, 10, 0, 0).unwrap();
    let mut april =
        build::first_named(build::at_version(build::assignment("A-1", "NL-1", "april@example.com", since), 1), "Max");
    april.end = Some("2024-04".parse().unwrap());
    let may =
        build::first_named(build::at_version(build::assignment("B-1", "NL-1", "may@example.com", since), 1), "Erika");
    let engine = optisync_app::Engine::new(store.clone(), esp.clone(), clock.clone());
    for a in [&april, &may] {
        engine.process(&link.tenant, &Input::AssignmentChanged { assignment: a.clone() }).await.unwrap();
    }
    assert_eq!(esp.receiving(&link.esp, &link.list).len(), 2);
    let bus = Arc::new(MemoryBus::default());
    let deps = Deps::new(store.clone(), store.clone(), esp.clone(), esp.clone(), bus, clock.clone(), guard);
    MonthEnd { store, esp, clock, deps, link, april, may }
}

/// 000 §1: "Ende April 2024" means no mail on 1 May. 23:30 UTC on 30 April is 01:30 on 1 May in Berlin.
fn after_berlin_midnight() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 4, 30, 23, 30, 0).unwrap()
}

#[tokio::test]
async fn r_a11_the_due_tick_ends_april_while_the_links_run_waits_for_the_export() {
    let w = month_end(Guard::default()).await;
    w.clock.set(after_berlin_midnight());
    // The 6-hourly run asks OPTIGEM for its snapshot; the connector is offline and never answers.
    assert_eq!(handle(&w.deps, event("link.reconcile")).await.unwrap().outcome, "waiting");
    assert_eq!(w.esp.receiving(&w.link.esp, &w.link.list).len(), 2, "the waiting run changes nothing");
    assert_eq!(handle(&w.deps, due_event()).await.unwrap().outcome, "due");
    let receiving = w.esp.receiving(&w.link.esp, &w.link.list);
    assert_eq!(receiving.into_iter().collect::<Vec<_>>(), ["may@example.com"], "April ended on its own day");
    // The same tick again the same day changes nothing.
    let calls = w.esp.mutating_calls();
    assert_eq!(handle(&w.deps, due_event()).await.unwrap().outcome, "due");
    assert_eq!(w.esp.mutating_calls(), calls);
}

#[tokio::test]
async fn r_a11_the_due_tick_ends_april_while_the_guard_holds_the_links_run() {
    // Any end holds a run: the unsubscribe of may@ found by the listing waits for an admin.
    let w = month_end(Guard { share: 0.0, min: 1 }).await;
    w.esp.set_member(&w.link.esp, &w.link.list, "may@example.com", false);
    w.clock.set(Utc.with_ymd_and_hms(2024, 4, 30, 20, 0, 0).unwrap());
    assert_eq!(handle(&w.deps, event("link.reconcile")).await.unwrap().outcome, "waiting");
    let feed = w.store.commands(&TenantId::new("t1"), 0, 100).await.unwrap();
    let Some((_, OptigemCommand::ExportNewsletter { id, .. })) = feed.first() else { panic!("{feed:?}") };
    let page = serde_json::json!({"newsletter": "NL-1", "last": true, "assignments": [&w.april, &w.may]});
    let body = serde_json::to_vec(&page).unwrap();
    let now = optisync_ports::Clock::now(w.clock.as_ref());
    let (store, inbox) = (w.store.as_ref() as &dyn StateStore, w.store.as_ref() as &dyn optisync_ports::Inbox);
    optisync_app::optigem::accept_snapshot_page(store, inbox, &TenantId::new("t1"), id, 1, &body, now).await.unwrap();
    w.store.record_result(&TenantId::new("t1"), id, &CommandResult::done()).await.unwrap();
    let mut outcome = "continue";
    while outcome == "continue" {
        outcome = handle(&w.deps, event("link.reconcile")).await.unwrap().outcome;
    }
    assert_eq!(outcome, "held");
    assert!(w.esp.receiving(&w.link.esp, &w.link.list).contains("april@example.com"), "30 April still receives");

    w.clock.set(after_berlin_midnight());
    assert_eq!(handle(&w.deps, due_event()).await.unwrap().outcome, "due");
    assert!(!w.esp.receiving(&w.link.esp, &w.link.list).contains("april@example.com"), "April ended on 1 May");
    let feed = w.store.commands(&TenantId::new("t1"), 0, 100).await.unwrap();
    let ends = feed.iter().filter(|(_, c)| matches!(c, OptigemCommand::EndAssignment { .. })).count();
    assert_eq!(ends, 0, "the held end waits for the admin; an expiry writes nothing to OPTIGEM");
}
