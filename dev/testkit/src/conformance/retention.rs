//! Conformance cases: retention of personal data (R-J6). Every store dates expiries by its own clock,
//! reads an item past its expiry as absent (DynamoDB's TTL deletes late, or never on moto), keeps the
//! R-J3 tombstone of an expired recipient under a keyed hash, and (embedded, memory) purges what
//! expired. The examples are the seeds': Max Muster unsubscribes from the list "Rundbrief" on
//! 2024-09-25.

use super::*;
use crate::memory::FixedClock;
use std::future::Future;
use std::pin::Pin;

/// A store under test with the clock it dates expiries by.
pub struct RetentionFixture {
    /// The store.
    pub store: Arc<dyn StateStore>,
    /// The same store's inbox.
    pub inbox: Arc<dyn Inbox>,
    /// The store's clock.
    pub clock: Arc<FixedClock>,
    /// The store's purge of expired records, returning how many went (`None`: the store relies on
    /// DynamoDB's TTL).
    pub purge: Option<Purge>,
}

/// A store's purge of expired records.
pub type Purge = Box<dyn Fn() -> Pin<Box<dyn Future<Output = usize> + Send>> + Send + Sync>;

/// 2024-09-25, the day of Max Muster's unsubscribe, at noon.
fn day0() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc.with_ymd_and_hms(2024, 9, 25, 12, 0, 0).unwrap()
}

fn days(n: i64) -> chrono::Duration {
    chrono::Duration::days(n)
}

fn second() -> chrono::Duration {
    chrono::Duration::seconds(1)
}

fn max() -> Email {
    Email::parse("max.muster@example.org").unwrap()
}

fn rundbrief() -> Link {
    Link { id: LinkId::new("rundbrief"), ..link(0) }
}

fn page(tenant: &TenantId, key: &str) -> InboxEntry {
    InboxEntry {
        tenant: tenant.clone(),
        key: key.to_owned(),
        fingerprint: "fp-1".into(),
        items: vec![InboxItem::from(Input::AssignmentDeleted {
            id: AssignmentId::new("A-1"),
            newsletter: NewsletterId::new("rundbrief"),
            version: 2,
        })],
        received_at: day0(),
    }
}

fn unsubscribed(active: bool) -> RecipientState {
    RecipientState {
        listed: false,
        active,
        tombstone: Some(Tombstone {
            at: day0(),
            source: UnsubscribeSource {
                provider: Provider::Brevo,
                account: AccountId::new("acc-0"),
                cause: UnsubscribeCause::Unsubscribed,
            },
        }),
        ..RecipientState::default()
    }
}

fn keep(write: &StateWrite, period: chrono::Duration) -> Expiry {
    Expiry { items: [(ItemKey::of(write), period)].into(), commands: None }
}

/// A processed inbox entry is kept for the tenant's inbox retention (default 7 days) to answer
/// duplicates, then reads as absent and a redelivery is stored anew; one not processed never expires;
/// a tenant's own period applies.
pub async fn r_j6_processed_inbox_entries_expire_after_the_tenant_retention(f: RetentionFixture) {
    let t = tenant();
    f.clock.set(day0());
    assert_eq!(f.inbox.put(&page(&t, "optigem:msg-1")).await.unwrap(), InboxPut::Stored);
    f.clock.set(day0() + days(40));
    assert!(f.inbox.get(&t, "optigem:msg-1").await.unwrap().is_some(), "an entry waiting for the worker stays");
    f.inbox.mark_done(&t, "optigem:msg-1").await.unwrap();
    let done = day0() + days(40);
    f.clock.set(done + days(7) - second());
    assert!(f.inbox.get(&t, "optigem:msg-1").await.unwrap().is_some());
    assert_eq!(f.inbox.put(&page(&t, "optigem:msg-1")).await.unwrap(), InboxPut::Duplicate);
    f.clock.set(done + days(7) + second());
    assert_eq!(f.inbox.get(&t, "optigem:msg-1").await.unwrap(), None, "7 days after it was processed");
    assert_eq!(f.inbox.put(&page(&t, "optigem:msg-1")).await.unwrap(), InboxPut::Stored);

    let short = TenantId::new("t-short");
    let settings =
        TenantSettings { retention: Retention { inbox_days: 2, ..Retention::default() }, ..Default::default() };
    f.store.put_tenant_settings(&short, &settings).await.unwrap();
    f.clock.set(day0());
    f.inbox.put(&page(&short, "snapshot:exp-1:1")).await.unwrap();
    f.inbox.mark_done(&short, "snapshot:exp-1:1").await.unwrap();
    f.clock.set(day0() + days(2) + second());
    assert_eq!(f.inbox.get(&short, "snapshot:exp-1:1").await.unwrap(), None, "the tenant's 2 days");
}

/// A command and its result are kept for the tenant's command retention (default 30 days) from the
/// connector's first result on, then the feed skips it and neither it nor its result is found; an
/// unacknowledged command stays, the sequence never goes back, and an expired id is issued anew.
pub async fn r_j6_acknowledged_commands_and_results_expire(f: RetentionFixture) {
    let t = tenant();
    f.clock.set(day0());
    let commit = Commit { commands: vec![end_command(1), end_command(2)], ..Default::default() };
    f.store.commit(&t, commit).await.unwrap();
    let (one, two) = (CommandId::new("end-1"), CommandId::new("end-2"));
    f.store.record_result(&t, &one, &CommandResult::done()).await.unwrap();
    f.clock.set(day0() + days(30) - second());
    assert!(f.store.command(&t, &one).await.unwrap().is_some());
    assert_eq!(f.store.command_result(&t, &one).await.unwrap(), Some(CommandResult::done()));
    f.clock.set(day0() + days(30) + second());
    assert_eq!(f.store.command(&t, &one).await.unwrap(), None);
    assert_eq!(f.store.command_result(&t, &one).await.unwrap(), None);
    assert!(f.store.record_result(&t, &one, &CommandResult::done()).await.is_err(), "gone like any unknown command");
    let feed = f.store.commands(&t, 0, 10).await.unwrap();
    assert_eq!(feed.iter().map(|(_, c)| c.id().clone()).collect::<Vec<_>>(), vec![two.clone()]);
    assert_eq!(feed[0].0, 2);

    let again = Commit { commands: vec![end_command(1), end_command(3)], ..Default::default() };
    f.store.commit(&t, again).await.unwrap();
    let feed = f.store.commands(&t, 2, 10).await.unwrap();
    assert_eq!(
        feed.iter().map(|(s, c)| (*s, c.id().to_string())).collect::<Vec<_>>(),
        vec![(3, "end-1".to_owned()), (4, "end-3".to_owned())],
        "numbered after the last sequence, the expired id issued anew"
    );
    assert_eq!(f.store.command_result(&t, &one).await.unwrap(), None, "the old result does not come back");
}

/// State items written with an expiry read as absent after it, also to the sweep; a write expecting no
/// item succeeds over an expired one; a rewrite without an expiry keeps the item for good; a pending
/// approval without expiry waits as long as it takes.
pub async fn r_j6_expired_state_items_read_as_absent(f: RetentionFixture) {
    let (t, l) = (tenant(), rundbrief());
    f.store.put_link(&l).await.unwrap();
    f.clock.set(day0());
    let erika = Email::parse("erika@example.org").unwrap();
    let gone = StateWrite::Recipient { link: l.id.clone(), email: max(), state: unsubscribed(false) };
    let kept = StateWrite::Recipient {
        link: l.id.clone(),
        email: erika.clone(),
        state: RecipientState { listed: false, ..RecipientState::default() },
    };
    let mut decided = approval(&l, Email::parse("lena@example.org").unwrap());
    decided.status = ApprovalStatus::Rejected;
    decided.decision = Some(Decision::Reject { at: day0() });
    let decided = StateWrite::Approval { entry: decided };
    let pending = StateWrite::Approval { entry: approval(&l, Email::parse("tom@example.org").unwrap()) };
    let mut expiry = keep(&gone, days(30));
    expiry.items.insert(ItemKey::of(&kept), days(30));
    expiry.items.insert(ItemKey::of(&decided), days(90));
    let writes = vec![(gone.clone(), None), (kept.clone(), None), (decided, None), (pending, None)];
    f.store.commit(&t, Commit { writes, expiry, ..Default::default() }).await.unwrap();
    // Erika's state is needed again before it expires: rewritten without an expiry.
    f.clock.set(day0() + days(10));
    let loaded = f.store.load(&l, &Slice { emails: vec![erika.clone()], ..Slice::default() }).await.unwrap();
    let version = loaded.versions[&ItemKey::Recipient(l.id.clone(), erika.key().to_owned())];
    let needed = StateWrite::Recipient {
        link: l.id.clone(),
        email: erika.clone(),
        state: RecipientState { listed: true, linked: true, ..RecipientState::default() },
    };
    f.store.commit(&t, Commit { writes: vec![(needed, Some(version))], ..Default::default() }).await.unwrap();

    f.clock.set(day0() + days(30) + second());
    let emails = ["max.muster@example.org", "erika@example.org", "lena@example.org", "tom@example.org"];
    let slice = Slice { emails: emails.iter().map(|e| Email::parse(e).unwrap()).collect(), ..Slice::default() };
    let loaded = f.store.load(&l, &slice).await.unwrap();
    assert!(loaded.view.recipients[&erika].listed, "rewritten without expiry: kept");
    assert!(!loaded.versions.contains_key(&ItemKey::Recipient(l.id.clone(), max().key().to_owned())));
    let swept: Vec<Email> =
        f.store.recipients(&t, &l.id, None, 10).await.unwrap().into_iter().map(|(e, _)| e).collect();
    assert_eq!(swept, vec![erika.clone()], "the sweep skips the expired state");
    assert_eq!(loaded.view.approvals.len(), 2, "a decided approval is kept 90 days, a pending one always");
    let again = StateWrite::Recipient { link: l.id.clone(), email: max(), state: RecipientState::default() };
    f.store.commit(&t, Commit { writes: vec![(again, None)], ..Default::default() }).await.unwrap();

    f.clock.set(day0() + days(90) + second());
    let loaded = f.store.load(&l, &slice).await.unwrap();
    let waiting: Vec<&Email> = loaded.view.approvals.keys().collect();
    assert_eq!(waiting, vec![&Email::parse("tom@example.org").unwrap()]);
    assert_eq!(f.store.pending_approvals(&t, &l.id, None, 10).await.unwrap().len(), 1);
}

/// An expired recipient state leaves its R-J3 tombstone under a keyed hash of the e-mail: a load by the
/// address stands it in (on no list, the tombstone, no version), also after a purge, and the tombstone
/// of one link is not another's.
pub async fn r_j6_the_tombstone_hash_outlives_the_recipient_state(f: RetentionFixture) {
    let (t, l) = (tenant(), rundbrief());
    let other = Link { id: LinkId::new("gemeindebrief"), ..link(0) };
    f.store.put_link(&l).await.unwrap();
    f.store.put_link(&other).await.unwrap();
    f.clock.set(day0());
    let write = StateWrite::Recipient { link: l.id.clone(), email: max(), state: unsubscribed(false) };
    let expiry = keep(&write, days(30));
    f.store.commit(&t, Commit { writes: vec![(write, None)], expiry, ..Default::default() }).await.unwrap();
    let plain = StateWrite::Recipient { link: other.id.clone(), email: max(), state: unsubscribed(false) };
    let expiry = keep(&plain, days(30));
    f.store.commit(&t, Commit { writes: vec![(plain, None)], expiry, ..Default::default() }).await.unwrap();
    f.clock.set(day0() + days(31));
    if let Some(purge) = &f.purge {
        assert!(purge().await >= 2, "both expired states are purged");
    }
    let slice = Slice { emails: vec![max()], ..Slice::default() };
    let loaded = f.store.load(&l, &slice).await.unwrap();
    let stand_in = &loaded.view.recipients[&max()];
    assert_eq!(stand_in, &unsubscribed(false), "on no list, inactive, tombstone of 2024-09-25");
    assert!(loaded.versions.is_empty(), "nothing stored under the address");
    let fresh = Link { id: LinkId::new("jugendbrief"), ..link(0) };
    assert!(f.store.load(&fresh, &slice).await.unwrap().view.recipients.is_empty(), "per link");
    // The stand-in is written back like a new item.
    let write = StateWrite::Recipient { link: l.id.clone(), email: max(), state: stand_in.clone() };
    f.store.commit(&t, Commit { writes: vec![(write, None)], ..Default::default() }).await.unwrap();
}

/// Everything a dry run writes under its `~preview` tenant expires after the dry-run retention: its
/// state items and the commands of its own feed.
pub async fn r_j6_dry_run_copies_expire(f: RetentionFixture) {
    let shadow = tenant().preview();
    let l = Link { id: LinkId::new("rundbrief~preview~1727265600000"), tenant: shadow.clone(), ..link(0) };
    f.clock.set(day0());
    let entry = mirror("A-1", Some(max()), None, "");
    let write = put_mirror(&l, entry, None).0;
    let expiry = Expiry { items: [(ItemKey::of(&write), days(7))].into(), commands: Some(days(7)) };
    let commit = Commit { writes: vec![(write, None)], commands: vec![end_command(1)], expiry, ..Default::default() };
    f.store.commit(&shadow, commit).await.unwrap();
    let slice = Slice { assignments: vec![AssignmentId::new("A-1")], ..Slice::default() };
    f.clock.set(day0() + days(7) - second());
    assert_eq!(f.store.load(&l, &slice).await.unwrap().view.mirror.len(), 1);
    assert_eq!(f.store.commands(&shadow, 0, 10).await.unwrap().len(), 1);
    f.clock.set(day0() + days(7) + second());
    assert!(f.store.load(&l, &slice).await.unwrap().view.mirror.is_empty());
    assert!(f.store.load(&l, &Slice { emails: vec![max()], ..Slice::default() }).await.unwrap().view.mirror.is_empty());
    assert!(f.store.commands(&shadow, 0, 10).await.unwrap().is_empty());
}

/// The store's purge removes what expired for good (turning its clock back brings nothing back) and
/// nothing else (embedded and memory stores; DynamoDB's TTL does this there).
pub async fn r_j6_the_purge_removes_expired_records(f: RetentionFixture) {
    let purge = f.purge.as_ref().expect("a store with a purge");
    let (t, l) = (tenant(), rundbrief());
    f.store.put_link(&l).await.unwrap();
    f.clock.set(day0());
    f.inbox.put(&page(&t, "optigem:msg-1")).await.unwrap();
    f.inbox.mark_done(&t, "optigem:msg-1").await.unwrap();
    f.inbox.put(&page(&t, "optigem:msg-2")).await.unwrap();
    f.store.commit(&t, Commit { commands: vec![end_command(1)], ..Default::default() }).await.unwrap();
    f.store.record_result(&t, &CommandId::new("end-1"), &CommandResult::done()).await.unwrap();
    let write = StateWrite::Recipient { link: l.id.clone(), email: max(), state: unsubscribed(false) };
    let expiry = keep(&write, days(30));
    let entry = StateWrite::Mirror { link: l.id.clone(), entry: Box::new(mirror("A-1", Some(max()), None, "")) };
    let writes = vec![(write, None), (entry, None)];
    f.store.commit(&t, Commit { writes, expiry, ..Default::default() }).await.unwrap();
    assert_eq!(purge().await, 0, "nothing expired yet");
    f.clock.set(day0() + days(31));
    assert_eq!(purge().await, 3, "the processed entry, the acknowledged command, the recipient state");
    f.clock.set(day0());
    assert_eq!(f.inbox.get(&t, "optigem:msg-1").await.unwrap(), None, "removed, not only hidden");
    assert!(f.inbox.get(&t, "optigem:msg-2").await.unwrap().is_some(), "the entry still waiting stays");
    assert_eq!(f.store.command(&t, &CommandId::new("end-1")).await.unwrap(), None);
    let loaded = f.store.load(&l, &Slice { emails: vec![max()], ..Slice::default() }).await.unwrap();
    assert_eq!(loaded.view.mirror.len(), 1, "the mirror entry stays");
    assert_eq!(loaded.view.recipients[&max()], unsubscribed(false), "the tombstone stays");
    assert!(!loaded.versions.contains_key(&ItemKey::Recipient(l.id.clone(), max().key().to_owned())));
}

/// Generates the retention cases (R-J6) for a factory `async fn() -> RetentionFixture`; with `purge`,
/// also the purge case.
#[macro_export]
macro_rules! retention_conformance_tests {
    ($make:path) => {
        $crate::retention_conformance_tests!(@cases $make;
            r_j6_processed_inbox_entries_expire_after_the_tenant_retention,
            r_j6_acknowledged_commands_and_results_expire,
            r_j6_expired_state_items_read_as_absent,
            r_j6_the_tombstone_hash_outlives_the_recipient_state,
            r_j6_dry_run_copies_expire);
    };
    ($make:path, purge) => {
        $crate::retention_conformance_tests!($make);
        $crate::retention_conformance_tests!(@cases $make; r_j6_the_purge_removes_expired_records);
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
