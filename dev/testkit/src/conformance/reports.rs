//! Conformance cases: the deletion report outbox (R-J2).

use super::*;

fn report(n: u32, day: u32) -> OptigemCommand {
    OptigemCommand::ErasureReport {
        id: CommandId::new(format!("erasure-{n}")),
        link: link(1).id,
        newsletter: link(1).newsletter,
        email: email(n),
        ended: CommandId::new(format!("end-{n}")),
        deleted: vec![ErasedItem { system: "brevo".into(), item: "contact".into() }],
        kept: vec![KeptItem { system: "optisync".into(), item: "keyed_hash".into(), reason: "R-J3".into() }],
        notify: Some(Email::parse("datenschutz@example.org").unwrap()),
        at: at(day),
    }
}

/// A commit that appends an `erasure_report` keeps its report once, per tenant, until it is delivered; a
/// dry run's commit (commands with an expiry) keeps none. Reports page newest first; a delivered report
/// keeps its first delivery time.
pub async fn erasure_reports_are_kept_once_until_delivered(store: Arc<dyn StateStore>) {
    let t = tenant();
    let commit = Commit { commands: vec![report(1, 3), end_command(1), report(2, 5)], ..Default::default() };
    store.commit(&t, commit).await.unwrap();
    // The same report committed again (a retried input) is not kept twice.
    store.commit(&t, Commit { commands: vec![report(1, 3), report(3, 4)], ..Default::default() }).await.unwrap();
    let preview = Commit {
        commands: vec![report(4, 6)],
        expiry: Expiry { commands: Some(chrono::Duration::days(1)), ..Default::default() },
        ..Default::default()
    };
    store.commit(&t, preview).await.unwrap();

    let all = store.erasure_reports(&t, None, 10).await.unwrap();
    let ids: Vec<String> = all.iter().map(|r| r.id.to_string()).collect();
    assert_eq!(ids, ["erasure-2", "erasure-3", "erasure-1"], "newest first, once each, no dry run's");
    let first = &all[2];
    assert_eq!((first.tenant.clone(), first.email.clone(), first.at), (t.clone(), email(1), at(3)));
    assert_eq!(first.ended, CommandId::new("end-1"));
    assert_eq!(first.deleted, vec![ErasedItem { system: "brevo".into(), item: "contact".into() }]);
    assert_eq!(first.kept.len(), 1);
    assert_eq!(first.delivered_at, None);

    let page = store.erasure_reports(&t, None, 2).await.unwrap();
    let rest = store.erasure_reports(&t, Some(&page[1].position()), 2).await.unwrap();
    assert_eq!(page.iter().chain(&rest).map(|r| r.id.to_string()).collect::<Vec<_>>(), ids);

    let waiting = store.undelivered_reports(&t, 10).await.unwrap();
    assert_eq!(waiting.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["erasure-1", "erasure-3", "erasure-2"]);
    assert_eq!(store.undelivered_reports(&t, 1).await.unwrap().len(), 1);

    store.mark_report_delivered(&t, &CommandId::new("erasure-1"), at(7)).await.unwrap();
    store.mark_report_delivered(&t, &CommandId::new("erasure-1"), at(8)).await.unwrap();
    store.mark_report_delivered(&t, &CommandId::new("erasure-9"), at(8)).await.unwrap();
    let waiting = store.undelivered_reports(&t, 10).await.unwrap();
    assert_eq!(waiting.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["erasure-3", "erasure-2"]);
    let delivered = store.erasure_reports(&t, None, 10).await.unwrap();
    assert_eq!(delivered[2].delivered_at, Some(at(7)), "the first delivery time stays");

    // R-K1: another tenant sees none of them, and its own report with the same id is its own.
    let other = TenantId::new("other");
    assert!(store.erasure_reports(&other, None, 10).await.unwrap().is_empty());
    store.mark_report_delivered(&other, &CommandId::new("erasure-2"), at(8)).await.unwrap();
    assert_eq!(store.undelivered_reports(&t, 10).await.unwrap().len(), 2);
    store.commit(&other, Commit { commands: vec![report(1, 3)], ..Default::default() }).await.unwrap();
    assert_eq!(store.undelivered_reports(&other, 10).await.unwrap().len(), 1);
    assert_eq!(store.erasure_reports(&t, None, 10).await.unwrap().len(), 3);
}
