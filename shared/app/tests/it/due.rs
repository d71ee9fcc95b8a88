//! R-A11: time-driven transitions take effect on their own Berlin day, by the daily "due" tick just after
//! midnight Europe/Berlin, whatever the 6-hourly reconciliation of the link is doing.

use chrono::{DateTime, TimeZone, Utc};
use optisync_app::Engine;
use optisync_app::schedule::apply_due;
use optisync_domain::*;
use optisync_ports::prelude::*;
use optisync_testkit::build;
use optisync_testkit::memory::{FixedClock, MemoryEsp, MemoryStore};
use std::sync::Arc;

fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
}

fn link(tenant: &str, nl: &str) -> Link {
    Link {
        settings: LinkSettings { mapping: build::mapping("FIRSTNAME", None), ..Default::default() },
        ..build::link(format!("{tenant}-{nl}"), tenant, nl, build::esp(Provider::Brevo, tenant), format!("list-{nl}"))
    }
}

/// One linked list per tenant, each with one assignment that ends with `end`.
async fn world(tenants: &[&str], end: &str) -> (Arc<MemoryStore>, Arc<MemoryEsp>, Engine, Vec<Link>) {
    let store = Arc::new(MemoryStore::new());
    let esp = Arc::new(MemoryEsp::new());
    let engine = Engine::new(store.clone(), esp.clone(), Arc::new(FixedClock::new(utc(2024, 1, 2, 10, 0))));
    let mut links = Vec::new();
    for t in tenants {
        let l = link(t, "nl");
        store.put_link(&l).await.unwrap();
        let mut a = build::first_named(
            build::at_version(
                build::assignment(&format!("{t}-a1"), "nl", "max@example.com", utc(2024, 1, 1, 10, 0)),
                1,
            ),
            "Max",
        );
        a.end = Some(end.parse().unwrap());
        engine.process(&TenantId::new(*t), &Input::AssignmentChanged { assignment: a }).await.unwrap();
        assert_eq!(esp.receiving(&l.esp, &l.list).len(), 1);
        links.push(l);
    }
    (store, esp, engine, links)
}

/// 000 §1: an end "April 2024" mails until 30 April. 23:30 UTC on 30 April is 01:30 on 1 May in Berlin
/// (CEST), so the daily tick then ends the assignment in every tenant.
#[tokio::test]
async fn r_a11_the_due_tick_at_2330_utc_on_30_april_ends_april_in_every_tenant() {
    let (store, esp, engine, links) = world(&["t1", "t2"], "2024-04").await;
    let done = apply_due(store.as_ref(), &engine, utc(2024, 4, 30, 23, 30)).await.unwrap();
    assert_eq!(done.tenants, 2);
    for l in &links {
        assert!(esp.receiving(&l.esp, &l.list).is_empty(), "{} still receives", l.id);
    }
}

/// 21:30 UTC on 30 April is still 23:30 on 30 April in Berlin: the assignment still receives.
#[tokio::test]
async fn r_a11_the_due_tick_before_berlin_midnight_keeps_the_last_day() {
    let (store, esp, engine, links) = world(&["t1"], "2024-04").await;
    apply_due(store.as_ref(), &engine, utc(2024, 4, 30, 21, 30)).await.unwrap();
    assert_eq!(esp.receiving(&links[0].esp, &links[0].list).len(), 1);
    apply_due(store.as_ref(), &engine, utc(2024, 4, 30, 22, 5)).await.unwrap();
    assert!(esp.receiving(&links[0].esp, &links[0].list).is_empty());
}

/// The night of the change back to CET (last Sunday of October 2024 is the 27th) and the end of that
/// month: 23:05 UTC on 31 October is 00:05 CET on 1 November.
#[tokio::test]
async fn r_a11_the_due_tick_after_the_october_change_ends_october_at_berlin_midnight() {
    let (store, esp, engine, links) = world(&["t1"], "2024-10").await;
    apply_due(store.as_ref(), &engine, utc(2024, 10, 31, 22, 55)).await.unwrap();
    assert_eq!(esp.receiving(&links[0].esp, &links[0].list).len(), 1, "23:55 CET is still 31 October");
    apply_due(store.as_ref(), &engine, utc(2024, 10, 31, 23, 5)).await.unwrap();
    assert!(esp.receiving(&links[0].esp, &links[0].list).is_empty());
}

/// The night of the change to CEST (last Sunday of March 2024 is the 31st, the month's last day): 22:30
/// UTC on 31 March is 00:30 CEST on 1 April; 21:30 UTC is 23:30 CEST, still March.
#[tokio::test]
async fn r_a11_the_due_tick_on_the_march_change_night_ends_march_at_berlin_midnight() {
    let (store, esp, engine, links) = world(&["t1"], "2024-03").await;
    apply_due(store.as_ref(), &engine, utc(2024, 3, 31, 21, 30)).await.unwrap();
    assert_eq!(esp.receiving(&links[0].esp, &links[0].list).len(), 1);
    apply_due(store.as_ref(), &engine, utc(2024, 3, 31, 22, 30)).await.unwrap();
    assert!(esp.receiving(&links[0].esp, &links[0].list).is_empty());
}

/// A link that is not linked does not sync (R-F1): the due tick leaves its tenant alone.
#[tokio::test]
async fn r_a11_the_due_tick_skips_tenants_without_a_syncing_link() {
    let (store, esp, engine, links) = world(&["t1"], "2024-04").await;
    let mut l = links[0].clone();
    l.status = LinkStatus::NotLinked;
    store.put_link(&l).await.unwrap();
    let done = apply_due(store.as_ref(), &engine, utc(2024, 5, 1, 0, 30)).await.unwrap();
    assert_eq!(done.tenants, 0);
    assert_eq!(esp.receiving(&l.esp, &l.list).len(), 1);
}
