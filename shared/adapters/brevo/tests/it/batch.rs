//! Batched list writes (issue #23): a run's list removals and additions go to Brevo 150 addresses a call
//! (`POST /contacts/lists/{listId}/contacts/remove` and `…/add`), and Brevo's answer per address
//! (`contacts.success` / `contacts.failure`) maps back to each recipient.

use chrono::{TimeZone, Utc};
use optisync_app::Engine;
use optisync_app::reconcile::{Budget, Reconciler, RunOutcome};
use optisync_brevo::{ApiKey, BrevoClient, BrevoConfig, BrevoGateway};
use optisync_domain::*;
use optisync_fakes::brevo::{FAKE_API_KEY, FakeBrevo};
use optisync_ports::prelude::*;
use optisync_ports::{EspError, EspGateway};
use optisync_testkit::build;
use optisync_testkit::memory::{FixedClock, MemoryEsp, MemoryStore};
use std::sync::Arc;

fn gateway(fake: &FakeBrevo) -> BrevoGateway {
    let mut cfg = BrevoConfig::new(fake.base_url(), ApiKey::new(FAKE_API_KEY));
    cfg.backoff_base = std::time::Duration::from_millis(5);
    BrevoGateway::new(BrevoClient::new(cfg).unwrap())
}

fn esp() -> EspAccount {
    EspAccount { provider: Provider::Brevo, account: AccountId::new("acc") }
}

fn action(op: EspOp, list: i64, email: &str) -> EspAction {
    EspAction {
        link: LinkId::new("rundbrief"),
        esp: esp(),
        list: ListId::new(list.to_string()),
        email: Email::parse(email).unwrap(),
        op,
    }
}

fn mail(i: usize) -> String {
    format!("leser{i:04}@example.org")
}

/// The connector's answer to the run's export: OPTIGEM's snapshot in pages of 200 (the contract's most), then the result.
async fn answer_export(store: &MemoryStore, tenant: &TenantId, assignments: &[Assignment]) {
    let feed = store.commands(tenant, 0, 100).await.unwrap();
    let export = feed
        .iter()
        .rev()
        .find_map(|(_, c)| match c {
            OptigemCommand::ExportNewsletter { id, .. } => Some(id.clone()),
            _ => None,
        })
        .expect("an export");
    let pages: Vec<&[Assignment]> = assignments.chunks(200).collect();
    for (k, page) in pages.iter().enumerate() {
        let body = serde_json::json!({"newsletter": "NL-1", "last": k + 1 == pages.len(), "assignments": page});
        let body = serde_json::to_vec(&body).unwrap();
        optisync_app::optigem::accept_snapshot_page(store, store, tenant, &export, k as u32 + 1, &body, Utc::now())
            .await
            .unwrap();
    }
    store.record_result(tenant, &export, &CommandResult::done()).await.unwrap();
}

#[tokio::test]
async fn r_e2_a_run_that_takes_500_blacklisted_members_off_the_rundbrief_list_makes_at_most_4_remove_calls() {
    let fake = FakeBrevo::start().await;
    let list = fake.add_list("Rundbrief");
    let tenant = TenantId::new("t1");
    let store = Arc::new(MemoryStore::new());
    let now = Utc.with_ymd_and_hms(2024, 9, 25, 10, 0, 0).unwrap();
    let clock = Arc::new(FixedClock::new(now));
    let link = Link {
        id: LinkId::new("rundbrief"),
        tenant: tenant.clone(),
        newsletter: NewsletterId::new("NL-1"),
        esp: esp(),
        list: ListId::new(list.to_string()),
        segment: None,
        settings: LinkSettings::default(),
        status: LinkStatus::Linked,
    };
    store.put_link(&link).await.unwrap();
    // A link in step: 1,000 readers of the "Rundbrief" on the list.
    let seeding = Engine::new(store.clone(), Arc::new(MemoryEsp::new()), clock.clone());
    let created = Utc.with_ymd_and_hms(2024, 1, 10, 10, 0, 0).unwrap();
    let assignments: Vec<Assignment> =
        (0..1000).map(|i| build::assignment(&format!("a{i:04}"), "NL-1", &mail(i), created)).collect();
    for a in &assignments {
        seeding.process(&tenant, &Input::AssignmentChanged { assignment: a.clone() }).await.unwrap();
    }
    for i in 0..1000 {
        fake.add_contact(&mail(i), Default::default(), &[list]);
    }
    // Every second one unsubscribed in Brevo (blacklisted) without a webhook: 500 to take off the list.
    for i in (0..1000).step_by(2) {
        assert!(fake.blacklist(&mail(i)));
    }
    fake.clear_request_log();

    let gateway = Arc::new(gateway(&fake));
    let reconciler = Reconciler::new(store.clone(), gateway.clone(), gateway, store.clone(), clock.clone());
    let waiting = reconciler.run(&tenant, &link.id, Budget::default()).await.unwrap();
    assert!(matches!(waiting, RunOutcome::Waiting(_)), "{waiting:?}");
    answer_export(&store, &tenant, &assignments).await;
    let finished = loop {
        match reconciler.run(&tenant, &link.id, Budget::default()).await.unwrap() {
            RunOutcome::Finished(f) => break f,
            RunOutcome::Continue(_) => {}
            // R-F8: half the list is more than the guard lets through; the admin confirms.
            RunOutcome::Held(_) => assert!(reconciler.confirm(&tenant, &link.id).await.unwrap()),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(finished.counts.failed, 0, "{:?}", finished.failures);
    assert_eq!(finished.counts.ended, 500);
    let removes = fake.calls("POST", "/contacts/remove");
    assert!(removes <= 4, "500 removals take ⌈500 ÷ 150⌉ = 4 calls, made {removes}");
    for i in 0..1000 {
        let on_list = fake.contact(&mail(i)).unwrap().list_ids.contains(&list);
        assert_eq!(on_list, i % 2 == 1, "{}", mail(i));
    }
    let ends = store
        .commands(&tenant, 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, c)| matches!(c, OptigemCommand::EndAssignment { .. }))
        .count();
    assert_eq!(ends, 500, "one end command per unsubscribed reader");
}

#[tokio::test]
async fn r_d2_a_batch_where_brevo_reports_one_address_failed_leaves_exactly_that_recipient_unapplied() {
    let fake = FakeBrevo::start().await;
    let list = fake.add_list("Rundbrief");
    let gateway = gateway(&fake);
    fake.add_contact("max.muster@example.com", Default::default(), &[]);
    fake.add_contact("lena@example.com", Default::default(), &[list]);
    // Erika was deleted in Brevo: Brevo lists her address under `failure`.
    let groups = vec![
        vec![action(EspOp::AddToList, list, "max.muster@example.com")],
        vec![action(EspOp::AddToList, list, "erika@example.com")],
        vec![action(EspOp::AddToList, list, "lena@example.com")],
    ];
    fake.clear_request_log();
    let results = gateway.apply_batch(&groups).await;
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(matches!(results[1], Err(EspError::Rejected(_))), "{:?}", results[1]);
    assert!(results[2].is_ok(), "already on the list is the target: {:?}", results[2]);
    assert_eq!(fake.calls("POST", "/contacts/add"), 1, "one call for the three");
    assert!(fake.contact("max.muster@example.com").unwrap().list_ids.contains(&list));
    assert!(fake.contact("erika@example.com").is_none());

    // Removals: one not on the list any more has reached the target too.
    let groups = vec![
        vec![action(EspOp::RemoveFromList, list, "max.muster@example.com")],
        vec![action(EspOp::RemoveFromList, list, "erika@example.com")],
    ];
    let results = gateway.apply_batch(&groups).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(fake.calls("POST", "/contacts/remove"), 1);
    assert!(!fake.contact("max.muster@example.com").unwrap().list_ids.contains(&list));
}
