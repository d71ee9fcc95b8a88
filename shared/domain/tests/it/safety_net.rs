//! R-J3, the safety net, path by path: a recipient who unsubscribed by their own action is never
//! re-subscribed by an automatic sync acting on stale data, wherever a recipient could be created or
//! activated (R-D1 OPTIGEM changes, R-F2 the first sync, R-E3 approvals, the scheduled run's listing and
//! its due transitions); a deliberate new subscription still re-subscribes.
//!
//! 004: the safety mechanism "verhindert nur, dass bereits abgemeldete Personen nicht unabsichtlich
//! wieder erstellt und angemeldet werden"; a deliberate re-subscription ("eine bewusste Entscheidung")
//! is not stopped by it.

use crate::common;
use common::*;
use optisync_domain::drift::{self, ListedMember};
use optisync_domain::*;
use pretty_assertions::assert_eq;

fn names(plan: &Plan) -> Vec<String> {
    plan.esp.iter().map(|a| a.op.name().to_owned()).collect()
}

/// Whether a plan creates, lists or activates anyone.
fn subscribes(plan: &Plan) -> bool {
    plan.esp.iter().any(|a| matches!(a.op, EspOp::Upsert { .. } | EspOp::AddToList | EspOp::Activate))
}

/// The recipient's own unsubscribe: Brevo's account-wide blacklist (R-E2), CleverReach's unsubscribe link
/// in the group (R-E1).
fn unsubscribe(l: &Link, mail: &str, when: &str) -> Input {
    match l.esp.provider {
        Provider::Brevo => esp_event(l, false, mail, when, EspEventKind::Blacklisted),
        Provider::CleverReach => esp_event(l, true, mail, when, EspEventKind::Unsubscribed),
    }
}

/// Erika Muster's active assignment of `nl`, created on 2024-01-10, with her own standard e-mail.
fn erika(nl: &str) -> Assignment {
    let mut a = assignment("a-erika", nl, "erika@example.com");
    a.person.first_name = Some(PersonalText::new("Erika"));
    a
}

/// Her standard e-mail set to another address on a day.
fn standard_email(a: &Assignment, when: &str, mail: &str) -> Assignment {
    next(a, when, |b| b.person.emails = vec![RankedEmail { email: email(mail), priority: 1 }])
}

/// An approver's decision on a day, as `Approvals::decide` stores it: the entry approved for an existing
/// person, its `create_assignment` waiting in the connector's feed.
fn approve(k: &mut Known, l: &Link, mail: &str, person: &str, when: &str) {
    let view = k.links.iter_mut().find(|v| v.link.id == l.id).expect("link");
    let entry = view.approvals.get_mut(&email(mail)).expect("a pending entry");
    assert_eq!(entry.status, ApprovalStatus::Pending);
    entry.status = ApprovalStatus::Approved;
    entry.decision = Some(Decision::Approve {
        person: PersonChoice::Existing { person: PersonId::new(person) },
        command: command_id("approve", &[l.id.as_str(), mail, when]),
        at: noon(when),
    });
}

fn signup(l: &Link, mail: &str, when: &str) -> Input {
    esp_event(l, true, mail, when, EspEventKind::Signup { signup: Signup::default() })
}

/// B7, R-D4 with R-J3 and R-E1. Max (max@) unsubscribes from the newsletter via the ESP on 2024-09-25; on
/// 2024-10-05 staff set Erika's standard e-mail (her assignment of the same newsletter is active) to
/// max@, the family address. An e-mail change is no deliberate subscription (R-J3): max@ stays
/// unsubscribed, neither put on the list again nor activated (in Brevo: not taken off the blacklist).
///
/// What becomes of Erika's assignment: it is ended like every assignment of that newsletter using the
/// unsubscribed address. 000 FAQ: "Wenn im E-Mail-Marketing-Tool eine Abmeldung zu der E-Mail-Adresse
/// ausgeführt wird …, so werden alle Zuordnungen des gleichen Newsletters mit derselben E-Mail-Adresse
/// beendet" (R-C4, R-E1), and for the active status the ESP wins (R-F6): the documented sync would add
/// max@ to the list, find it inactive there and end the assignment on its way back. Leaving it active
/// would show a subscription in OPTIGEM that never delivers and that no run repairs; ended, it shows the
/// unsubscription record, and clearing the end again is a deliberate re-activation that re-subscribes.
/// The end is dated when the assignment took the address, not earlier: 000 wants the history to show
/// "dass der Newsletter bis zu einem gewissen Zeitpunkt an die alte E-Mail-Adresse gesendet wurde", and
/// Erika received September's issue at her old address. So: end "September 2024", dated 2024-10-05.
#[test]
fn r_j3_an_email_change_to_an_address_that_unsubscribed_does_not_resubscribe_it() {
    for l in [brevo("nl"), cleverreach("nl")] {
        let id = l.id.to_string();
        let mut k = known(vec![l.clone()]);
        let max = assignment("a-max", "nl", "max@example.com");
        step(&mut k, changed(&max), "2024-09-01");
        step(&mut k, changed(&erika("nl")), "2024-09-01");
        let p = step(&mut k, unsubscribe(&l, "max@example.com", "2024-09-25"), "2024-09-25");
        assert_eq!(ends(&p), vec![("a-max".into(), "2024-08".into(), "2024-09-25".into())]);
        step(&mut k, changed(&next(&max, "2024-09-26", |b| b.end = Some(ym("2024-08")))), "2024-09-26");

        let moved = standard_email(&erika("nl"), "2024-10-05", "max@example.com");
        let p = step(&mut k, changed(&moved), "2024-10-05");
        let off = if l.esp.provider == Provider::Brevo { "remove_from_list" } else { "deactivate" };
        assert_eq!(ops(&p), vec![op(&id, "erika@example.com", off)], "max@ is neither listed nor activated: {p:?}");
        assert_eq!(ends(&p), vec![("a-erika".into(), "2024-09".into(), "2024-10-05".into())]);
        let r = recipient(&k, &l, "max@example.com");
        assert!(!(r.listed && r.active), "{l:?}: max@ receives nothing: {r:?}");
        assert!(r.tombstone.is_some(), "the unsubscribe stays on record");

        // OPTIGEM writes the end. Later staff clear it on purpose: a re-activation re-subscribes.
        let ended = next(&moved, "2024-10-06", |b| b.end = Some(ym("2024-09")));
        assert!(step(&mut k, changed(&ended), "2024-10-06").esp.is_empty());
        let revived = next(&ended, "2024-10-20", |b| b.end = None);
        let p = step(&mut k, changed(&revived), "2024-10-20");
        assert!(names(&p).contains(&"activate".to_owned()), "{l:?}: {p:?}");
        assert!(recipient(&k, &l, "max@example.com").tombstone.is_none());
    }
}

/// B7 in the other order: the unsubscribe of max@ (2024-09-25) reaches optisync only on 2024-10-06, a
/// day after Erika's assignment took that address. The change of address was no subscription the
/// unsubscribe could be older than: the assignment is ended (as of the change) and max@ is not activated.
#[test]
fn r_j3_an_unsubscribe_reported_after_an_email_change_to_that_address_still_ends_the_assignment() {
    for l in [brevo("nl"), cleverreach("nl")] {
        let mut k = known(vec![l.clone()]);
        step(&mut k, changed(&erika("nl")), "2024-09-01");
        let moved = standard_email(&erika("nl"), "2024-10-05", "max@example.com");
        assert_eq!(names(&step(&mut k, changed(&moved), "2024-10-05"))[1..], ["upsert", "add_to_list"]);
        let p = step(&mut k, unsubscribe(&l, "max@example.com", "2024-09-25"), "2024-10-06");
        assert!(!subscribes(&p), "{l:?}: {p:?}");
        assert_eq!(ends(&p), vec![("a-erika".into(), "2024-09".into(), "2024-10-05".into())]);
        assert!(recipient(&k, &l, "max@example.com").tombstone.is_some());
    }
}

/// B8, R-E3 with R-J3. Max signs up on 2024-09-01; the signup is approved on 2024-09-05, and the
/// `create_assignment` waits in the connector's feed; Max unsubscribes on 2024-09-10; the connector runs
/// the command on 2024-09-12. The approval's decision, not the assignment's creation, is the
/// subscription: it was decided before the revocation, so the new assignment re-subscribes nobody and is
/// ended like any assignment of that address (end "August 2024", dated 2024-09-10). The approval is
/// recognised once: Max's deliberate new assignment of 2024-10-01 re-subscribes.
#[test]
fn r_j3_an_approval_decided_before_the_unsubscribe_and_carried_out_after_it_resubscribes_nobody() {
    for l in [brevo("nl"), cleverreach("nl")] {
        let mut k = known(vec![l.clone()]);
        step(&mut k, signup(&l, "max@example.com", "2024-09-01"), "2024-09-01");
        approve(&mut k, &l, "max@example.com", "p-a-max", "2024-09-05");
        step(&mut k, unsubscribe(&l, "max@example.com", "2024-09-10"), "2024-09-10");

        let mut created = assignment("a-max", "nl", "max@example.com");
        created.created_at = noon("2024-09-12");
        created.changed_at = noon("2024-09-12");
        let p = step(&mut k, changed(&created), "2024-09-12");
        assert!(!subscribes(&p), "{l:?}: {p:?}");
        assert_eq!(ends(&p), vec![("a-max".into(), "2024-08".into(), "2024-09-10".into())]);
        assert!(recipient(&k, &l, "max@example.com").tombstone.is_some());

        step(&mut k, changed(&next(&created, "2024-09-13", |b| b.end = Some(ym("2024-08")))), "2024-09-13");
        let mut fresh = assignment("a-max-2", "nl", "max@example.com");
        fresh.person.id = PersonId::new("p-a-max");
        fresh.created_at = noon("2024-10-01");
        fresh.changed_at = noon("2024-10-01");
        let p = step(&mut k, changed(&fresh), "2024-10-01");
        assert!(names(&p).contains(&"activate".to_owned()), "{l:?}: {p:?}");
        assert!(p.commands.is_empty(), "{p:?}");
    }
}

/// R-E3, R-J3: a new opt-in after the unsubscribe is a deliberate new subscription: the signup of
/// 2024-10-01 waits for approval, and the assignment the approval creates keeps the recipient receiving.
#[test]
fn r_j3_a_signup_after_the_unsubscribe_approved_and_carried_out_resubscribes() {
    for l in [brevo("nl"), cleverreach("nl")] {
        let mut k = known(vec![l.clone()]);
        step(&mut k, changed(&assignment("a-old", "nl", "max@example.com")), "2024-09-01");
        step(&mut k, unsubscribe(&l, "max@example.com", "2024-09-10"), "2024-09-10");
        if l.esp.provider == Provider::Brevo {
            // Brevo dates a list addition when it happened: one from before the unsubscribe is stale.
            // (CleverReach's reports are re-read: they show the receiver as it is now.)
            assert!(step(&mut k, signup(&l, "max@example.com", "2024-09-09"), "2024-09-30").is_empty());
        }
        let p = step(&mut k, signup(&l, "max@example.com", "2024-10-01"), "2024-10-01");
        assert!(p.esp.is_empty() && matches!(&p.commands[..], [OptigemCommand::MatchPersons { .. }]), "{p:?}");
        approve(&mut k, &l, "max@example.com", "p-a-max", "2024-10-02");
        let mut created = assignment("a-max", "nl", "max@example.com");
        created.created_at = noon("2024-10-03");
        created.changed_at = noon("2024-10-03");
        let p = step(&mut k, changed(&created), "2024-10-03");
        assert!(ends(&p).is_empty(), "{l:?}: {p:?}");
        let r = recipient(&k, &l, "max@example.com");
        assert!(r.listed && r.active && r.linked && r.tombstone.is_none(), "{l:?}: {r:?}");
    }
}

/// R-F2 with R-J3: at the first sync of a link that already holds an unsubscribe (a link saved again
/// after it was unlinked), OPTIGEM's export of an assignment created before the unsubscribe creates and
/// activates nobody; the assignment is ended (R-F5).
#[test]
fn r_j3_the_first_sync_does_not_resubscribe_a_recipient_who_unsubscribed() {
    for mut l in [brevo("nl"), cleverreach("nl")] {
        let mut k = known(vec![l.clone()]);
        let a = assignment("a-max", "nl", "max@example.com");
        step(&mut k, changed(&a), "2024-09-01");
        step(&mut k, unsubscribe(&l, "max@example.com", "2024-09-25"), "2024-09-25");
        l.status = LinkStatus::Linking;
        k.links[0].link = l.clone();
        // The export still shows the assignment without its end (OPTIGEM has not run the command).
        let exported = next(&a, "2024-09-30", |b| b.version += 10);
        let p = step(&mut k, changed(&exported), "2024-09-30");
        assert!(!subscribes(&p), "{l:?}: {p:?}");
        // And an assignment first seen in the export, created before the unsubscribe, is ended.
        let p = step(&mut k, changed(&assignment("a-dup", "nl", "max@example.com")), "2024-09-30");
        assert!(!subscribes(&p), "{l:?}: {p:?}");
        assert_eq!(ends(&p), vec![("a-dup".into(), "2024-08".into(), "2024-09-25".into())]);
    }
}

/// The scheduled run's listing with R-J3: a member the ESP lists as receiving again after the unsubscribe
/// becomes a signup for the approval queue (R-E3, R-E8), never an active assignment, and optisync writes
/// nothing to the ESP for it.
#[test]
fn r_j3_a_listing_that_shows_the_recipient_receiving_again_queues_a_signup_and_activates_nothing() {
    for l in [brevo("nl"), cleverreach("nl")] {
        let mut k = known(vec![l.clone()]);
        step(&mut k, changed(&assignment("a-max", "nl", "max@example.com")), "2024-09-01");
        step(&mut k, unsubscribe(&l, "max@example.com", "2024-09-25"), "2024-09-25");
        let listed = ListedMember {
            email: email("max@example.com"),
            active: true,
            blacklisted: false,
            changed_at: Some(noon("2024-10-01")),
            signup: Signup::default(),
        };
        let found = drift::differences(&l, view(&k, &l), &[listed], noon("2024-10-02"));
        assert!(found.ends.is_empty());
        assert_eq!(found.now.len(), 1, "{l:?}: {found:?}");
        let p = step(&mut k, Input::Esp(found.now[0].clone()), "2024-10-02");
        assert!(!subscribes(&p), "{l:?}: {p:?}");
        assert!(matches!(&p.commands[..], [OptigemCommand::MatchPersons { .. }]), "{l:?}: {p:?}");
        assert!(recipient(&k, &l, "max@example.com").tombstone.is_some());
    }
}

/// R-A9 with R-J3: time alone is no deliberate subscription. Max's delivery block "Urlaub" (relevant)
/// runs from 2024-09-20 to 2024-10-10; he unsubscribes on 2024-09-25; OPTIGEM has not yet written the
/// end when the block ends on 2024-10-11: the daily run activates nobody.
#[test]
fn r_j3_a_block_ending_after_the_unsubscribe_resubscribes_nobody() {
    for mut l in [brevo("nl"), cleverreach("nl")] {
        l.settings.relevant_blocks.insert(DeliveryBlockType::new("urlaub"));
        let mut k = known(vec![l.clone()]);
        let blocked = next(&assignment("a-max", "nl", "max@example.com"), "2024-09-01", |b| {
            b.person.delivery_blocks.push(DeliveryBlock {
                kind: DeliveryBlockType::new("urlaub"),
                valid_from: Some(day("2024-09-20")),
                valid_until: Some(day("2024-10-10")),
            })
        });
        step(&mut k, changed(&blocked), "2024-09-01");
        step(&mut k, Input::Today { date: day("2024-09-20") }, "2024-09-20");
        let p = step(&mut k, unsubscribe(&l, "max@example.com", "2024-09-25"), "2024-09-25");
        assert_eq!(ends(&p).len(), 1, "{l:?}: {p:?}");
        let p = step(&mut k, Input::Today { date: day("2024-10-11") }, "2024-10-11");
        assert!(!subscribes(&p), "{l:?}: {p:?}");
    }
}
