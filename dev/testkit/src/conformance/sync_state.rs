//! Conformance cases: a link's versioned state (round trips, conflicts, the due index, concurrent
//! writers, paging).

use super::*;

/// Every item kind comes back as written, with version 1, by id and by e-mail.
pub async fn every_item_kind_round_trips_with_its_version(store: Arc<dyn StateStore>) {
    let l = link(0);
    store.put_link(&l).await.unwrap();
    let recipient = RecipientState { listed: true, linked: true, ..Default::default() };
    let commit = Commit {
        writes: vec![
            put_mirror(&l, mirror("a1", Some(email(1)), Some("2024-07-01"), "x"), None),
            put_mirror(&l, mirror("a2", Some(email(2)), None, ""), None),
            (StateWrite::Recipient { link: l.id.clone(), email: email(1), state: recipient.clone() }, None),
            (StateWrite::Approval { entry: approval(&l, email(1)) }, None),
        ],
        commands: vec![],
        audit: vec![],
        ..Default::default()
    };
    store.commit(&tenant(), commit).await.unwrap();
    let by_email = store.load(&l, &Slice { assignments: vec![], emails: vec![email(1)] }).await.unwrap();
    assert_eq!(by_email.view.mirror.keys().map(|k| k.as_str()).collect::<Vec<_>>(), vec!["a1"]);
    assert_eq!(by_email.view.mirror[&AssignmentId::new("a1")], mirror("a1", Some(email(1)), Some("2024-07-01"), "x"));
    assert_eq!(by_email.view.recipients[&email(1)], recipient);
    assert_eq!(by_email.view.approvals[&email(1)], approval(&l, email(1)));
    assert_eq!(by_email.versions.get(&ItemKey::Mirror(l.id.clone(), AssignmentId::new("a1"))), Some(&1));
    assert_eq!(by_email.versions.get(&ItemKey::Recipient(l.id.clone(), email(1).key().to_owned())), Some(&1));
    let by_id = store.load(&l, &Slice { assignments: vec![AssignmentId::new("a2")], emails: vec![] }).await.unwrap();
    assert_eq!(by_id.view.mirror.len(), 1);
    assert!(by_id.view.recipients.is_empty());
    let slice = Slice { assignments: vec![AssignmentId::new("a1")], emails: vec![email(1)] };
    let other = store.load(&link(1), &slice).await.unwrap();
    assert!(other.view.mirror.is_empty(), "items belong to their link");
}

/// A write at a stale version, or one that expects no item where there is one, conflicts and the
/// whole commit writes nothing.
pub async fn stale_versions_conflict_and_the_commit_writes_nothing(store: Arc<dyn StateStore>) {
    let l = link(0);
    let first = Commit {
        writes: vec![put_mirror(&l, mirror("a1", Some(email(1)), None, "v1"), None)],
        commands: vec![],
        audit: vec![],
        ..Default::default()
    };
    store.commit(&tenant(), first).await.unwrap();
    let second = Commit {
        writes: vec![put_mirror(&l, mirror("a1", Some(email(1)), None, "v2"), Some(1))],
        commands: vec![],
        audit: vec![],
        ..Default::default()
    };
    store.commit(&tenant(), second).await.unwrap();
    for expected in [None, Some(1), Some(3)] {
        let bad = Commit {
            writes: vec![
                put_mirror(&l, mirror("a9", Some(email(9)), None, "new"), None),
                put_mirror(&l, mirror("a1", Some(email(1)), None, "stale"), expected),
            ],
            commands: vec![end_command(1)],
            audit: vec![],
            ..Default::default()
        };
        assert_eq!(store.commit(&tenant(), bad).await, Err(StoreError::Conflict), "{expected:?}");
    }
    let slice = Slice { assignments: vec![AssignmentId::new("a1"), AssignmentId::new("a9")], emails: vec![] };
    let loaded = store.load(&l, &slice).await.unwrap();
    assert_eq!(marks(&loaded.view.mirror[&AssignmentId::new("a1")]), vec!["v2"]);
    assert!(!loaded.view.mirror.contains_key(&AssignmentId::new("a9")), "nothing of a failed commit is written");
    assert_eq!(loaded.versions[&ItemKey::Mirror(l.id.clone(), AssignmentId::new("a1"))], 2);
    assert!(store.commands(&tenant(), 0, 10).await.unwrap().is_empty());
}

/// `due` finds a link's entries whose next transition is on or before the date.
pub async fn due_finds_entries_whose_transition_has_come(store: Arc<dyn StateStore>) {
    let (l, other) = (link(0), link(1));
    let writes = vec![
        put_mirror(&l, mirror("a1", Some(email(1)), Some("2024-05-01"), ""), None),
        put_mirror(&l, mirror("a2", Some(email(2)), Some("2024-06-01"), ""), None),
        put_mirror(&l, mirror("a3", Some(email(3)), None, ""), None),
        put_mirror(&other, mirror("b1", Some(email(1)), Some("2024-01-01"), ""), None),
    ];
    store.commit(&tenant(), Commit { writes, commands: vec![], audit: vec![], ..Default::default() }).await.unwrap();
    let mut due = store.due(&l, "2024-05-31".parse().unwrap(), 100).await.unwrap();
    due.sort();
    assert_eq!(due, vec![AssignmentId::new("a1")]);
    let mut due = store.due(&l, "2024-06-01".parse().unwrap(), 100).await.unwrap();
    due.sort();
    assert_eq!(due, vec![AssignmentId::new("a1"), AssignmentId::new("a2")]);
    // Moving the date on removes an entry from the index.
    let moved = put_mirror(&l, mirror("a1", Some(email(1)), None, ""), Some(1));
    store
        .commit(&tenant(), Commit { writes: vec![moved], commands: vec![], audit: vec![], ..Default::default() })
        .await
        .unwrap();
    assert_eq!(store.due(&l, "2024-06-01".parse().unwrap(), 100).await.unwrap(), vec![AssignmentId::new("a2")]);
}

/// 50 concurrent read-modify-write loops on one item: exactly one writer wins each version and no
/// update is lost.
pub async fn concurrent_writers_on_one_item_lose_no_update(store: Arc<dyn StateStore>) {
    let l = link(0);
    let base = Commit {
        writes: vec![put_mirror(&l, mirror("a1", Some(email(1)), None, ""), None)],
        commands: vec![],
        audit: vec![],
        ..Default::default()
    };
    store.commit(&tenant(), base).await.unwrap();
    let mut tasks = Vec::new();
    for writer in 0..50 {
        let (store, l) = (store.clone(), l.clone());
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            loop {
                let slice = Slice { assignments: vec![AssignmentId::new("a1")], emails: vec![] };
                let loaded = store.load(&l, &slice).await.unwrap();
                let version = loaded.versions[&ItemKey::Mirror(l.id.clone(), AssignmentId::new("a1"))];
                let mut entry = loaded.view.mirror[&AssignmentId::new("a1")].clone();
                let mut m = marks(&entry);
                m.push(format!("w{writer}"));
                entry = entry.with_mark(&m.join(","));
                let commit = Commit {
                    writes: vec![put_mirror(&l, entry, Some(version))],
                    commands: vec![],
                    audit: vec![],
                    ..Default::default()
                };
                match store.commit(&tenant(), commit).await {
                    Ok(()) => {
                        won.push(version + 1);
                        return won;
                    }
                    Err(StoreError::Conflict) => tokio::task::yield_now().await,
                    Err(e) => panic!("unexpected store error: {e}"),
                }
            }
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        versions.extend(t.await.unwrap());
    }
    versions.sort();
    assert_eq!(versions, (2..=51).collect::<Vec<u64>>(), "exactly one winner per version");
    let loaded = store.load(&l, &Slice { assignments: vec![AssignmentId::new("a1")], emails: vec![] }).await.unwrap();
    let mut all = marks(&loaded.view.mirror[&AssignmentId::new("a1")]);
    all.sort();
    let mut expected: Vec<String> = (0..50).map(|w| format!("w{w}")).collect();
    expected.sort();
    assert_eq!(all, expected, "no lost update");
}

/// Loading by e-mail and `due` page through more items than one page of the store holds.
pub async fn queries_page_through_many_items(store: Arc<dyn StateStore>) {
    let l = link(0);
    for chunk in (0..120u32).collect::<Vec<_>>().chunks(20) {
        let writes = chunk
            .iter()
            .map(|n| put_mirror(&l, mirror(&format!("a{n:03}"), Some(email(7)), Some("2024-05-01"), ""), None))
            .collect();
        store
            .commit(&tenant(), Commit { writes, commands: vec![], audit: vec![], ..Default::default() })
            .await
            .unwrap();
    }
    let loaded = store.load(&l, &Slice { assignments: vec![], emails: vec![email(7)] }).await.unwrap();
    assert_eq!(loaded.view.mirror.len(), 120);
    assert_eq!(store.due(&l, "2024-05-01".parse().unwrap(), 1000).await.unwrap().len(), 120);
    assert_eq!(store.due(&l, "2024-05-01".parse().unwrap(), 50).await.unwrap().len(), 50);
}

/// R-A10: `assignments` pages a link's assignments in id order after an id, per link, and leaves out
/// deleted ones (an entry without a snapshot) and the link's other items.
pub async fn assignments_page_in_id_order_without_deleted_ones(store: Arc<dyn StateStore>) {
    let (l, other) = (link(0), link(1));
    let held = |id: &str| {
        let snapshot = crate::build::assignment(id, "nl-0", &format!("{id}@example.com"), at(1));
        MirrorEntry { snapshot: Some(snapshot), ..mirror(id, Some(email(1)), None, "") }
    };
    let mut writes: Vec<_> = (0..23).rev().map(|n| put_mirror(&l, held(&format!("a{n:02}")), None)).collect();
    writes.push(put_mirror(&l, mirror("a05x", None, None, ""), None)); // deleted: id and version only
    writes.push(put_mirror(&other, held("a00"), None));
    writes
        .push((StateWrite::Recipient { link: l.id.clone(), email: email(1), state: RecipientState::default() }, None));
    writes.push((StateWrite::Approval { entry: approval(&l, email(2)) }, None));
    store.commit(&tenant(), Commit { writes, commands: vec![], audit: vec![], ..Default::default() }).await.unwrap();
    let mut seen = Vec::new();
    let mut after: Option<AssignmentId> = None;
    loop {
        let page = store.assignments(&l.tenant, &l.id, after.as_ref(), 5).await.unwrap();
        assert!(page.len() <= 5);
        let Some(last) = page.last() else { break };
        after = Some(last.clone());
        seen.extend(page);
    }
    let want: Vec<AssignmentId> = (0..23).map(|n| AssignmentId::new(format!("a{n:02}"))).collect();
    assert_eq!(seen, want, "every assignment once, in order, none deleted");
    let past = store.assignments(&l.tenant, &l.id, Some(&AssignmentId::new("a22")), 5).await.unwrap();
    assert!(past.is_empty(), "past the last");
    assert_eq!(store.assignments(&other.tenant, &other.id, None, 10).await.unwrap(), vec![AssignmentId::new("a00")]);
    assert!(store.assignments(&l.tenant, &l.id, None, 0).await.unwrap().is_empty(), "limit 0");
}

/// H4: one commit writes at most DynamoDB's 100 transaction items, counted as DynamoDB counts them (a
/// new command is its id marker and feed entry plus the feed's counter). A larger one is refused whole,
/// as a permanent error naming the bound, in every store, so the in-memory suites see it too.
pub async fn h4_a_commit_over_100_items_is_refused_whole_in_every_store(store: Arc<dyn StateStore>) {
    let l = link(0);
    let due_on = "2024-05-01";
    let entries = |from: u32, n: u32| -> Vec<(StateWrite, Option<u64>)> {
        (from..from + n)
            .map(|i| put_mirror(&l, mirror(&format!("a{i:04}"), Some(email(i)), Some(due_on), ""), None))
            .collect()
    };
    let date = due_on.parse().unwrap();
    let full = Commit { writes: entries(0, MAX_COMMIT_ITEMS as u32), ..Default::default() };
    store.commit(&tenant(), full).await.expect("100 items fit one transaction");
    assert_eq!(store.due(&l, date, 1000).await.unwrap().len(), 100);

    let over = Commit { writes: entries(100, 101), ..Default::default() };
    let refused = store.commit(&tenant(), over).await.expect_err("101 items exceed one transaction");
    assert!(matches!(&refused, StoreError::Permanent(m) if m.contains("exceeds one transaction")), "{refused:?}");
    // 98 writes and one new command: 98 + marker + feed entry + counter = 101.
    let with_command = Commit { writes: entries(300, 98), commands: vec![end_command(1)], ..Default::default() };
    let refused = store.commit(&tenant(), with_command).await.expect_err("98 writes and a command are 101 items");
    assert!(matches!(&refused, StoreError::Permanent(m) if m.contains("exceeds one transaction")), "{refused:?}");
    assert_eq!(store.due(&l, date, 1000).await.unwrap().len(), 100, "a refused commit writes nothing");
    assert!(store.commands(&tenant(), 0, 10).await.unwrap().is_empty(), "nor its command");
}
