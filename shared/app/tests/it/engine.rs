//! The engine over the in-memory ports: exactly-once effects under duplicates, reordering, concurrency
//! and ESP faults.

use chrono::{DateTime, TimeZone, Utc};
use optisync_app::{Engine, ProcessError};
use optisync_domain::*;
use optisync_ports::EspError;
use optisync_ports::prelude::*;
use optisync_testkit::build;
use optisync_testkit::memory::{FixedClock, MemoryEsp, MemoryStore};
use std::sync::Arc;

fn at(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 9, d, 10, 0, 0).unwrap()
}

fn tenant() -> TenantId {
    TenantId::new("t1")
}

fn link(provider: Provider, nl: &str) -> Link {
    Link {
        settings: LinkSettings { mapping: build::mapping("FIRSTNAME", None), ..Default::default() },
        ..build::link(format!("{provider}-{nl}"), "t1", nl, build::esp(provider, "acc"), format!("list-{nl}"))
    }
}

fn snapshot(id: &str, nl: &str, mail: &str, version: u64, first: &str) -> Assignment {
    build::first_named(build::at_version(build::assignment(id, nl, mail, at(1)), version), first)
}

struct Harness {
    store: Arc<MemoryStore>,
    esp: Arc<MemoryEsp>,
    engine: Engine,
}

async fn harness(links: &[Link]) -> Harness {
    let store = Arc::new(MemoryStore::new());
    for l in links {
        store.put_link(l).await.unwrap();
    }
    let esp = Arc::new(MemoryEsp::new());
    let clock = Arc::new(FixedClock::new(at(3)));
    let engine = Engine::new(store.clone(), esp.clone(), clock);
    Harness { store, esp, engine }
}

fn changed(a: &Assignment) -> Input {
    Input::AssignmentChanged { assignment: a.clone() }
}

#[tokio::test]
async fn a_new_assignment_reaches_the_list_and_the_same_event_five_times_has_the_effect_of_one() {
    let l = link(Provider::CleverReach, "nl");
    let h = harness(std::slice::from_ref(&l)).await;
    let a = snapshot("a1", "nl", "max@example.com", 1, "Max");
    let first = h.engine.process(&tenant(), &changed(&a)).await.unwrap();
    assert_eq!(first.esp_operations, 2);
    let calls = h.esp.mutating_calls();
    for _ in 0..4 {
        let again = h.engine.process(&tenant(), &changed(&a)).await.unwrap();
        assert_eq!(again.esp_operations + again.writes, 0);
    }
    assert_eq!(h.esp.mutating_calls(), calls);
    assert_eq!(h.esp.receiving(&l.esp, &l.list), ["max@example.com".to_owned()].into());
    assert_eq!(h.esp.contact(&l.esp, "max@example.com").unwrap().fields["FIRSTNAME"], "Max");
}

/// R-F7: links are per newsletter, and newsletters may use different ESPs and accounts: each assignment
/// reaches only the list its own newsletter is linked to.
#[tokio::test]
async fn r_f7_each_newsletter_syncs_to_its_own_esp_and_account() {
    let brevo = link(Provider::Brevo, "nl-a");
    let mut cleverreach = link(Provider::CleverReach, "nl-b");
    cleverreach.esp.account = AccountId::new("other-acc");
    let h = harness(&[brevo.clone(), cleverreach.clone()]).await;
    h.engine.process(&tenant(), &changed(&snapshot("a1", "nl-a", "max@example.com", 1, "Max"))).await.unwrap();
    h.engine.process(&tenant(), &changed(&snapshot("a2", "nl-b", "erika@example.com", 1, "Erika"))).await.unwrap();
    assert_eq!(h.esp.receiving(&brevo.esp, &brevo.list), ["max@example.com".to_owned()].into());
    assert_eq!(h.esp.receiving(&cleverreach.esp, &cleverreach.list), ["erika@example.com".to_owned()].into());
    assert!(h.esp.contact(&cleverreach.esp, "max@example.com").is_none(), "nothing of nl-a in the other account");
    assert!(h.esp.contact(&brevo.esp, "erika@example.com").is_none(), "nothing of nl-b in the Brevo account");
}

#[tokio::test]
async fn an_esp_fault_commits_nothing_and_the_retry_does_the_work_once() {
    let l = link(Provider::Brevo, "nl");
    let h = harness(std::slice::from_ref(&l)).await;
    let a = snapshot("a1", "nl", "max@example.com", 1, "Max");
    h.esp.fail_next(EspError::Transient { retry_after_secs: Some(2) });
    let err = h.engine.process(&tenant(), &changed(&a)).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(h.esp.receiving(&l.esp, &l.list).is_empty());
    h.engine.process(&tenant(), &changed(&a)).await.unwrap();
    assert_eq!(h.esp.receiving(&l.esp, &l.list).len(), 1);
    assert_eq!(h.esp.mutating_calls(), 2, "upsert + add, once");
}

#[tokio::test]
async fn a_rejected_request_is_not_transient() {
    let err = ProcessError::Esp(EspError::Rejected("invalid attribute".into()));
    assert!(!err.is_transient());
}

#[tokio::test]
async fn an_unsubscribe_puts_one_end_command_on_the_feed_however_often_it_arrives() {
    let l = link(Provider::CleverReach, "nl");
    let h = harness(std::slice::from_ref(&l)).await;
    h.engine.process(&tenant(), &changed(&snapshot("a1", "nl", "max@example.com", 1, "Max"))).await.unwrap();
    let unsubscribe = Input::Esp(EspEvent {
        esp: l.esp.clone(),
        list: Some(l.list.clone()),
        email: Email::parse("max@example.com").unwrap(),
        at: Utc.with_ymd_and_hms(2024, 9, 25, 8, 0, 0).unwrap(),
        what: EspEventKind::Unsubscribed,
    });
    for _ in 0..3 {
        h.engine.process(&tenant(), &unsubscribe).await.unwrap();
    }
    let feed = h.store.commands(&tenant(), 0, 100).await.unwrap();
    assert_eq!(feed.len(), 1);
    let OptigemCommand::EndAssignment { end, unsubscription, .. } = &feed[0].1 else { panic!() };
    assert_eq!((end.to_string(), unsubscription.date.to_string()), ("2024-08".into(), "2024-09-25".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_of_many_versions_converge_on_the_newest_without_lost_updates() {
    let l = link(Provider::CleverReach, "nl");
    let h = Arc::new(harness(std::slice::from_ref(&l)).await);
    let names = ["Max", "Maxi", "Maximilian", "Mäx"];
    let mut tasks = Vec::new();
    for _delivery in 0..5 {
        for version in 1..=10u64 {
            let h = h.clone();
            let a = snapshot("a1", "nl", "max@example.com", version, names[(version as usize) % names.len()]);
            tasks.push(tokio::spawn(async move {
                tokio::task::yield_now().await;
                h.engine.process(&tenant(), &changed(&a)).await
            }));
        }
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let loaded = h
        .store
        .load(&l, &optisync_ports::Slice { assignments: vec![AssignmentId::new("a1")], emails: vec![] })
        .await
        .unwrap();
    assert_eq!(loaded.view.mirror[&AssignmentId::new("a1")].version, 10);
    assert_eq!(h.esp.contact(&l.esp, "max@example.com").unwrap().fields["FIRSTNAME"], names[10 % names.len()]);
    assert_eq!(h.esp.receiving(&l.esp, &l.list).len(), 1);
}

#[tokio::test]
async fn r_e2_a_brevo_blacklisting_ends_assignments_of_two_newsletters_and_leaves_both_lists() {
    let (l1, l2) = (link(Provider::Brevo, "nl1"), link(Provider::Brevo, "nl2"));
    let h = harness(&[l1.clone(), l2.clone()]).await;
    h.engine.process(&tenant(), &changed(&snapshot("a1", "nl1", "max@example.com", 1, "Max"))).await.unwrap();
    h.engine.process(&tenant(), &changed(&snapshot("a2", "nl2", "max@example.com", 1, "Max"))).await.unwrap();
    h.esp.blacklist(&l1.esp, "max@example.com");
    let blacklisted = Input::Esp(EspEvent {
        esp: l1.esp.clone(),
        list: None,
        email: Email::parse("max@example.com").unwrap(),
        at: at(25),
        what: EspEventKind::Blacklisted,
    });
    h.engine.process(&tenant(), &blacklisted).await.unwrap();
    assert!(h.esp.receiving(&l1.esp, &l1.list).is_empty() && h.esp.receiving(&l2.esp, &l2.list).is_empty());
    let feed = h.store.commands(&tenant(), 0, 10).await.unwrap();
    assert_eq!(feed.len(), 2);
    // Un-blacklisting by hand in Brevo would revive no list: the contact is on none.
    assert!(h.esp.contact(&l1.esp, "max@example.com").unwrap().blacklisted);
}

#[tokio::test]
async fn r_a9_the_scheduled_run_applies_a_month_end_without_any_change_event() {
    let l = link(Provider::Brevo, "nl");
    let h = harness(std::slice::from_ref(&l)).await;
    let mut a = snapshot("a1", "nl", "max@example.com", 1, "Max");
    a.end = Some("2024-09".parse().unwrap());
    h.engine.process(&tenant(), &changed(&a)).await.unwrap();
    let today = |d: &str| Input::Today { date: d.parse().unwrap() };
    h.engine.process(&tenant(), &today("2024-09-30")).await.unwrap();
    assert_eq!(h.esp.receiving(&l.esp, &l.list).len(), 1);
    h.engine.process(&tenant(), &today("2024-10-01")).await.unwrap();
    assert!(h.esp.receiving(&l.esp, &l.list).is_empty());
}

/// R-E3, R-C3: Brevo's `list_addition` for Max Muster names no attributes; the contact has FIRSTNAME Max
/// and LASTNAME Muster. The engine reads the contact back once before the entry is queued: the entry has
/// the names, and OPTIGEM's `match_persons` gets them. The same webhook again reads nothing.
#[tokio::test]
async fn r_e3_r_c3_a_brevo_signup_without_names_is_completed_from_the_contact_before_it_is_queued() {
    let store = Arc::new(MemoryStore::new());
    let esp = Arc::new(MemoryEsp::new());
    let clock = Arc::new(FixedClock::new(at(25)));
    let engine = Engine::new(store.clone(), esp.clone(), clock).with_reader(esp.clone());
    let l = Link {
        settings: LinkSettings { mapping: build::mapping("FIRSTNAME", Some("LASTNAME")), ..Default::default() },
        ..link(Provider::Brevo, "rundbrief")
    };
    store.put_link(&l).await.unwrap();
    esp.set_member(&l.esp, &l.list, "max.muster@example.com", true);
    esp.set_field(&l.esp, "max.muster@example.com", "FIRSTNAME", "Max");
    esp.set_field(&l.esp, "max.muster@example.com", "LASTNAME", "Muster");
    let signup = Signup {
        evidence: ConsentEvidence {
            signup_at: Some(at(25)),
            source: Some("brevo:list_addition".into()),
            ..Default::default()
        },
        ..Signup::default()
    };
    let max = Email::parse("max.muster@example.com").unwrap();
    let input = Input::Esp(EspEvent {
        esp: l.esp.clone(),
        list: Some(l.list.clone()),
        email: max.clone(),
        at: at(25),
        what: EspEventKind::Signup { signup: signup.clone() },
    });
    engine.process(&tenant(), &input).await.unwrap();
    assert_eq!(esp.contact_reads(), 1);
    let slice = optisync_ports::Slice { assignments: vec![], emails: vec![max.clone()] };
    let entry = store.load(&l, &slice).await.unwrap().view.approvals[&max].clone();
    let names = |s: &Signup| {
        (s.first_name.as_ref().map(|n| n.expose().to_owned()), s.last_name.as_ref().map(|n| n.expose().to_owned()))
    };
    assert_eq!(names(&entry.signup), (Some("Max".into()), Some("Muster".into())));
    assert_eq!(entry.signup.evidence, signup.evidence, "R-J1: the webhook's evidence");
    let feed = store.commands(&tenant(), 0, 100).await.unwrap();
    let asked: Vec<_> = feed
        .iter()
        .filter_map(|(_, c)| match c {
            OptigemCommand::MatchPersons { first_name, last_name, .. } => Some(names(&Signup {
                first_name: first_name.clone(),
                last_name: last_name.clone(),
                ..Default::default()
            })),
            _ => None,
        })
        .collect();
    assert_eq!(asked, [(Some("Max".to_owned()), Some("Muster".to_owned()))], "R-C3: OPTIGEM searches by the names");

    engine.process(&tenant(), &input).await.unwrap();
    assert_eq!(esp.contact_reads(), 1, "a redelivery queues nothing and reads nothing");
    assert_eq!(store.commands(&tenant(), 0, 100).await.unwrap().len(), 1);
}

/// R-J6 through the engine: after Max Muster unsubscribes from "Rundbrief" in Brevo on 2024-09-25, his
/// recipient state (on no list, his assignment being ended) expires after the tenant's 30 days while
/// Lena's (listed for an active assignment) stays; the R-J3 tombstone outlives it, so an assignment
/// created in OPTIGEM before the unsubscribe that arrives afterwards is ended, not listed again.
#[tokio::test]
async fn r_j6_an_unsubscribed_recipient_state_expires_and_its_tombstone_still_holds_r_j3() {
    let l = Link { id: LinkId::new("rundbrief"), ..link(Provider::Brevo, "rundbrief") };
    let store_clock = Arc::new(FixedClock::new(Utc::now()));
    let store = Arc::new(MemoryStore::new().with_clock(store_clock.clone()));
    store.put_link(&l).await.unwrap();
    let esp = Arc::new(MemoryEsp::new());
    let engine = Engine::new(store.clone(), esp.clone(), Arc::new(FixedClock::new(at(3))));
    let max = Email::parse("max.muster@example.org").unwrap();
    let lena = Email::parse("lena@example.org").unwrap();
    engine.process(&tenant(), &changed(&snapshot("A-1", "rundbrief", max.as_str(), 1, "Max"))).await.unwrap();
    engine.process(&tenant(), &changed(&snapshot("A-2", "rundbrief", lena.as_str(), 1, "Lena"))).await.unwrap();
    let unsubscribe = Input::Esp(EspEvent {
        esp: l.esp.clone(),
        list: Some(l.list.clone()),
        email: max.clone(),
        at: Utc.with_ymd_and_hms(2024, 9, 25, 8, 0, 0).unwrap(),
        what: EspEventKind::Unsubscribed,
    });
    engine.process(&tenant(), &unsubscribe).await.unwrap();
    let slice = optisync_ports::Slice { emails: vec![max.clone(), lena.clone()], ..Default::default() };
    let key = |e: &Email| optisync_ports::ItemKey::Recipient(l.id.clone(), e.key().to_owned());
    let before = store.load(&l, &slice).await.unwrap();
    assert!(before.versions.contains_key(&key(&max)));

    store_clock.set(Utc::now() + chrono::Duration::days(31));
    assert!(store.purge_expired() >= 1);
    let after = store.load(&l, &slice).await.unwrap();
    assert!(!after.versions.contains_key(&key(&max)), "Max's state expired");
    assert!(after.versions.contains_key(&key(&lena)), "Lena's state is needed and stays");
    assert_eq!(after.view.recipients[&max].tombstone, before.view.recipients[&max].tombstone);

    // An assignment created on 2024-09-01, before the unsubscribe, reaches optisync only now.
    let stale = snapshot("A-3", "rundbrief", max.as_str(), 1, "Max");
    engine.process(&tenant(), &changed(&stale)).await.unwrap();
    assert!(!esp.receiving(&l.esp, &l.list).contains(max.as_str()), "not listed again (R-J3)");
    let feed = store.commands(&tenant(), 0, 10).await.unwrap();
    let ended: Vec<String> = feed
        .iter()
        .filter_map(|(_, c)| match c {
            OptigemCommand::EndAssignment { assignment, .. } => Some(assignment.to_string()),
            _ => None,
        })
        .collect();
    assert!(ended.contains(&"A-3".to_owned()), "ended like the unsubscribe: {ended:?}");
}
