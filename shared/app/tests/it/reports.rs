//! Deletion report delivery (R-J2, issue #21). Seed 004: Max Muster unsubscribes from the "Rundbrief"
//! of a link in erasure mode; OPTIGEM ends the assignment "Ende April 2024" and confirms; the report is
//! kept in the outbox, published once, and a failed publish is retried by the scheduler's tick.

use chrono::{DateTime, TimeZone, Utc};
use optisync_app::Engine;
use optisync_app::reports::{Delivery, deliver_all};
use optisync_domain::*;
use optisync_ports::prelude::*;
use optisync_testkit::build;
use optisync_testkit::memory::{FixedClock, MemoryEsp, MemoryNotifier, MemoryStore};
use std::sync::Arc;

const MAX: &str = "max.muster@example.com";

fn at(month: u32, day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, month, day, 10, 0, 0).unwrap()
}

fn tenant() -> TenantId {
    TenantId::new("t1")
}

struct Harness {
    store: Arc<MemoryStore>,
    notifier: Arc<MemoryNotifier>,
    engine: Engine,
    link: Link,
}

async fn harness() -> Harness {
    let store = Arc::new(MemoryStore::new());
    let mut link = build::link("rundbrief", "t1", "NL-1", build::esp(Provider::CleverReach, "acc"), "list-1");
    link.settings.unsubscribe_mode = UnsubscribeMode::Erasure;
    store.put_link(&link).await.unwrap();
    let settings = TenantSettings {
        deletion_report_email: Some(Email::parse("datenschutz@gemeinde.example").unwrap()),
        ..Default::default()
    };
    store.put_tenant_settings(&tenant(), &settings).await.unwrap();
    let notifier = Arc::new(MemoryNotifier::new());
    let clock = Arc::new(FixedClock::new(at(5, 15)));
    let engine = Engine::new(store.clone(), Arc::new(MemoryEsp::new()), clock).with_notifier(notifier.clone());
    Harness { store, notifier, engine, link }
}

/// Max Muster subscribed, unsubscribed in CleverReach, and OPTIGEM confirmed the end: the erasure.
async fn erase_max(h: &Harness) {
    let a = build::assignment("a1", "NL-1", MAX, at(4, 2));
    h.engine.process(&tenant(), &Input::AssignmentChanged { assignment: a }).await.unwrap();
    let unsubscribe = Input::Esp(EspEvent {
        esp: h.link.esp.clone(),
        list: Some(h.link.list.clone()),
        email: Email::parse(MAX).unwrap(),
        at: at(5, 15),
        what: EspEventKind::Unsubscribed,
    });
    h.engine.process(&tenant(), &unsubscribe).await.unwrap();
    let feed = h.store.commands(&tenant(), 0, 100).await.unwrap();
    let confirmed = feed
        .iter()
        .find_map(|(_, c)| match c {
            OptigemCommand::EndAssignment { id, assignment, newsletter, unsubscription, .. } => {
                Some(Input::EndConfirmed {
                    command: id.clone(),
                    assignment: assignment.clone(),
                    newsletter: newsletter.clone(),
                    unsubscription: unsubscription.clone(),
                })
            }
            _ => None,
        })
        .expect("an end_assignment (Ende April 2024)");
    // OPTIGEM's result arrives twice (at-least-once): one report.
    for _ in 0..2 {
        h.engine.process(&tenant(), &confirmed).await.unwrap();
    }
}

#[tokio::test]
async fn r_j2_a_deletion_report_is_published_once_with_what_was_deleted_and_kept() {
    let h = harness().await;
    erase_max(&h).await;
    let published = h.notifier.published();
    assert_eq!(published.len(), 1, "published once, right after the commit");
    let (t, report) = &published[0];
    assert_eq!(t, &tenant());
    assert_eq!((report.email.key(), report.link.as_str()), (MAX, "rundbrief"));
    let deleted: Vec<_> = report.deleted.iter().map(|d| format!("{}:{}", d.system, d.item)).collect();
    assert!(deleted.contains(&"cleverreach:receiver".to_owned()), "{deleted:?}");
    assert!(report.kept.iter().any(|k| k.item == "keyed_hash" && !k.reason.is_empty()));
    assert_eq!(report.at, at(5, 15));
    let stored = h.store.erasure_reports(&tenant(), None, 10).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].delivered_at, Some(at(5, 15)), "marked delivered");
    assert_eq!(deliver_all(&*h.store, &*h.notifier, at(5, 16)).await.unwrap(), Delivery::default());
    assert_eq!(h.notifier.published().len(), 1, "a tick publishes nothing delivered again");
}

#[tokio::test]
async fn r_j2_a_failed_publish_is_retried_on_the_next_tick_and_not_duplicated_after_success() {
    let h = harness().await;
    h.notifier.fail_next(2);
    erase_max(&h).await;
    assert!(h.notifier.published().is_empty(), "the topic was down at the commit");
    assert_eq!(h.store.undelivered_reports(&tenant(), 10).await.unwrap().len(), 1, "kept in the outbox");

    let down = deliver_all(&*h.store, &*h.notifier, at(5, 15)).await.unwrap();
    assert_eq!(down, Delivery { delivered: 0, failed: 1 }, "still down at the first tick");
    let up = deliver_all(&*h.store, &*h.notifier, at(5, 16)).await.unwrap();
    assert_eq!(up, Delivery { delivered: 1, failed: 0 });
    for day in 17..20 {
        deliver_all(&*h.store, &*h.notifier, at(5, day)).await.unwrap();
    }
    let published = h.notifier.published();
    assert_eq!(published.len(), 1, "delivered once after success");
    assert_eq!(published[0].1.email.key(), MAX);
    assert!(h.store.undelivered_reports(&tenant(), 10).await.unwrap().is_empty());
}
