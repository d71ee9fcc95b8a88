//! Conformance cases: the audit trail.

use super::*;

/// Audit entries are written with their commit (a conflicting commit leaves none), come back newest
/// first per link, page past the store's query pages, and are gone once expired.
pub async fn audit_entries_are_kept_with_their_commit_newest_first(store: Arc<dyn StateStore>) {
    let (l, other) = (link(0), link(1));
    store.put_link(&l).await.unwrap();
    store.put_link(&other).await.unwrap();
    let entry = |link: &Link, day: u32, n: usize| AuditEntry {
        link: link.id.clone(),
        at: at(day),
        input: "assignment.changed".into(),
        assignment: Some(AssignmentId::new(format!("a{n}"))),
        recipient: Some(email(1).masked()),
        esp: vec![optisync_domain::audit::AuditOperation { recipient: email(1).masked(), op: "add_to_list".into() }],
        commands: vec![],
        writes: n,
    };
    for n in 0..10 {
        let commit = Commit {
            writes: vec![],
            commands: vec![],
            audit: vec![entry(&l, 1 + (n as u32) / 3, n)],
            ..Default::default()
        };
        store.commit(&tenant(), commit).await.unwrap();
    }
    let both = Commit {
        writes: vec![],
        commands: vec![],
        audit: vec![entry(&l, 5, 10), entry(&other, 5, 11)],
        ..Default::default()
    };
    store.commit(&tenant(), both).await.unwrap();
    // A commit that loses its condition writes no audit entry either.
    let lost = Commit {
        writes: vec![put_mirror(&l, mirror("a1", Some(email(1)), None, ""), Some(4))],
        commands: vec![],
        audit: vec![entry(&l, 6, 99)],
        ..Default::default()
    };
    assert_eq!(store.commit(&tenant(), lost).await, Err(StoreError::Conflict));

    let trail = store.audit(&l.tenant, &l.id, at(7), 100).await.unwrap();
    let order: Vec<usize> = trail.iter().map(|e| e.writes).collect();
    assert_eq!(order.len(), 11, "{order:?}");
    assert_eq!(order[0], 10, "newest first: {order:?}");
    assert!(trail.windows(2).all(|w| w[0].at >= w[1].at), "{order:?}");
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..=10).collect::<Vec<_>>(), "each entry once");
    assert_eq!(trail[0], entry(&l, 5, 10), "round trip");
    assert_eq!(store.audit(&l.tenant, &l.id, at(7), 4).await.unwrap().len(), 4, "limit");
    assert_eq!(store.audit(&other.tenant, &other.id, at(7), 100).await.unwrap(), vec![entry(&other, 5, 11)]);
    // Expired: only what is younger than the retention is returned.
    let later =
        at(1) + chrono::Duration::days(optisync_domain::audit::AUDIT_RETENTION_DAYS) + chrono::Duration::hours(1);
    let left = store.audit(&l.tenant, &l.id, later, 100).await.unwrap();
    assert!(
        left.iter().all(|e| e.at > at(1)) && left.len() == 8,
        "{:?}",
        left.iter().map(|e| e.writes).collect::<Vec<_>>()
    );
}
