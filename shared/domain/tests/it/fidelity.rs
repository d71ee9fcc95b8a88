//! The planner against the rule-fidelity findings: what the source documents say where the first
//! release did otherwise (R-C5, R-C6, R-D1, R-E1, R-E8, R-G3, R-G5), with the documents' examples.

use crate::common;
use common::*;
use optisync_domain::*;
use pretty_assertions::assert_eq;

/// A change made to a snapshot in OPTIGEM.
type Change = Box<dyn Fn(&mut Assignment)>;

fn names(plan: &Plan) -> Vec<String> {
    plan.esp.iter().map(|a| a.op.name().to_owned()).collect()
}

/// 000 "Neue Empfänger": "Sollte der Empfänger deaktiviert sein, erfolgt zudem eine Aktivierung."
/// A CleverReach receiver deactivated in 2023, before OPTIGEM had any assignment for it: the new
/// assignment of 2024-10 activates it, and the ESP's report of the old deactivation ends nothing.
#[test]
fn r_d1_a_receiver_deactivated_before_the_assignment_existed_is_activated_not_ended() {
    let l = cleverreach("nl");
    let mut k = known(vec![l.clone()]);
    let mut a = assignment("a1", "nl", "old@example.com");
    a.created_at = noon("2024-10-05");
    a.changed_at = noon("2024-10-05");
    let p = step(&mut k, changed(&a), "2024-10-05");
    assert_eq!(names(&p), ["upsert", "add_to_list"]);
    // The re-read of the upsert (or the next listing) shows the receiver inactive since 2023-02-10.
    let p = step(&mut k, esp_event(&l, true, "old@example.com", "2023-02-10", EspEventKind::Deactivated), "2024-10-05");
    assert!(p.commands.is_empty(), "the new assignment is not ended: {p:?}");
    assert_eq!(names(&p), ["activate"]);
    let r = recipient(&k, &l, "old@example.com");
    assert!(r.active && r.tombstone.is_none());
    // The same report again changes nothing: the activation came after it.
    let again = esp_event(&l, true, "old@example.com", "2023-02-10", EspEventKind::Deactivated);
    assert!(step(&mut k, again, "2024-10-06").is_empty());
}

/// The Brevo variant: a contact blacklisted from a list that is not linked. The engine passes what the
/// ESP shows of a recipient the link holds no state of; the new assignment takes it off the blacklist.
#[test]
fn r_d1_a_brevo_contact_blacklisted_elsewhere_is_taken_off_the_blacklist_for_a_new_assignment() {
    let l = brevo("nl");
    let mut k = known(vec![l.clone()]);
    k.links[0].observed.insert(email("old@example.com"), Observed { active: false, since: Some(noon("2023-02-10")) });
    let mut a = assignment("a1", "nl", "old@example.com");
    a.created_at = noon("2024-10-05");
    let p = step(&mut k, changed(&a), "2024-10-05");
    assert_eq!(names(&p), ["upsert", "add_to_list", "activate"]);
    assert!(recipient(&k, &l, "old@example.com").active);
}

/// R-F3/F5: the first sync is the exception: a recipient deactivated in the ESP stays inactive and its
/// assignment is ended ("beim Aktiv-Status hat das E-Mail-Marketing-Tool Vorrang").
#[test]
fn r_d1_does_not_apply_to_the_first_sync_where_the_esp_wins() {
    for l in [cleverreach("nl"), brevo("nl")] {
        let mut l = l;
        l.status = LinkStatus::Linking;
        let mut k = known(vec![l.clone()]);
        k.links[0]
            .observed
            .insert(email("old@example.com"), Observed { active: false, since: Some(noon("2023-02-10")) });
        let mut a = assignment("a1", "nl", "old@example.com");
        a.created_at = noon("2024-10-05");
        let p = step(&mut k, changed(&a), "2024-10-06");
        assert_eq!(names(&p), ["upsert", "add_to_list"], "{l:?}");
        let what =
            if l.esp.provider == Provider::Brevo { EspEventKind::Blacklisted } else { EspEventKind::Deactivated };
        let p = step(
            &mut k,
            esp_event(&l, l.esp.provider == Provider::CleverReach, "old@example.com", "2023-02-10", what),
            "2024-10-06",
        );
        assert_eq!(ends(&p).len(), 1, "{p:?}");
        assert!(!p.esp.iter().any(|x| x.op == EspOp::Activate));
    }
}

/// 000 FAQ: "Max" signs up, the approver links him to "Max und Erika Muster" and leaves the name. The
/// names stay different until the name is changed in OPTIGEM; a change of the letter salutation alone
/// sends the salutation, not the first name kept different at approval.
#[test]
fn r_c5_a_changed_salutation_does_not_overwrite_a_first_name_kept_different_at_approval() {
    let mut l = cleverreach("nl");
    l.settings.mapping.letter_salutation = Some(AttributeName::new("SALUTATION"));
    let mut k = known(vec![l.clone()]);
    let signup = Signup {
        first_name: Some(PersonalText::new("Max")),
        last_name: Some(PersonalText::new("Muster")),
        ..Default::default()
    };
    let at = "2024-06-01";
    step(&mut k, esp_event(&l, true, "max.muster@example.com", at, EspEventKind::Signup { signup }), at);
    let mut a = assignment("a1", "nl", "max.muster@example.com");
    a.created_at = noon("2024-06-03");
    a.person.first_name = Some(PersonalText::new("Max und Erika"));
    assert!(step(&mut k, changed(&a), "2024-06-03").esp.is_empty());
    let salutation =
        next(&a, "2024-06-04", |b| b.person.letter_salutation = Some(PersonalText::new("Liebe Familie Muster")));
    let p = step(&mut k, changed(&salutation), "2024-06-04");
    let [EspAction { op: EspOp::UpdateFields { fields }, .. }] = p.esp.as_slice() else { panic!("{p:?}") };
    let sent: Vec<(&str, &str)> = fields.0.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
    assert_eq!(sent, [("SALUTATION", "Liebe Familie Muster")]);
    // Then the name itself changes in OPTIGEM ("Max u. Erika"): now it propagates, alone.
    let renamed = next(&salutation, "2024-06-05", |b| b.person.first_name = Some(PersonalText::new("Max u. Erika")));
    let p = step(&mut k, changed(&renamed), "2024-06-05");
    let [EspAction { op: EspOp::UpdateFields { fields }, .. }] = p.esp.as_slice() else { panic!("{p:?}") };
    let sent: Vec<(&str, &str)> = fields.0.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
    assert_eq!(sent, [("FIRSTNAME", "Max u. Erika")]);
}

/// An instant on a Berlin day, e.g. `at("2024-09-25", 9)` for 09:00.
fn at(date: &str, hour: i64) -> chrono::DateTime<chrono::Utc> {
    noon(date) + chrono::Duration::hours(hour - 12)
}

fn end_ids(plan: &Plan) -> Vec<CommandId> {
    plan.commands.iter().filter(|c| matches!(c, OptigemCommand::EndAssignment { .. })).map(|c| c.id().clone()).collect()
}

/// R-E1: unsubscribe at 09:00, a deliberate re-activation in OPTIGEM at 12:00, unsubscribe again at
/// 16:00, all on one day: the second end is a command of its own (the feed keeps each id once), while a
/// redelivery of the same unsubscribe still plans the same command.
#[test]
fn r_e1_a_second_end_of_the_same_assignment_on_the_same_day_is_a_command_of_its_own() {
    let l = cleverreach("nl");
    let unsubscribed = |hour| {
        Input::Esp(EspEvent {
            esp: l.esp.clone(),
            list: Some(l.list.clone()),
            email: email("max@example.com"),
            at: at("2024-09-25", hour),
            what: EspEventKind::Unsubscribed,
        })
    };
    let mut k = known(vec![l.clone()]);
    let a = assignment("a1", "nl", "max@example.com");
    step(&mut k, changed(&a), "2024-09-01");
    let before = k.clone();
    let first = end_ids(&step(&mut k, unsubscribed(9), "2024-09-25"));
    assert_eq!(first, end_ids(&plan(&before, &unsubscribed(9), at("2024-09-25", 10))), "deterministic");
    let ended = next(&a, "2024-09-25", |b| b.end = Some(ym("2024-08")));
    let mut ended = ended;
    ended.changed_at = at("2024-09-25", 10);
    step(&mut k, changed(&ended), "2024-09-25");
    let mut revived = next(&ended, "2024-09-25", |b| b.end = None);
    revived.changed_at = at("2024-09-25", 12);
    let p = step(&mut k, changed(&revived), "2024-09-25");
    assert_eq!(ops(&p), vec![op("cr-nl", "max@example.com", "activate")]);
    let second = end_ids(&step(&mut k, unsubscribed(16), "2024-09-25"));
    assert_eq!((first.len(), second.len()), (1, 1));
    assert_ne!(first, second, "the second episode must not be dropped as a duplicate of the first");
}

/// R-C4: the same for an end that ending a duplicate causes (`duplicate_ended`).
#[test]
fn r_c4_a_second_duplicate_end_on_the_same_day_is_a_command_of_its_own() {
    let l = cleverreach("nl");
    let mut k = known(vec![l.clone()]);
    let a = assignment("a1", "nl", "shared@example.com");
    let b = assignment("a2", "nl", "shared@example.com");
    step(&mut k, changed(&a), TODAY);
    step(&mut k, changed(&b), TODAY);
    let a_ended = next(&a, TODAY, |x| x.end = Some(ym("2024-05")));
    let first = end_ids(&step(&mut k, changed(&a_ended), TODAY));
    // OPTIGEM runs the end of a2; then both are deliberately re-activated and a1 is ended again.
    let b_ended = next(&b, TODAY, |x| x.end = Some(ym("2024-05")));
    step(&mut k, changed(&b_ended), TODAY);
    step(&mut k, changed(&next(&a_ended, TODAY, |x| x.end = None)), TODAY);
    step(&mut k, changed(&next(&b_ended, TODAY, |x| x.end = None)), TODAY);
    let a_again = next(&next(&a_ended, TODAY, |x| x.end = None), TODAY, |x| x.end = Some(ym("2024-05")));
    let second = end_ids(&step(&mut k, changed(&a_again), TODAY));
    assert_eq!((first.len(), second.len()), (1, 1));
    assert_ne!(first, second);
}

const TODAY: &str = "2024-06-03";

/// R-E1: "an earlier existing end is kept, and the exact unsubscribe date and its source are written":
/// an assignment ended "März 2024" keeps its end on an unsubscribe of 2024-09-25, and gets the record.
#[test]
fn r_e1_an_already_ended_assignment_keeps_its_end_and_gets_the_unsubscription_record() {
    let l = cleverreach("nl");
    let mut k = known(vec![l.clone()]);
    let mut a = assignment("a1", "nl", "max@example.com");
    a.end = Some(ym("2024-03"));
    step(&mut k, changed(&a), "2024-09-01");
    let p =
        step(&mut k, esp_event(&l, true, "max@example.com", "2024-09-25", EspEventKind::Unsubscribed), "2024-09-25");
    assert_eq!(ends(&p), vec![("a1".into(), "2024-03".into(), "2024-09-25".into())]);
    let [OptigemCommand::EndAssignment { unsubscription, .. }] = p.commands.as_slice() else { panic!("{p:?}") };
    assert_eq!(unsubscription.source.cause, UnsubscribeCause::Unsubscribed);
    // Once OPTIGEM shows the record, the same unsubscribe reported again writes nothing.
    let recorded = next(&a, "2024-09-26", |b| b.unsubscription = Some(unsubscription.clone()));
    step(&mut k, changed(&recorded), "2024-09-26");
    let p =
        step(&mut k, esp_event(&l, true, "max@example.com", "2024-09-25", EspEventKind::Unsubscribed), "2024-09-27");
    assert!(p.commands.is_empty(), "{p:?}");
}

fn segment_link() -> Link {
    let mut l = cleverreach("seg");
    l.segment = Some(SegmentId::new("filter-7"));
    l
}

fn membership(l: &Link, mail: &str, when: &str, member: bool) -> Input {
    esp_event(
        l,
        true,
        mail,
        when,
        EspEventKind::SegmentMembership { segment: SegmentId::new("filter-7"), member, signup: Signup::default() },
    )
}

/// 000 §4: only deleting or ending a segment assignment deactivates the receiver in the whole group
/// (R-G5); any other manual change, such as a new e-mail, is simply overwritten by the segment's state at
/// the next sync (R-G4), and nothing is pushed to CleverReach (R-G2).
#[test]
fn r_g5_an_email_change_on_a_segment_assignment_deactivates_nothing_in_the_group() {
    let l = segment_link();
    let mut k = known(vec![l.clone()]);
    let a = assignment("a1", "seg", "old@example.com");
    step(&mut k, membership(&l, "old@example.com", "2024-06-01", true), "2024-06-01");
    step(&mut k, changed(&a), TODAY);
    let moved = next(&a, TODAY, |b| b.email = Some(email("new@example.com")));
    let p = step(&mut k, changed(&moved), TODAY);
    assert!(p.esp.is_empty(), "{p:?}");
    assert!(recipient(&k, &l, "old@example.com").active);
    // Ending it (with or without a new address) is the exception: deactivated in the whole group.
    let mut k = known(vec![l.clone()]);
    step(&mut k, membership(&l, "old@example.com", "2024-06-01", true), "2024-06-01");
    step(&mut k, changed(&a), TODAY);
    let moved_and_ended = next(&moved, TODAY, |b| b.end = Some(ym("2024-05")));
    let p = step(&mut k, changed(&moved_and_ended), TODAY);
    assert_eq!(ops(&p), vec![op("cr-seg", "old@example.com", "deactivate")]);
}

/// R-C6, R-A7: a delivery block "Urlaub" from 2024-06-10 to 2024-06-20. optisync deactivates the
/// receiver on the 10th; CleverReach reports that deactivation back (a receiver webhook, re-read). The
/// report is optisync's own write: no end, no tombstone, and on the 21st the receiver is active again.
/// The same for the other reasons of inactivity (count 0, a privacy block).
#[test]
fn r_c6_optisyncs_own_cleverreach_deactivation_reported_back_ends_nothing() {
    let mut l = cleverreach("nl");
    l.settings.relevant_blocks.insert(DeliveryBlockType::new("urlaub"));
    l.settings.relevant_privacy.insert(PrivacyCategory::new("email"));
    let base = assignment("a1", "nl", "max@example.com");
    let mut blocked = next(&base, "2024-06-01", |b| {
        b.person.delivery_blocks.push(DeliveryBlock {
            kind: DeliveryBlockType::new("urlaub"),
            valid_from: Some(day("2024-06-10")),
            valid_until: Some(day("2024-06-20")),
        })
    });
    blocked.person.privacy.insert(PrivacyCategory::new("email"), PrivacyStatus::Allowed);
    let mut k = known(vec![l.clone()]);
    step(&mut k, changed(&blocked), "2024-06-01");
    let p = step(&mut k, Input::Today { date: day("2024-06-10") }, "2024-06-10");
    assert_eq!(ops(&p), vec![op("cr-nl", "max@example.com", "deactivate")]);
    let echo = esp_event(&l, true, "max@example.com", "2024-06-10", EspEventKind::Deactivated);
    let p = step(&mut k, echo, "2024-06-10");
    assert!(p.is_empty(), "the echo of optisync's own deactivation: {p:?}");
    assert!(recipient(&k, &l, "max@example.com").tombstone.is_none());
    let p = step(&mut k, Input::Today { date: day("2024-06-21") }, "2024-06-21");
    assert_eq!(ops(&p), vec![op("cr-nl", "max@example.com", "activate")], "the block ended");
    assert!(p.commands.is_empty());

    let changes: Vec<(&str, Change)> = vec![
        ("count 0", Box::new(|b| b.count = 0)),
        (
            "privacy block",
            Box::new(|b| {
                b.person.privacy.insert(PrivacyCategory::new("email"), PrivacyStatus::Blocked);
            }),
        ),
    ];
    for (what, change) in changes {
        let mut k = known(vec![l.clone()]);
        let mut a = base.clone();
        a.person.privacy.insert(PrivacyCategory::new("email"), PrivacyStatus::Allowed);
        step(&mut k, changed(&a), "2024-06-01");
        let off = next(&a, "2024-06-05", |b| change(b));
        assert_eq!(ops(&step(&mut k, changed(&off), "2024-06-05")), vec![op("cr-nl", "max@example.com", "deactivate")]);
        let echo = esp_event(&l, true, "max@example.com", "2024-06-05", EspEventKind::Deactivated);
        assert!(step(&mut k, echo, "2024-06-05").is_empty(), "{what}");
        let on =
            next(&off, "2024-06-07", |b| *b = Assignment { version: b.version, changed_at: b.changed_at, ..a.clone() });
        let p = step(&mut k, changed(&on), "2024-06-07");
        assert_eq!(ops(&p), vec![op("cr-nl", "max@example.com", "activate")], "{what}");
        assert!(p.commands.is_empty(), "{what}");
    }
}

/// R-C6 for Brevo: the list-addition webhook of optisync's own `add_to_list` arrives after optisync took
/// the contact off the list again (count 0): it is no signup for the approval queue.
#[test]
fn r_c6_a_late_echo_of_optisyncs_own_brevo_list_addition_is_no_signup() {
    let l = brevo("nl");
    let mut k = known(vec![l.clone()]);
    let a = assignment("a1", "nl", "max@example.com");
    step(&mut k, changed(&a), "2024-06-03");
    let off = next(&a, "2024-06-04", |b| b.count = 0);
    assert_eq!(
        ops(&step(&mut k, changed(&off), "2024-06-04")),
        vec![op("br-nl", "max@example.com", "remove_from_list")]
    );
    let addition = Input::Esp(EspEvent {
        esp: l.esp.clone(),
        list: Some(l.list.clone()),
        email: email("max@example.com"),
        at: noon("2024-06-03") + chrono::Duration::seconds(2),
        what: EspEventKind::Signup { signup: Signup::default() },
    });
    let p = step(&mut k, addition, "2024-06-04");
    assert!(p.is_empty(), "{p:?}");
}

/// R-E8: a recipient re-activated inside the ESP while its assignment is ended goes to the approval
/// queue like a signup; it is neither ignored nor turned into an active assignment. CleverReach: ended in
/// OPTIGEM, deactivated by optisync, re-activated by an admin (the re-read shows it active, dated by its
/// first activation, which CleverReach keeps). Brevo: taken off the list, added again by an admin.
#[test]
fn r_e8_a_recipient_reactivated_in_the_esp_while_its_assignment_is_ended_waits_for_approval() {
    for l in [cleverreach("nl"), brevo("nl")] {
        let mut k = known(vec![l.clone()]);
        let a = assignment("a1", "nl", "max@example.com");
        step(&mut k, changed(&a), "2024-06-03");
        let ended = next(&a, "2024-06-10", |b| b.end = Some(ym("2024-05")));
        assert_eq!(step(&mut k, changed(&ended), "2024-06-10").esp.len(), 1);
        let dated = if l.esp.provider == Provider::CleverReach { "2024-06-03" } else { "2024-06-20" };
        let back = esp_event(&l, true, "max@example.com", dated, EspEventKind::Signup { signup: Signup::default() });
        let p = step(&mut k, back, "2024-06-20");
        assert!(p.esp.is_empty(), "{l:?}: {p:?}");
        assert!(matches!(&p.commands[..], [OptigemCommand::MatchPersons { .. }]), "{l:?}: {p:?}");
        assert_eq!(view(&k, &l).approvals[&email("max@example.com")].status, ApprovalStatus::Pending);
    }
}

/// R-E8 after the recipient's own unsubscribe: CleverReach re-reads show the receiver as it is now, dated
/// by its first activation, which is older than the unsubscribe; active now is a re-activation.
#[test]
fn r_e8_a_cleverreach_receiver_reactivated_after_its_unsubscribe_waits_for_approval() {
    let l = cleverreach("nl");
    let mut k = known(vec![l.clone()]);
    step(&mut k, changed(&assignment("a1", "nl", "max@example.com")), "2024-06-03");
    step(&mut k, esp_event(&l, true, "max@example.com", "2024-06-10", EspEventKind::Unsubscribed), "2024-06-10");
    let back = esp_event(&l, true, "max@example.com", "2024-06-03", EspEventKind::Signup { signup: Signup::default() });
    let p = step(&mut k, back, "2024-06-20");
    assert!(p.esp.is_empty(), "not turned into an active assignment: {p:?}");
    assert!(matches!(&p.commands[..], [OptigemCommand::MatchPersons { .. }]), "{p:?}");
    assert!(recipient(&k, &l, "max@example.com").tombstone.is_some(), "the unsubscribe stays on record (R-J3)");
}

/// R-E1 at the first sync (R-F5): a CleverReach receiver deactivated on 2023-02-10 ends an assignment
/// created on 2024-10-05, but the unsubscription is never dated before the assignment existed.
#[test]
fn r_e1_an_end_is_never_dated_before_the_assignment_started() {
    let mut l = cleverreach("nl");
    l.status = LinkStatus::Linking;
    let mut k = known(vec![l.clone()]);
    let mut a = assignment("a1", "nl", "old@example.com");
    a.created_at = noon("2024-10-05");
    a.changed_at = noon("2024-10-05");
    step(&mut k, changed(&a), "2024-10-06");
    let p = step(&mut k, esp_event(&l, true, "old@example.com", "2023-02-10", EspEventKind::Deactivated), "2024-10-06");
    assert_eq!(ends(&p), vec![("a1".into(), "2024-09".into(), "2024-10-05".into())]);
}

/// B10 (R-G2, R-G3): CleverReach sends the group's receiver webhooks to a segment link, but only the
/// segment's members belong to its newsletter. A new receiver of the group is no signup of the segment
/// newsletter; the segment listing of the next run queues it once it is in the segment.
#[test]
fn r_g3_a_new_group_receiver_outside_the_segment_is_not_queued_for_the_segment_newsletter() {
    let l = segment_link();
    let mut k = known(vec![l.clone()]);
    let signup =
        esp_event(&l, true, "anna@example.com", "2024-06-01", EspEventKind::Signup { signup: Signup::default() });
    let p = step(&mut k, signup, "2024-06-01");
    assert!(p.commands.is_empty() && p.esp.is_empty(), "{p:?}");
    assert!(!view(&k, &l).approvals.contains_key(&email("anna@example.com")));
    // In the segment (the listing says so): queued with a request for suggestions.
    let p = step(&mut k, membership(&l, "anna@example.com", "2024-06-02", true), "2024-06-02");
    assert!(matches!(&p.commands[..], [OptigemCommand::MatchPersons { .. }]), "{p:?}");
    assert_eq!(view(&k, &l).approvals[&email("anna@example.com")].status, ApprovalStatus::Pending);
}
