//! The scheduler from a real scheduled EventBridge event: unprocessed inbox entries older than five minutes
//! are announced again, younger and finished ones are not, and every link that syncs gets one
//! reconciliation event.

use chrono::{DateTime, TimeZone, Utc};
use optisync_domain::*;
use optisync_ports::prelude::*;
use optisync_ports::{BusEvent, Inbox, InboxEntry};
use optisync_testkit::memory::{FixedClock, MemoryBus, MemoryStore};
use scheduler::{Deps, Report, handle};
use std::sync::Arc;

fn event() -> lambda_runtime::LambdaEvent<aws_lambda_events::eventbridge::EventBridgeEvent<serde_json::Value>> {
    let payload = serde_json::from_str(include_str!("fixtures/eventbridge-scheduled.json")).expect("an event");
    lambda_runtime::LambdaEvent::new(payload, lambda_runtime::Context::default())
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 6, 0, 0).unwrap()
}

fn link(tenant: &str, id: &str, status: LinkStatus) -> Link {
    Link {
        id: LinkId::new(id),
        tenant: TenantId::new(tenant),
        newsletter: NewsletterId::new("NL-1"),
        esp: EspAccount { provider: Provider::Brevo, account: AccountId::new("acc") },
        list: ListId::new("7"),
        segment: None,
        settings: LinkSettings::default(),
        status,
    }
}

async fn entry(store: &MemoryStore, key: &str, minutes_ago: i64) {
    let entry = InboxEntry {
        tenant: TenantId::new("t1"),
        key: key.into(),
        fingerprint: key.into(),
        items: vec![Input::Today { date: now().date_naive() }.into()],
        received_at: now() - chrono::Duration::minutes(minutes_ago),
    };
    store.put(&entry).await.unwrap();
}

#[tokio::test]
async fn a_tick_redrives_stale_pending_entries_and_announces_every_syncing_link() {
    let store = Arc::new(MemoryStore::new());
    for l in [
        link("t2", "L-b", LinkStatus::Linked),
        link("t1", "L-a", LinkStatus::Linking),
        link("t1", "L-off", LinkStatus::NotLinked),
    ] {
        store.put_link(&l).await.unwrap();
    }
    entry(&store, "stale", 60).await; // the worker never finished it (e.g. its invocation was dead-lettered)
    entry(&store, "done", 60).await;
    store.mark_done(&TenantId::new("t1"), "done").await.unwrap();
    entry(&store, "young", 1).await; // may still be in flight
    let bus = Arc::new(MemoryBus::default());
    let deps = Deps::new(store.clone(), store, bus.clone(), Arc::new(FixedClock::new(now())));

    let report = handle(&deps, event()).await.unwrap();

    assert_eq!(
        report,
        Report {
            redriven: 1,
            reconciles: 2,
            approvals_pending: 0,
            oldest_approval_secs: 0,
            reports_delivered: 0,
            reports_failed: 0
        }
    );
    assert_eq!(
        bus.drain(),
        vec![
            BusEvent::InboxReady { tenant: TenantId::new("t1"), key: "stale".into() },
            BusEvent::ReconcileLink { tenant: TenantId::new("t1"), link: LinkId::new("L-a") },
            BusEvent::ReconcileLink { tenant: TenantId::new("t2"), link: LinkId::new("L-b") },
        ]
    );
}

fn signup(link: &Link, mail: &str, days_ago: i64) -> ApprovalEntry {
    let seen = now() - chrono::Duration::days(days_ago);
    ApprovalEntry {
        link: link.id.clone(),
        email: Email::parse(mail).unwrap(),
        signup: Signup::default(),
        first_seen: seen,
        last_seen: seen,
        signups: 1,
        status: ApprovalStatus::Pending,
        match_command: CommandId::new(format!("match-{mail}")),
        decision: None,
        created: None,
    }
}

/// R-C3: a signup waits in the queue for a decision; the tick reports how many wait and since when the
/// oldest waits (the `ApprovalsWaiting` alarm fires on it), over every syncing link, decided ones not
/// counted, a stopped link's queue not either.
#[tokio::test]
async fn r_c3_a_tick_reports_the_waiting_signups_and_the_age_of_the_oldest() {
    let store = Arc::new(MemoryStore::new());
    let (a, b, off) = (
        link("t1", "L-a", LinkStatus::Linked),
        link("t2", "L-b", LinkStatus::Linked),
        link("t1", "L-off", LinkStatus::NotLinked),
    );
    let mut entries = vec![
        (a.tenant.clone(), signup(&a, "eins@example.org", 2)),
        (a.tenant.clone(), signup(&a, "zwei@example.org", 9)),
        (b.tenant.clone(), signup(&b, "drei@example.org", 4)),
        (off.tenant.clone(), signup(&off, "vier@example.org", 30)),
    ];
    let mut decided = signup(&b, "fuenf@example.org", 20);
    decided.status = ApprovalStatus::Rejected;
    entries.push((b.tenant.clone(), decided));
    for l in [&a, &b, &off] {
        store.put_link(l).await.unwrap();
    }
    for (tenant, entry) in entries {
        let commit = optisync_ports::Commit {
            writes: vec![(StateWrite::Approval { entry }, None)],
            commands: vec![],
            audit: vec![],
            ..Default::default()
        };
        store.commit(&tenant, commit).await.unwrap();
    }
    let bus = Arc::new(MemoryBus::default());
    let deps = Deps::new(store.clone(), store, bus, Arc::new(FixedClock::new(now())));

    let report = handle(&deps, event()).await.unwrap();

    assert_eq!((report.approvals_pending, report.oldest_approval_secs), (3, 9 * 86_400));
}
