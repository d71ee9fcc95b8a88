//! What the conformance suite cannot see: the file layout (ids with separators, the e-mail index),
//! everything surviving a restart, and errors that are classified and free of personal data.

use chrono::TimeZone;
use optisync_domain::rules::Verdict;
use optisync_domain::*;
use optisync_embedded::EmbeddedStore;
use optisync_ports::prelude::*;
use optisync_ports::{Commit, ItemKey, Slice, StoreError};
use optisync_testkit::build;
use std::path::Path;

fn at(day: u32) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc.with_ymd_and_hms(2024, 6, day, 12, 0, 0).unwrap()
}

fn link(id: &str, tenant: &str) -> Link {
    build::link(id, tenant, "nl", build::esp(Provider::Brevo, "acc"), "list")
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

fn mirror(id: &str, mail: Option<&str>, next: Option<&str>) -> MirrorEntry {
    MirrorEntry {
        id: AssignmentId::new(id),
        version: 1,
        snapshot: None,
        email: mail.map(email),
        verdict: Verdict::default(),
        next_transition: next.map(|d| d.parse().unwrap()),
        subscribed_at: Some(at(1)),
        email_since: None,
        end_requested: None,
    }
}

fn put_mirror(l: &Link, entry: MirrorEntry, expected: Option<u64>) -> (StateWrite, Option<u64>) {
    (StateWrite::Mirror { link: l.id.clone(), entry: Box::new(entry) }, expected)
}

fn approval(l: &Link, mail: &str) -> ApprovalEntry {
    ApprovalEntry {
        link: l.id.clone(),
        email: email(mail),
        signup: Signup { first_name: Some(PersonalText::new("Erika")), ..Default::default() },
        first_seen: at(2),
        last_seen: at(2),
        signups: 1,
        status: ApprovalStatus::Pending,
        match_command: CommandId::new("match-1"),
        decision: None,
        created: None,
    }
}

fn end_command(id: &str) -> OptigemCommand {
    OptigemCommand::EndAssignment {
        id: CommandId::new(id),
        assignment: AssignmentId::new("a1"),
        newsletter: NewsletterId::new("nl"),
        end: "2024-05".parse().unwrap(),
        unsubscription: Unsubscription {
            date: "2024-06-03".parse().unwrap(),
            source: UnsubscribeSource {
                provider: Provider::Brevo,
                account: AccountId::new("acc"),
                cause: UnsubscribeCause::Unsubscribed,
            },
        },
    }
}

fn commands(ids: &[&str]) -> Commit {
    Commit {
        writes: vec![],
        commands: ids.iter().copied().map(end_command).collect(),
        audit: vec![],
        ..Default::default()
    }
}

fn writes(writes: Vec<(StateWrite, Option<u64>)>) -> Commit {
    Commit { writes, commands: vec![], audit: vec![], ..Default::default() }
}

fn by_email(mail: &str) -> Slice {
    Slice { assignments: vec![], emails: vec![email(mail)] }
}

fn by_id(id: &str) -> Slice {
    Slice { assignments: vec![AssignmentId::new(id)], emails: vec![] }
}

fn store_in(dir: &Path) -> EmbeddedStore {
    EmbeddedStore::open(dir.join("state.redb")).expect("open")
}

fn feed_ids(feed: &[(u64, OptigemCommand)]) -> Vec<(u64, String)> {
    feed.iter().map(|(s, c)| (*s, c.id().to_string())).collect()
}

#[tokio::test]
async fn all_state_survives_a_restart_and_versions_and_sequences_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let (l, tenant) = (link("l1", "t1"), TenantId::new("t1"));
    let settings = TenantSettings { no_statement_blocks: true, ..Default::default() };
    let recipient = RecipientState { listed: true, linked: true, ..Default::default() };
    {
        let store = store_in(dir.path());
        store.put_link(&l).await.unwrap();
        store.put_tenant_settings(&tenant, &settings).await.unwrap();
        let commit = Commit {
            writes: vec![
                put_mirror(&l, mirror("a1", Some("Max@Example.com"), Some("2024-07-01")), None),
                (
                    StateWrite::Recipient {
                        link: l.id.clone(),
                        email: email("Max@Example.com"),
                        state: recipient.clone(),
                    },
                    None,
                ),
                (StateWrite::Approval { entry: approval(&l, "Max@Example.com") }, None),
            ],
            commands: vec![end_command("c1"), end_command("c2")],
            audit: vec![],
            ..Default::default()
        };
        store.commit(&tenant, commit).await.unwrap();
        assert!(store.try_lease("recipient", "runner-1", at(1), at(3)).await.unwrap());
    }
    let store = store_in(dir.path());
    assert_eq!(store.links(&tenant).await.unwrap(), vec![l.clone()]);
    assert_eq!(store.tenant_settings(&tenant).await.unwrap(), settings);
    let loaded = store.load(&l, &by_email("max@example.com")).await.unwrap();
    assert_eq!(loaded.view.mirror[&AssignmentId::new("a1")], mirror("a1", Some("Max@Example.com"), Some("2024-07-01")));
    let (stored_email, state) = loaded.view.recipients.iter().next().unwrap();
    assert_eq!(stored_email.as_str(), "Max@Example.com", "the spelling is kept");
    assert_eq!(state, &recipient);
    assert_eq!(loaded.view.approvals[&email("max@example.com")], approval(&l, "Max@Example.com"));
    assert!(loaded.versions.values().all(|v| *v == 1));
    assert_eq!(store.due(&l, "2024-07-01".parse().unwrap(), 10).await.unwrap(), vec![AssignmentId::new("a1")]);
    assert!(!store.try_lease("recipient", "runner-2", at(2), at(3)).await.unwrap(), "the lease is still held");

    // Versions go on from the stored ones; the feed keeps its ids and its sequence.
    let next = put_mirror(&l, mirror("a1", Some("max@example.com"), None), Some(1));
    store
        .commit(
            &tenant,
            Commit {
                writes: vec![next],
                commands: vec![end_command("c2"), end_command("c3")],
                audit: vec![],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let loaded = store.load(&l, &by_id("a1")).await.unwrap();
    assert_eq!(loaded.versions[&ItemKey::Mirror(l.id.clone(), AssignmentId::new("a1"))], 2);
    let feed = store.commands(&tenant, 0, 10).await.unwrap();
    assert_eq!(feed_ids(&feed), vec![(1, "c1".into()), (2, "c2".into()), (3, "c3".into())]);
}

#[tokio::test]
async fn ids_that_contain_separators_or_share_a_prefix_stay_apart() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    let (a, b) = (link("l1", "t/a"), link("l1/0/x", "t/a/b"));
    store.put_link(&a).await.unwrap();
    store.put_link(&b).await.unwrap();
    assert_eq!(store.links(&a.tenant).await.unwrap(), vec![a.clone()]);
    assert_eq!(store.links(&b.tenant).await.unwrap(), vec![b.clone()]);

    store
        .commit(&a.tenant, writes(vec![put_mirror(&a, mirror("x", Some("a@example.com"), Some("2024-01-01")), None)]))
        .await
        .unwrap();
    store
        .commit(&b.tenant, writes(vec![put_mirror(&b, mirror("y", Some("a@example.com"), Some("2024-01-01")), None)]))
        .await
        .unwrap();
    let loaded = store.load(&a, &by_email("a@example.com")).await.unwrap();
    assert_eq!(loaded.view.mirror.keys().map(|k| k.as_str()).collect::<Vec<_>>(), vec!["x"]);
    assert_eq!(store.due(&a, "2024-01-01".parse().unwrap(), 10).await.unwrap(), vec![AssignmentId::new("x")]);

    store.commit(&a.tenant, commands(&["c1"])).await.unwrap();
    store.commit(&b.tenant, commands(&["c2"])).await.unwrap();
    assert_eq!(feed_ids(&store.commands(&a.tenant, 0, 10).await.unwrap()), vec![(1, "c1".into())]);
    assert_eq!(feed_ids(&store.commands(&b.tenant, 0, 10).await.unwrap()), vec![(1, "c2".into())]);
}

#[tokio::test]
async fn the_email_index_follows_changes_of_the_email_used() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    let (l, t) = (link("l1", "t1"), TenantId::new("t1"));
    store.commit(&t, writes(vec![put_mirror(&l, mirror("a1", Some("old@example.com"), None), None)])).await.unwrap();
    // An address that starts like another one is a different address.
    store.commit(&t, writes(vec![put_mirror(&l, mirror("a2", Some("old@example.comm"), None), None)])).await.unwrap();
    let ids = |slice: Slice| {
        let store = &store;
        let l = &l;
        async move {
            let loaded = store.load(l, &slice).await.unwrap();
            loaded.view.mirror.keys().map(|k| k.as_str().to_owned()).collect::<Vec<_>>()
        }
    };
    assert_eq!(ids(by_email("OLD@example.com")).await, vec!["a1"]);

    store.commit(&t, writes(vec![put_mirror(&l, mirror("a1", Some("new@example.com"), None), Some(1))])).await.unwrap();
    assert!(ids(by_email("old@example.com")).await.is_empty());
    assert_eq!(ids(by_email("new@example.com")).await, vec!["a1"]);

    // A deletion drops the snapshot and the e-mail: the entry is found by id only.
    store.commit(&t, writes(vec![put_mirror(&l, mirror("a1", None, None), Some(2))])).await.unwrap();
    assert!(ids(by_email("new@example.com")).await.is_empty());
    assert_eq!(ids(by_id("a1")).await, vec!["a1"]);

    // A failed commit leaves no index entry behind either.
    let failed = writes(vec![
        put_mirror(&l, mirror("a3", Some("ghost@example.com"), None), None),
        put_mirror(&l, mirror("a1", None, None), Some(1)),
    ]);
    assert_eq!(store.commit(&t, failed).await, Err(StoreError::Conflict));
    assert!(ids(by_email("ghost@example.com")).await.is_empty());
}

#[tokio::test]
async fn edge_cases_of_due_and_the_feed() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    let (l, t) = (link("l1", "t1"), TenantId::new("t1"));
    let entries = (0..5).map(|n| put_mirror(&l, mirror(&format!("a{n}"), None, Some("2024-01-01")), None)).collect();
    store.commit(&t, writes(entries)).await.unwrap();
    assert!(store.due(&l, "2024-01-01".parse().unwrap(), 0).await.unwrap().is_empty());
    assert_eq!(
        store.due(&l, "2024-01-01".parse().unwrap(), 2).await.unwrap(),
        vec![AssignmentId::new("a0"), AssignmentId::new("a1")]
    );
    assert!(store.due(&l, "2023-12-31".parse().unwrap(), 10).await.unwrap().is_empty());

    // One id twice in one commit is appended once.
    store.commit(&t, commands(&["c1", "c1", "c2"])).await.unwrap();
    assert_eq!(feed_ids(&store.commands(&t, 0, 10).await.unwrap()), vec![(1, "c1".into()), (2, "c2".into())]);
    assert!(store.commands(&t, 0, 0).await.unwrap().is_empty());
    assert!(store.commands(&t, 2, 10).await.unwrap().is_empty());
    assert!(store.commands(&t, u64::MAX, 10).await.unwrap().is_empty());
    // Ids are unique per tenant's feed: another tenant's feed takes the same id.
    store.commit(&TenantId::new("t2"), commands(&["c1"])).await.unwrap();
    assert_eq!(feed_ids(&store.commands(&TenantId::new("t2"), 0, 10).await.unwrap()), vec![(1, "c1".into())]);
}

#[tokio::test]
async fn r_k1_the_same_link_id_under_two_tenants_is_two_links() {
    // T01: a second tenant saving a link with the first tenant's id no longer takes it over (H1).
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    store.put_link(&link("l1", "t1")).await.unwrap();
    store.put_link(&link("l1", "t2")).await.unwrap();
    assert_eq!(store.links(&TenantId::new("t1")).await.unwrap(), vec![link("l1", "t1")]);
    assert_eq!(store.links(&TenantId::new("t2")).await.unwrap(), vec![link("l1", "t2")]);
    assert_eq!(store.all_links().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_file_already_open_is_a_transient_error() {
    let dir = tempfile::tempdir().unwrap();
    let _first = store_in(dir.path());
    match EmbeddedStore::open(dir.path().join("state.redb")) {
        Err(StoreError::Transient(message)) => assert!(message.contains("open"), "{message}"),
        other => panic!("expected a transient error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_damaged_item_is_a_permanent_error_that_names_no_personal_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let l = link("l1", "t1");
    drop(EmbeddedStore::open(&path).unwrap());
    {
        // Damage a recipient state the way a bad edit of the file would.
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let table: redb::TableDefinition<(&str, u8, &str), &[u8]> = redb::TableDefinition::new("items");
            let mut items = txn.open_table(table).unwrap();
            let value = br#"{"version":"erika.mustermann@example.com","value":["Erika Mustermann"]}"#;
            items.insert(("2:t1:l1", 1, "erika.mustermann@example.com"), value.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = EmbeddedStore::open(&path).unwrap();
    let error = store.load(&l, &by_email("erika.mustermann@example.com")).await.unwrap_err();
    let StoreError::Permanent(message) = &error else { panic!("expected a permanent error, got {error:?}") };
    assert!(!message.to_lowercase().contains("erika"), "{message}");
    assert!(!message.contains("example"), "{message}");
    assert!(message.contains("does not (de)serialise"), "{message}");
}
