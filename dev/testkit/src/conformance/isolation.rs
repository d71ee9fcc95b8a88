//! Conformance case: two tenants with the same ids (R-K1).

use super::*;
use optisync_ports::names::lease;

/// Two tenants that chose the same link, newsletter, list and assignment ids (installations number
/// their records independently, and `rundbrief` is the docs' own example) go through every store
/// operation; neither sees, changes, leases or expires anything of the other. ESP account ids are
/// the one exception: they name secrets, so the second tenant's account is refused and the first's
/// stays as it was.
pub async fn two_tenants_with_the_same_ids_share_nothing(store: Arc<dyn StateStore>) {
    let (a, b) = (TenantId::new("t-a"), TenantId::new("t-b"));
    let of = |tenant: &TenantId| Link { id: LinkId::new("rundbrief"), tenant: tenant.clone(), ..link(0) };
    let (la, lb) = (of(&a), of(&b));

    // Links: both kept, each under its tenant.
    store.put_link(&la).await.unwrap();
    store.put_link(&lb).await.unwrap();
    assert_eq!(store.links(&a).await.unwrap(), vec![la.clone()]);
    assert_eq!(store.links(&b).await.unwrap(), vec![lb.clone()]);
    assert_eq!(store.link(&a, &la.id).await.unwrap().map(|l| l.tenant), Some(a.clone()));
    assert_eq!(store.all_links().await.unwrap(), vec![la.clone(), lb.clone()]);
    let saved_again = Link { status: LinkStatus::Linking, ..lb.clone() };
    store.put_link(&saved_again).await.unwrap();
    assert_eq!(store.link(&a, &la.id).await.unwrap(), Some(la.clone()), "b's save left a's link alone");
    store.put_link(&lb).await.unwrap();

    // Settings.
    let settings = TenantSettings { no_statement_blocks: true, ..TenantSettings::default() };
    store.put_tenant_settings(&a, &settings).await.unwrap();
    assert_eq!(store.tenant_settings(&b).await.unwrap(), TenantSettings::default());

    // State items under the same item keys: written from nothing by both, each with its own versions.
    let recipient = |listed: bool| RecipientState { listed, ..RecipientState::default() };
    let due = Some("2024-06-01");
    let commit_a = Commit {
        writes: vec![
            put_mirror(&la, mirror("a1", Some(email(1)), due, "from-a"), None),
            (StateWrite::Recipient { link: la.id.clone(), email: email(1), state: recipient(true) }, None),
            (StateWrite::Approval { entry: approval(&la, email(2)) }, None),
        ],
        commands: vec![end_command(1)],
        audit: vec![audit_entry(&la, 1)],
        ..Default::default()
    };
    store.commit(&a, commit_a).await.unwrap();
    let commit_b = Commit {
        writes: vec![
            put_mirror(&lb, mirror("a1", Some(email(1)), None, "from-b"), None),
            (StateWrite::Recipient { link: lb.id.clone(), email: email(1), state: recipient(false) }, None),
        ],
        commands: vec![end_command(1)],
        audit: vec![],
        ..Default::default()
    };
    store.commit(&b, commit_b).await.expect("b's items are b's own: nothing of a's is in the way");

    let slice = Slice { assignments: vec![AssignmentId::new("a1")], emails: vec![email(1), email(2)] };
    let seen_a = store.load(&la, &slice).await.unwrap();
    let seen_b = store.load(&lb, &slice).await.unwrap();
    assert_eq!(marks(&seen_a.view), vec!["from-a"]);
    assert_eq!(marks(&seen_b.view), vec!["from-b"]);
    assert!(seen_a.view.recipients[&email(1)].listed && !seen_b.view.recipients[&email(1)].listed);
    assert_eq!(seen_a.view.approvals.len(), 1);
    assert!(seen_b.view.approvals.is_empty(), "a's signup (names, consent) is not b's");
    assert!(seen_b.versions.values().all(|v| *v == 1), "b's versions count b's writes only");

    // A write of b over the version it read changes b's item only.
    let update_b = Commit {
        writes: vec![put_mirror(&lb, mirror("a1", Some(email(1)), None, "b-again"), Some(1))],
        ..Commit::default()
    };
    store.commit(&b, update_b).await.unwrap();
    assert_eq!(marks(&store.load(&la, &slice).await.unwrap().view), vec!["from-a"]);

    // The due index, the sweep, the queue and the audit trail.
    let day = "2024-06-30".parse().unwrap();
    assert_eq!(store.due(&la, day, 10).await.unwrap(), vec![AssignmentId::new("a1")]);
    assert!(store.due(&lb, day, 10).await.unwrap().is_empty(), "a's month-end is not b's");
    assert_eq!(store.recipients(&a, &la.id, None, 10).await.unwrap().len(), 1);
    assert!(!store.recipients(&b, &lb.id, None, 10).await.unwrap()[0].1.listed);
    assert_eq!(store.pending_approvals(&a, &la.id, None, 10).await.unwrap().len(), 1);
    assert!(store.pending_approvals(&b, &lb.id, None, 10).await.unwrap().is_empty());
    assert_eq!(store.audit(&a, &la.id, at(2), 10).await.unwrap().len(), 1);
    assert!(store.audit(&b, &lb.id, at(2), 10).await.unwrap().is_empty());

    // The feeds: the same command id in both, each appended once, results apart.
    assert_eq!(store.commands(&a, 0, 10).await.unwrap().len(), 1);
    assert_eq!(store.commands(&b, 0, 10).await.unwrap().len(), 1);
    let id = end_command(1).id().clone();
    store.record_result(&a, &id, &CommandResult::Failed { reason: "locked".into() }).await.unwrap();
    assert_eq!(store.command_result(&b, &id).await.unwrap(), None);

    // Run states, run chunks and leases.
    store.save_run_state(&a, &la.id, "a's checkpoint", None).await.unwrap();
    assert_eq!(store.run_state(&b, &lb.id).await.unwrap(), None);
    store.save_run_state(&b, &lb.id, "b's checkpoint", None).await.expect("b has no run state yet");
    assert_eq!(store.run_state(&a, &la.id).await.unwrap().map(|(v, _)| v), Some("a's checkpoint".into()));
    store.put_run_chunk(&a, &la.id, "r1/seen", 0, "a's chunk", at(20)).await.unwrap();
    assert!(store.run_chunks(&b, &lb.id, "r1/seen", None, 10).await.unwrap().is_empty());
    let (from, until) = (at(1), at(2));
    assert!(store.try_lease(&lease::run(&a, &la.id), "run-a", from, until).await.unwrap());
    assert!(store.try_lease(&lease::run(&b, &lb.id), "run-b", from, until).await.unwrap(), "a's run does not hold b's");
    assert!(store.try_lease(&lease::recipient(&b, email(1).key()), "b", from, until).await.unwrap());
    assert!(store.try_lease(&lease::recipient(&a, email(1).key()), "a", from, until).await.unwrap());
}

fn audit_entry(l: &Link, n: usize) -> AuditEntry {
    AuditEntry {
        link: l.id.clone(),
        at: at(1),
        input: "assignment.changed".into(),
        assignment: Some(AssignmentId::new(format!("a{n}"))),
        recipient: Some(email(1).masked()),
        esp: vec![],
        commands: vec![],
        writes: 1,
    }
}

fn marks(view: &LinkView) -> Vec<String> {
    view.mirror
        .values()
        .flat_map(|e| &e.verdict.reasons)
        .filter_map(|r| match r {
            InactiveReason::DeliveryBlocked { kind } => Some(kind.to_string()),
            _ => None,
        })
        .collect()
}
