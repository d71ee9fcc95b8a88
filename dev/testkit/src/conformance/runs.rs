//! Conformance cases: run states, the recipient sweep and run chunks.

use super::*;

/// A link's run state is written only over the version it was read at: two reconcilers that read the same
/// checkpoint cannot both save theirs.
pub async fn run_states_are_saved_only_over_the_version_read(store: Arc<dyn StateStore>) {
    let (l, other) = (link(0), link(1));
    assert_eq!(store.run_state(&l.tenant, &l.id).await.unwrap(), None);
    store.save_run_state(&l.tenant, &l.id, r#"{"page":1}"#, None).await.unwrap();
    assert_eq!(
        store.save_run_state(&l.tenant, &l.id, r#"{"page":9}"#, None).await,
        Err(StoreError::Conflict),
        "exists already"
    );
    assert_eq!(store.run_state(&l.tenant, &l.id).await.unwrap(), Some((r#"{"page":1}"#.to_owned(), 1)));
    store.save_run_state(&l.tenant, &l.id, r#"{"page":2}"#, Some(1)).await.unwrap();
    assert_eq!(
        store.save_run_state(&l.tenant, &l.id, r#"{"page":3}"#, Some(1)).await,
        Err(StoreError::Conflict),
        "stale"
    );
    assert_eq!(store.run_state(&l.tenant, &l.id).await.unwrap(), Some((r#"{"page":2}"#.to_owned(), 2)));
    assert_eq!(store.run_state(&other.tenant, &other.id).await.unwrap(), None, "per link");
}

/// Recipient states page in key order after a key, per link; run chunks page in index order, per run,
/// and a chunk written again at an index replaces the first.
pub async fn recipients_and_run_chunks_page_in_key_order(store: Arc<dyn StateStore>) {
    let (l, other) = (link(0), link(1));
    let state = |listed: bool| RecipientState { listed, ..RecipientState::default() };
    let mut writes = Vec::new();
    for n in (0..25).rev() {
        writes.push((StateWrite::Recipient { link: l.id.clone(), email: email(n), state: state(n % 2 == 0) }, None));
    }
    writes.push((StateWrite::Recipient { link: other.id.clone(), email: email(99), state: state(true) }, None));
    writes.push((StateWrite::Approval { entry: approval(&l, email(3)) }, None));
    store.commit(&tenant(), Commit { writes, commands: vec![], audit: vec![], ..Default::default() }).await.unwrap();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.recipients(&l.tenant, &l.id, after.as_deref(), 7).await.unwrap();
        assert!(page.len() <= 7);
        let Some((last, _)) = page.last() else { break };
        after = Some(last.key().to_owned());
        seen.extend(page);
    }
    let mut keys: Vec<String> = (0..25).map(|n| email(n).key().to_owned()).collect();
    keys.sort();
    assert_eq!(
        seen.iter().map(|(e, _)| e.key().to_owned()).collect::<Vec<_>>(),
        keys,
        "every recipient once, in order"
    );
    let listed = seen.iter().filter(|(_, s)| s.listed).count();
    assert_eq!(listed, 13, "states come back as written");
    assert_eq!(store.recipients(&other.tenant, &other.id, None, 10).await.unwrap().len(), 1, "per link");

    let expires = at(30);
    for index in [0u64, 1, 2, 3, 10, 11] {
        store.put_run_chunk(&l.tenant, &l.id, "r1/seen", index, &format!("v{index}"), expires).await.unwrap();
    }
    store.put_run_chunk(&l.tenant, &l.id, "r1/seen", 2, "v2'", expires).await.unwrap();
    store.put_run_chunk(&l.tenant, &l.id, "r1/ends", 0, "other kind", expires).await.unwrap();
    store.put_run_chunk(&other.tenant, &other.id, "r1/seen", 0, "other link", expires).await.unwrap();
    let all = store.run_chunks(&l.tenant, &l.id, "r1/seen", None, 100).await.unwrap();
    let want: Vec<(u64, String)> =
        [(0, "v0"), (1, "v1"), (2, "v2'"), (3, "v3"), (10, "v10"), (11, "v11")].map(|(i, v)| (i, v.to_owned())).into();
    assert_eq!(all, want);
    assert_eq!(
        store.run_chunks(&l.tenant, &l.id, "r1/seen", Some(2), 2).await.unwrap(),
        want[3..5].to_vec(),
        "after, limit"
    );
    assert_eq!(store.run_chunks(&l.tenant, &l.id, "r1/seen", Some(11), 5).await.unwrap(), vec![], "past the last");
    assert_eq!(store.run_chunks(&l.tenant, &l.id, "r1", None, 5).await.unwrap(), vec![], "a run's name is exact");
}
