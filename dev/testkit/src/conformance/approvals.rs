//! Conformance cases: the approval queue.

use super::*;

/// Pending approval entries page oldest first; decided ones leave the queue.
pub async fn pending_approvals_page_oldest_first(store: Arc<dyn StateStore>) {
    let l = link(1);
    let mut writes = Vec::new();
    for n in 0..5u32 {
        let mut entry = approval(&l, email(n));
        // Signed up on days 9, 8, 7, 6, 5: the last one written waits longest.
        entry.first_seen = at(9 - n);
        if n == 2 {
            entry.status = ApprovalStatus::Rejected;
            entry.decision = Some(Decision::Reject { at: at(10) });
        }
        writes.push((StateWrite::Approval { entry }, None));
    }
    let mut other = approval(&link(2), email(9));
    other.first_seen = at(1);
    writes.push((StateWrite::Approval { entry: other }, None));
    store.commit(&tenant(), Commit { writes, ..Commit::default() }).await.unwrap();

    let keys = |entries: &[ApprovalEntry]| entries.iter().map(|e| e.email.key().to_owned()).collect::<Vec<_>>();
    let first = store.pending_approvals(&l.tenant, &l.id, None, 2).await.unwrap();
    assert_eq!(keys(&first), vec!["user4@example.com", "user3@example.com"]);
    let rest = store.pending_approvals(&l.tenant, &l.id, Some(&first[1].queue_position()), 10).await.unwrap();
    assert_eq!(keys(&rest), vec!["user1@example.com", "user0@example.com"], "the rejected one is not listed");
    assert!(store.pending_approvals(&l.tenant, &l.id, Some(&rest[1].queue_position()), 10).await.unwrap().is_empty());

    // Deciding takes an entry out of the queue.
    let loaded = store.load(&l, &Slice { emails: vec![email(4)], ..Slice::default() }).await.unwrap();
    let mut decided = loaded.view.approvals[&email(4)].clone();
    let version = loaded.versions[&ItemKey::Approval(l.id.clone(), email(4).key().to_owned())];
    decided.status = ApprovalStatus::Approved;
    decided.decision = Some(Decision::Reject { at: at(11) });
    let commit = Commit { writes: vec![(StateWrite::Approval { entry: decided }, Some(version))], ..Commit::default() };
    store.commit(&tenant(), commit).await.unwrap();
    let now_first = store.pending_approvals(&l.tenant, &l.id, None, 1).await.unwrap();
    assert_eq!(keys(&now_first), vec!["user3@example.com"]);
}
