//! Conformance case: erasure mode's side of the store (R-J2, R-J3, R-K1). The examples are the seeds':
//! Max Muster unsubscribes from the list "Rundbrief" (link `rundbrief`), and a second tenant chose the
//! same ids.

use super::*;

fn max() -> Email {
    Email::parse("max.muster@example.org").unwrap()
}

fn tombstone(day: u32) -> Tombstone {
    Tombstone {
        at: at(day),
        source: UnsubscribeSource {
            provider: Provider::Brevo,
            account: AccountId::new("acc-0"),
            cause: UnsubscribeCause::Unsubscribed,
        },
    }
}

/// The mirror entry as erasure mode leaves it: id and version, no address, no snapshot.
fn forgotten(entry: &MirrorEntry) -> MirrorEntry {
    MirrorEntry { email: None, snapshot: None, version: entry.version + 1, ..entry.clone() }
}

/// An erased recipient leaves nothing of the address in the link (recipient state, approval entry, and
/// with the commit the engine writes after it, the mirror's address); `erased` finds the tombstone by the
/// address, the later tombstone wins, repeating the erasure is harmless, and another tenant with the
/// same ids sees nothing of it and keeps its own state (R-K1).
pub async fn r_j3_an_erased_recipient_leaves_only_its_tombstone_per_tenant(store: Arc<dyn StateStore>) {
    let (a, b) = (TenantId::new("t-a"), TenantId::new("t-b"));
    let of = |tenant: &TenantId| Link { id: LinkId::new("rundbrief"), tenant: tenant.clone(), ..link(0) };
    let (la, lb) = (of(&a), of(&b));
    let entry = mirror("A-1", Some(max()), None, "max");
    for (tenant, l) in [(&a, &la), (&b, &lb)] {
        store.put_link(l).await.unwrap();
        let recipient = RecipientState { listed: true, active: true, ..RecipientState::default() };
        let writes = vec![
            put_mirror(l, entry.clone(), None),
            (StateWrite::Recipient { link: l.id.clone(), email: max(), state: recipient }, None),
            (StateWrite::Approval { entry: approval(l, max()) }, None),
        ];
        store.commit(tenant, Commit { writes, ..Default::default() }).await.unwrap();
    }
    assert_eq!(store.erased(&a, &max()).await.unwrap(), None, "nothing erased yet");
    // Max unsubscribed in a: his state is on no list, expirable, and its R-J3 tombstone is kept under
    // the keyed hash beside it (R-J6). The erasure leaves the tenant's erased marker alone, so a later
    // load shows no recipient state of the address (only `erased` knows of it).
    let unsubscribed = StateWrite::Recipient {
        link: la.id.clone(),
        email: max(),
        state: RecipientState { tombstone: Some(tombstone(1)), ..RecipientState::default() },
    };
    let version = store.load(&la, &Slice { assignments: vec![], emails: vec![max()] }).await.unwrap().versions
        [&ItemKey::of(&unsubscribed)];
    let expiry = Expiry { items: [(ItemKey::of(&unsubscribed), chrono::Duration::days(30))].into(), commands: None };
    store
        .commit(&a, Commit { writes: vec![(unsubscribed, Some(version))], expiry, ..Default::default() })
        .await
        .unwrap();

    store.erase_recipient(&a, &la.id, &max(), &tombstone(3)).await.unwrap();
    let slice = Slice { assignments: vec![AssignmentId::new("A-1")], emails: vec![max()] };
    let version =
        store.load(&la, &slice).await.unwrap().versions.get(&ItemKey::Mirror(la.id.clone(), entry.id.clone())).copied();
    store
        .commit(&a, Commit { writes: vec![put_mirror(&la, forgotten(&entry), version)], ..Default::default() })
        .await
        .unwrap();

    let seen = store.load(&la, &slice).await.unwrap().view;
    assert!(seen.recipients.is_empty(), "the recipient state and its link tombstone are gone: {:?}", seen.recipients);
    assert!(seen.approvals.is_empty(), "the approval entry is gone");
    assert!(store.pending_approvals(&a, &la.id, None, 10).await.unwrap().is_empty(), "no approval waits");
    assert_eq!(
        seen.mirror.get(&entry.id).map(|e| e.email.clone()),
        Some(None),
        "the mirror keeps the id, not the address"
    );
    assert_eq!(store.erased(&a, &max()).await.unwrap(), Some(tombstone(3)), "found by the address");
    let other = Email::parse("erika.muster@example.org").unwrap();
    assert_eq!(store.erased(&a, &other).await.unwrap(), None, "only that address");

    // Repeating it is harmless; the later tombstone wins, an earlier one does not replace it.
    store.erase_recipient(&a, &la.id, &max(), &tombstone(3)).await.unwrap();
    store.erase_recipient(&a, &la.id, &max(), &tombstone(2)).await.unwrap();
    assert_eq!(store.erased(&a, &max()).await.unwrap(), Some(tombstone(3)));
    store.erase_recipient(&a, &la.id, &max(), &tombstone(5)).await.unwrap();
    assert_eq!(store.erased(&a, &max()).await.unwrap(), Some(tombstone(5)));

    // R-K1: the other tenant with the same ids sees no tombstone and keeps its own state.
    assert_eq!(store.erased(&b, &max()).await.unwrap(), None, "b erased nothing");
    let seen_b = store.load(&lb, &slice).await.unwrap().view;
    assert!(seen_b.recipients.contains_key(&max()), "b's recipient state stays");
    assert!(seen_b.approvals.contains_key(&max()), "b's approval entry stays");
    assert_eq!(seen_b.mirror.get(&entry.id).and_then(|e| e.email.clone()), Some(max()), "b's mirror stays");
}
