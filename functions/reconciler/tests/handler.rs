//! The reconciler from a real `link.reconcile` EventBridge event: a long list is read across invocations,
//! each announcing the next, until the run finishes; other events are ignored.

use chrono::{TimeZone, Utc};
use optisync_app::reconcile::Guard;
use optisync_domain::*;
use optisync_ports::BusEvent;
use optisync_ports::prelude::*;
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

#[test]
fn the_budget_ends_a_minute_before_the_lambda_deadline() {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let deadline = budget_deadline(now_ms + 15 * 60 * 1000, DEADLINE_MARGIN).unwrap();
    let left = deadline.saturating_duration_since(Instant::now());
    assert!(left > Duration::from_secs(13 * 60) && left <= Duration::from_secs(14 * 60), "{left:?}");
    assert!(budget_deadline(now_ms + 30_000, DEADLINE_MARGIN).unwrap() <= Instant::now(), "already spent");
    assert_eq!(budget_deadline(0, DEADLINE_MARGIN), None, "no deadline known");
}
