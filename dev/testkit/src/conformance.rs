//! The one conformance suite every [`StateStore`] runs: the in-memory store, the embedded store and
//! DynamoDB (on a DynamoDB-compatible server). Each case gets a fresh, empty store.
//!
//! Use it from an adapter's tests with [`conformance_tests!`](crate::conformance_tests) and an
//! `async fn() -> Arc<dyn StateStore>` that makes a fresh store.

use chrono::TimeZone;
use optisync_domain::rules::{InactiveReason, Verdict};
use optisync_domain::*;
use optisync_ports::*;
use std::sync::Arc;

fn tenant() -> TenantId {
    TenantId::new("t-conformance")
}

fn link(n: u32) -> Link {
    Link {
        id: LinkId::new(format!("link-{n}")),
        tenant: tenant(),
        newsletter: NewsletterId::new(format!("nl-{}", n % 2)),
        esp: EspAccount { provider: Provider::Brevo, account: AccountId::new(format!("acc-{}", n % 3)) },
        list: ListId::new(format!("list-{n}")),
        segment: None,
        settings: LinkSettings::default(),
        status: LinkStatus::Linked,
    }
}

fn at(day: u32) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc.with_ymd_and_hms(2024, 6, day, 12, 0, 0).unwrap()
}

fn email(n: u32) -> Email {
    Email::parse(&format!("user{n}@example.com")).unwrap()
}

fn mirror(id: &str, mail: Option<Email>, next: Option<&str>, mark: &str) -> MirrorEntry {
    MirrorEntry {
        id: AssignmentId::new(id),
        version: 1,
        snapshot: None,
        email: mail,
        verdict: Verdict::default(),
        next_transition: next.map(|d| d.parse().unwrap()),
        subscribed_at: Some(at(1)),
        end_requested: None,
    }
    .with_mark(mark)
}

trait Mark {
    fn with_mark(self, mark: &str) -> Self;
}
impl Mark for MirrorEntry {
    /// Tests tag entries through the verdict reasons, a field every store must keep as it is.
    fn with_mark(mut self, mark: &str) -> Self {
        if !mark.is_empty() {
            self.verdict.reasons =
                mark.split(',').map(|m| InactiveReason::DeliveryBlocked { kind: DeliveryBlockType::new(m) }).collect();
        }
        self
    }
}

fn marks(entry: &MirrorEntry) -> Vec<String> {
    entry
        .verdict
        .reasons
        .iter()
        .filter_map(|r| match r {
            InactiveReason::DeliveryBlocked { kind } => Some(kind.to_string()),
            _ => None,
        })
        .collect()
}

fn approval(l: &Link, mail: Email) -> ApprovalEntry {
    ApprovalEntry {
        link: l.id.clone(),
        email: mail,
        signup: Signup { first_name: Some(PersonalText::new("Erika")), ..Default::default() },
        first_seen: at(2),
        last_seen: at(2),
        signups: 1,
        status: ApprovalStatus::Pending,
        match_command: CommandId::new("match-1"),
        decision: None,
    }
}

fn end_command(n: u32) -> OptigemCommand {
    OptigemCommand::EndAssignment {
        id: CommandId::new(format!("end-{n}")),
        assignment: AssignmentId::new(format!("a{n}")),
        newsletter: NewsletterId::new("nl-0"),
        end: "2024-05".parse().unwrap(),
        unsubscription: Unsubscription {
            date: "2024-06-03".parse().unwrap(),
            source: UnsubscribeSource {
                provider: Provider::Brevo,
                account: AccountId::new("acc-0"),
                cause: UnsubscribeCause::Unsubscribed,
            },
        },
    }
}

fn put_mirror(l: &Link, e: MirrorEntry, expected: Option<u64>) -> (StateWrite, Option<u64>) {
    (StateWrite::Mirror { link: l.id.clone(), entry: Box::new(e) }, expected)
}

/// Links are found by newsletter, by account and by tenant.
pub async fn links_are_found_by_newsletter_account_and_tenant(store: Arc<dyn StateStore>) {
    for n in 0..6 {
        store.put_link(&link(n)).await.unwrap();
    }
    let ids = |links: Vec<Link>| {
        let mut v: Vec<String> = links.into_iter().map(|l| l.id.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(ids(store.links(&tenant()).await.unwrap()).len(), 6);
    assert_eq!(
        ids(store.links_for_newsletter(&tenant(), &NewsletterId::new("nl-1")).await.unwrap()),
        vec!["link-1", "link-3", "link-5"]
    );
    assert_eq!(ids(store.links_for_account(&tenant(), &link(1).esp).await.unwrap()), vec!["link-1", "link-4"]);
    assert!(store.links(&TenantId::new("other")).await.unwrap().is_empty());
    let mut elsewhere = link(7);
    elsewhere.tenant = TenantId::new("a-tenant");
    store.put_link(&elsewhere).await.unwrap();
    store.put_link(&link(0)).await.unwrap(); // saved again: still once
    let all: Vec<(String, String)> =
        store.all_links().await.unwrap().into_iter().map(|l| (l.tenant.to_string(), l.id.to_string())).collect();
    assert_eq!(all.len(), 7, "{all:?}");
    assert_eq!(all[0], ("a-tenant".to_owned(), "link-7".to_owned()), "ordered by tenant, then link");
    assert!(all.windows(2).all(|w| w[0] < w[1]), "{all:?}");
    let mut changed = link(2);
    changed.status = LinkStatus::Linking;
    store.put_link(&changed).await.unwrap();
    let found = store.links_for_newsletter(&tenant(), &NewsletterId::new("nl-0")).await.unwrap();
    assert_eq!(found.iter().find(|l| l.id == changed.id).unwrap().status, LinkStatus::Linking);
    assert_eq!(store.tenant_settings(&tenant()).await.unwrap(), TenantSettings::default());
}

/// Tenant settings and ESP accounts are saved per tenant; an account id belongs to one tenant.
pub async fn tenant_settings_and_accounts_are_kept_per_tenant(store: Arc<dyn StateStore>) {
    let settings =
        TenantSettings { no_statement_blocks: true, approved_email_target: EmailTarget::StandardCommunication };
    store.put_tenant_settings(&tenant(), &settings).await.unwrap();
    assert_eq!(store.tenant_settings(&tenant()).await.unwrap(), settings);
    assert_eq!(store.tenant_settings(&TenantId::new("other")).await.unwrap(), TenantSettings::default());

    let record = |t: &str, provider, id: &str, status| AccountRecord {
        tenant: TenantId::new(t),
        esp: EspAccount { provider, account: AccountId::new(id) },
        status,
        changed_at: at(3),
    };
    let cr = record("t-conformance", Provider::CleverReach, "main", AccountStatus::AwaitingAuthorisation);
    let brevo = record("t-conformance", Provider::Brevo, "main", AccountStatus::Connected);
    store.put_account(&cr).await.unwrap();
    store.put_account(&brevo).await.unwrap();
    let connected = AccountRecord { status: AccountStatus::Connected, ..cr.clone() };
    store.put_account(&connected).await.unwrap(); // replaced by its own tenant
    assert_eq!(store.accounts(&tenant()).await.unwrap(), vec![brevo.clone(), connected.clone()]);
    // Another tenant cannot take the id (its secrets are named by it), but may use it at the other provider.
    let taken = record("other", Provider::Brevo, "main", AccountStatus::Connected);
    assert_eq!(store.put_account(&taken).await, Err(StoreError::Conflict));
    assert!(store.accounts(&TenantId::new("other")).await.unwrap().is_empty());
    assert_eq!(store.account(&taken.esp).await.unwrap().map(|a| a.tenant), Some(tenant()));
    let unknown = EspAccount { provider: Provider::Brevo, account: AccountId::new("none") };
    assert_eq!(store.account(&unknown).await.unwrap(), None);
    assert_eq!(store.accounts(&tenant()).await.unwrap(), vec![brevo, connected]);
}

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
    let first = store.pending_approvals(&l.id, None, 2).await.unwrap();
    assert_eq!(keys(&first), vec!["user4@example.com", "user3@example.com"]);
    let rest = store.pending_approvals(&l.id, Some(&first[1].queue_position()), 10).await.unwrap();
    assert_eq!(keys(&rest), vec!["user1@example.com", "user0@example.com"], "the rejected one is not listed");
    assert!(store.pending_approvals(&l.id, Some(&rest[1].queue_position()), 10).await.unwrap().is_empty());

    // Deciding takes an entry out of the queue.
    let loaded = store.load(&l, &Slice { emails: vec![email(4)], ..Slice::default() }).await.unwrap();
    let mut decided = loaded.view.approvals[&email(4)].clone();
    let version = loaded.versions[&ItemKey::Approval(l.id.clone(), email(4).key().to_owned())];
    decided.status = ApprovalStatus::Approved;
    decided.decision = Some(Decision::Reject { at: at(11) });
    let commit = Commit { writes: vec![(StateWrite::Approval { entry: decided }, Some(version))], ..Commit::default() };
    store.commit(&tenant(), commit).await.unwrap();
    let now_first = store.pending_approvals(&l.id, None, 1).await.unwrap();
    assert_eq!(keys(&now_first), vec!["user3@example.com"]);
}

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
    };
    store.commit(&tenant(), first).await.unwrap();
    let second = Commit {
        writes: vec![put_mirror(&l, mirror("a1", Some(email(1)), None, "v2"), Some(1))],
        commands: vec![],
        audit: vec![],
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

/// Commands are appended once per id, numbered from 1 per tenant, and paged by sequence number.
pub async fn commands_are_appended_once_in_sequence_and_paged(store: Arc<dyn StateStore>) {
    for batch in [vec![1, 2, 3], vec![3, 4], vec![1], (5..=30).collect()] {
        let commit = Commit { writes: vec![], commands: batch.into_iter().map(end_command).collect(), audit: vec![] };
        store.commit(&tenant(), commit).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = store.commands(&tenant(), after, 7).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 7);
        after = page.last().unwrap().0;
        seen.extend(page);
    }
    assert_eq!(seen.iter().map(|(s, _)| *s).collect::<Vec<_>>(), (1..=30).collect::<Vec<u64>>());
    assert_eq!(
        seen.iter().map(|(_, c)| c.id().to_string()).collect::<Vec<_>>(),
        (1..=30).map(|n| format!("end-{n}")).collect::<Vec<_>>()
    );
    assert!(store.commands(&TenantId::new("other"), 0, 10).await.unwrap().is_empty());
    // Feeds are per tenant: the same command id in another tenant's feed is another command.
    let other = TenantId::new("other");
    store.commit(&other, Commit { writes: vec![], commands: vec![end_command(1)], audit: vec![] }).await.unwrap();
    assert_eq!(store.commands(&other, 0, 10).await.unwrap().len(), 1);
}

/// A command is found by id per tenant; its result is recorded, a `done` result is final, and a command
/// that is not in the feed has no result.
/// A link's run state is written only over the version it was read at: two reconcilers that read the same
/// checkpoint cannot both save theirs.
pub async fn run_states_are_saved_only_over_the_version_read(store: Arc<dyn StateStore>) {
    let (l, other) = (link(0), link(1));
    assert_eq!(store.run_state(&l.id).await.unwrap(), None);
    store.save_run_state(&l.id, r#"{"page":1}"#, None).await.unwrap();
    assert_eq!(store.save_run_state(&l.id, r#"{"page":9}"#, None).await, Err(StoreError::Conflict), "exists already");
    assert_eq!(store.run_state(&l.id).await.unwrap(), Some((r#"{"page":1}"#.to_owned(), 1)));
    store.save_run_state(&l.id, r#"{"page":2}"#, Some(1)).await.unwrap();
    assert_eq!(store.save_run_state(&l.id, r#"{"page":3}"#, Some(1)).await, Err(StoreError::Conflict), "stale");
    assert_eq!(store.run_state(&l.id).await.unwrap(), Some((r#"{"page":2}"#.to_owned(), 2)));
    assert_eq!(store.run_state(&other.id).await.unwrap(), None, "per link");
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
    store.commit(&tenant(), Commit { writes, commands: vec![], audit: vec![] }).await.unwrap();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.recipients(&l.id, after.as_deref(), 7).await.unwrap();
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
    assert_eq!(store.recipients(&other.id, None, 10).await.unwrap().len(), 1, "per link");

    let expires = at(30);
    for index in [0u64, 1, 2, 3, 10, 11] {
        store.put_run_chunk(&l.id, "r1/seen", index, &format!("v{index}"), expires).await.unwrap();
    }
    store.put_run_chunk(&l.id, "r1/seen", 2, "v2'", expires).await.unwrap();
    store.put_run_chunk(&l.id, "r1/ends", 0, "other kind", expires).await.unwrap();
    store.put_run_chunk(&other.id, "r1/seen", 0, "other link", expires).await.unwrap();
    let all = store.run_chunks(&l.id, "r1/seen", None, 100).await.unwrap();
    let want: Vec<(u64, String)> =
        [(0, "v0"), (1, "v1"), (2, "v2'"), (3, "v3"), (10, "v10"), (11, "v11")].map(|(i, v)| (i, v.to_owned())).into();
    assert_eq!(all, want);
    assert_eq!(store.run_chunks(&l.id, "r1/seen", Some(2), 2).await.unwrap(), want[3..5].to_vec(), "after, limit");
    assert_eq!(store.run_chunks(&l.id, "r1/seen", Some(11), 5).await.unwrap(), vec![], "past the last");
    assert_eq!(store.run_chunks(&l.id, "r1", None, 5).await.unwrap(), vec![], "a run's name is exact");
}

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
        esp: vec![audit::AuditOperation { recipient: email(1).masked(), op: "add_to_list".into() }],
        commands: vec![],
        writes: n,
    };
    for n in 0..10 {
        let commit = Commit { writes: vec![], commands: vec![], audit: vec![entry(&l, 1 + (n as u32) / 3, n)] };
        store.commit(&tenant(), commit).await.unwrap();
    }
    let both = Commit { writes: vec![], commands: vec![], audit: vec![entry(&l, 5, 10), entry(&other, 5, 11)] };
    store.commit(&tenant(), both).await.unwrap();
    // A commit that loses its condition writes no audit entry either.
    let lost = Commit {
        writes: vec![put_mirror(&l, mirror("a1", Some(email(1)), None, ""), Some(4))],
        commands: vec![],
        audit: vec![entry(&l, 6, 99)],
    };
    assert_eq!(store.commit(&tenant(), lost).await, Err(StoreError::Conflict));

    let trail = store.audit(&l.id, at(7), 100).await.unwrap();
    let order: Vec<usize> = trail.iter().map(|e| e.writes).collect();
    assert_eq!(order.len(), 11, "{order:?}");
    assert_eq!(order[0], 10, "newest first: {order:?}");
    assert!(trail.windows(2).all(|w| w[0].at >= w[1].at), "{order:?}");
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..=10).collect::<Vec<_>>(), "each entry once");
    assert_eq!(trail[0], entry(&l, 5, 10), "round trip");
    assert_eq!(store.audit(&l.id, at(7), 4).await.unwrap().len(), 4, "limit");
    assert_eq!(store.audit(&other.id, at(7), 100).await.unwrap(), vec![entry(&other, 5, 11)]);
    // Expired: only what is younger than the retention is returned.
    let later = at(1) + chrono::Duration::days(audit::AUDIT_RETENTION_DAYS) + chrono::Duration::hours(1);
    let left = store.audit(&l.id, later, 100).await.unwrap();
    assert!(
        left.iter().all(|e| e.at > at(1)) && left.len() == 8,
        "{:?}",
        left.iter().map(|e| e.writes).collect::<Vec<_>>()
    );
}

pub async fn command_results_are_recorded_once_done(store: Arc<dyn StateStore>) {
    let commit = Commit { writes: vec![], commands: vec![end_command(1), end_command(2)], audit: vec![] };
    store.commit(&tenant(), commit).await.unwrap();
    let id = CommandId::new("end-2");
    let (seq, command) = store.command(&tenant(), &id).await.unwrap().expect("in the feed");
    assert_eq!((seq, command.id()), (2, &id));
    assert_eq!(store.command(&TenantId::new("other"), &id).await.unwrap(), None, "feeds are per tenant");
    assert_eq!(store.command(&tenant(), &CommandId::new("end-9")).await.unwrap(), None);
    assert_eq!(store.command_result(&tenant(), &id).await.unwrap(), None);

    let failed = CommandResult::Failed { reason: "assignment locked".into() };
    store.record_result(&tenant(), &id, &failed).await.unwrap();
    assert_eq!(store.command_result(&tenant(), &id).await.unwrap(), Some(failed.clone()));
    let done = CommandResult::Done {
        assignment: Some(AssignmentId::new("a-7")),
        person: Some(PersonId::new("p-7")),
        suggestions: vec![Candidate {
            person: PersonId::new("p-7"),
            first_name: Some(PersonalText::new("Max")),
            last_name: None,
            emails: vec![email(7)],
        }],
    };
    store.record_result(&tenant(), &id, &done).await.unwrap();
    store.record_result(&tenant(), &id, &failed).await.unwrap();
    assert_eq!(store.command_result(&tenant(), &id).await.unwrap(), Some(done), "done is final");
    assert!(store.record_result(&tenant(), &CommandId::new("end-9"), &failed).await.is_err());
    assert_eq!(store.command_result(&tenant(), &CommandId::new("end-9")).await.unwrap(), None);
    assert_eq!(store.command_result(&tenant(), &CommandId::new("end-1")).await.unwrap(), None);
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
    store.commit(&tenant(), Commit { writes, commands: vec![], audit: vec![] }).await.unwrap();
    let mut due = store.due(&l, "2024-05-31".parse().unwrap(), 100).await.unwrap();
    due.sort();
    assert_eq!(due, vec![AssignmentId::new("a1")]);
    let mut due = store.due(&l, "2024-06-01".parse().unwrap(), 100).await.unwrap();
    due.sort();
    assert_eq!(due, vec![AssignmentId::new("a1"), AssignmentId::new("a2")]);
    // Moving the date on removes an entry from the index.
    let moved = put_mirror(&l, mirror("a1", Some(email(1)), None, ""), Some(1));
    store.commit(&tenant(), Commit { writes: vec![moved], commands: vec![], audit: vec![] }).await.unwrap();
    assert_eq!(store.due(&l, "2024-06-01".parse().unwrap(), 100).await.unwrap(), vec![AssignmentId::new("a2")]);
}

/// A lease is exclusive until it expires, re-entrant for its owner, and released only by its owner.
pub async fn leases_are_exclusive_until_they_expire(store: Arc<dyn StateStore>) {
    let (t0, t1, t2) = (at(1), at(2), at(3));
    assert!(store.try_lease("link-1", "me", t0, t1).await.unwrap());
    assert!(!store.try_lease("link-1", "you", t0, t1).await.unwrap());
    assert!(store.try_lease("link-1", "me", t0, t2).await.unwrap(), "the owner may extend");
    store.release_lease("link-1", "you").await.unwrap();
    assert!(!store.try_lease("link-1", "you", t1, t2).await.unwrap(), "only the owner releases");
    assert!(store.try_lease("link-1", "you", at(4), at(5)).await.unwrap(), "an expired lease is free");
    store.release_lease("link-1", "you").await.unwrap();
    assert!(store.try_lease("link-1", "me", at(4), at(5)).await.unwrap());
    assert!(store.try_lease("link-2", "you", t0, t1).await.unwrap(), "leases are independent");
}

/// 50 concurrent read-modify-write loops on one item: exactly one writer wins each version and no
/// update is lost.
pub async fn concurrent_writers_on_one_item_lose_no_update(store: Arc<dyn StateStore>) {
    let l = link(0);
    let base = Commit {
        writes: vec![put_mirror(&l, mirror("a1", Some(email(1)), None, ""), None)],
        commands: vec![],
        audit: vec![],
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
                let commit =
                    Commit { writes: vec![put_mirror(&l, entry, Some(version))], commands: vec![], audit: vec![] };
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
        store.commit(&tenant(), Commit { writes, commands: vec![], audit: vec![] }).await.unwrap();
    }
    let loaded = store.load(&l, &Slice { assignments: vec![], emails: vec![email(7)] }).await.unwrap();
    assert_eq!(loaded.view.mirror.len(), 120);
    assert_eq!(store.due(&l, "2024-05-01".parse().unwrap(), 1000).await.unwrap().len(), 120);
    assert_eq!(store.due(&l, "2024-05-01".parse().unwrap(), 50).await.unwrap().len(), 50);
}

fn inbox_entry(tenant: &str, key: &str, fingerprint: &str, minute: u32) -> InboxEntry {
    InboxEntry {
        tenant: TenantId::new(tenant),
        key: key.to_owned(),
        fingerprint: fingerprint.to_owned(),
        items: vec![
            InboxItem::from(Input::AssignmentDeleted {
                id: AssignmentId::new("a1"),
                newsletter: NewsletterId::new("nl"),
                version: u64::from(minute) + 1,
            }),
            InboxItem::Reread {
                reread: Reread {
                    esp: EspAccount { provider: Provider::CleverReach, account: AccountId::new("cr") },
                    list: ListId::new("g1"),
                    receiver: "4285".into(),
                    event: "receiver.unsubscribed".into(),
                    received_at: at(1),
                },
            },
        ],
        received_at: at(1) + chrono::Duration::minutes(i64::from(minute)),
    }
}

/// The inbox stores each (tenant, key) once, refuses the key with another body, returns what it stored,
/// and lists unprocessed entries oldest first until they are marked done.
pub async fn inbox_stores_once_and_lists_what_waits(inbox: Arc<dyn Inbox>) {
    let first = inbox_entry("t1", "msg-1", "fp-a", 0);
    assert_eq!(inbox.put(&first).await.unwrap(), InboxPut::Stored);
    assert_eq!(inbox.put(&first).await.unwrap(), InboxPut::Duplicate);
    assert_eq!(inbox.put(&inbox_entry("t1", "msg-1", "fp-b", 0)).await.unwrap(), InboxPut::Mismatch);
    assert_eq!(
        inbox.put(&inbox_entry("t2", "msg-1", "fp-b", 1)).await.unwrap(),
        InboxPut::Stored,
        "keys are per tenant"
    );
    assert_eq!(inbox.get(&TenantId::new("t1"), "msg-1").await.unwrap(), Some(first.clone()));
    assert_eq!(inbox.get(&TenantId::new("t1"), "nope").await.unwrap(), None);
    for n in 2..30 {
        inbox.put(&inbox_entry("t1", &format!("msg-{n}"), "fp", n)).await.unwrap();
    }
    let waiting = inbox.pending(at(2), 1000).await.unwrap();
    assert_eq!(waiting.len(), 30);
    assert_eq!(waiting[0], (TenantId::new("t1"), "msg-1".to_owned()), "oldest first");
    assert_eq!(waiting[1], (TenantId::new("t2"), "msg-1".to_owned()));
    assert_eq!(inbox.pending(at(2), 10).await.unwrap().len(), 10);
    assert_eq!(inbox.pending(at(1) + chrono::Duration::minutes(5), 1000).await.unwrap().len(), 5, "received before");
    inbox.mark_done(&TenantId::new("t1"), "msg-1").await.unwrap();
    let waiting = inbox.pending(at(2), 1000).await.unwrap();
    assert_eq!(waiting.len(), 29);
    assert!(!waiting.contains(&(TenantId::new("t1"), "msg-1".to_owned())));
    assert_eq!(inbox.put(&first).await.unwrap(), InboxPut::Duplicate, "a processed key is still known");
}

/// Generates the inbox conformance test for a factory `async fn() -> Arc<dyn Inbox>`.
#[macro_export]
macro_rules! inbox_conformance_tests {
    ($make:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn inbox_stores_once_and_lists_what_waits() {
            $crate::conformance::inbox_stores_once_and_lists_what_waits($make().await).await;
        }
    };
}

/// Generates one test per conformance case for a store factory `async fn() -> Arc<dyn StateStore>`.
#[macro_export]
macro_rules! conformance_tests {
    ($make:path) => {
        $crate::conformance_tests!(@cases $make;
            links_are_found_by_newsletter_account_and_tenant,
            tenant_settings_and_accounts_are_kept_per_tenant,
            pending_approvals_page_oldest_first,
            every_item_kind_round_trips_with_its_version,
            stale_versions_conflict_and_the_commit_writes_nothing,
            commands_are_appended_once_in_sequence_and_paged,
            command_results_are_recorded_once_done,
            audit_entries_are_kept_with_their_commit_newest_first,
            run_states_are_saved_only_over_the_version_read,
            recipients_and_run_chunks_page_in_key_order,
            due_finds_entries_whose_transition_has_come,
            leases_are_exclusive_until_they_expire,
            concurrent_writers_on_one_item_lose_no_update,
            queries_page_through_many_items);
    };
    (@cases $make:path; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::conformance::$case($make().await).await;
            }
        )*
    };
}
