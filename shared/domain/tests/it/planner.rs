//! The planner against the rules of sections C, D, E, G and R-J3, with the documents' examples.

use crate::common;
use common::*;
use optisync_domain::*;
use pretty_assertions::assert_eq;

const TODAY: &str = "2024-06-03";

/// A change made to a snapshot in OPTIGEM.
type Change = Box<dyn Fn(&mut Assignment)>;

#[test]
fn r_d1_a_new_active_assignment_creates_the_recipient_and_lists_it() {
    for l in [cleverreach("nl"), brevo("nl")] {
        let mut k = known(vec![l.clone()]);
        let a = assignment("a1", "nl", "max@example.com");
        let p = step(&mut k, changed(&a), TODAY);
        let id = l.id.to_string();
        assert_eq!(ops(&p), vec![op(&id, "max@example.com", "upsert"), op(&id, "max@example.com", "add_to_list")]);
        let EspOp::Upsert { fields } = &p.esp[0].op else { panic!() };
        assert_eq!(fields.0[&AttributeName::new("LASTNAME")].expose(), "Muster");
        let r = recipient(&k, &l, "max@example.com");
        assert!(r.listed && r.active && r.linked);
    }
}

#[test]
fn r_e7_an_optigem_change_is_planned_at_once_without_waiting_for_the_scheduled_run() {
    let mut k = known(vec![cleverreach("nl")]);
    let p = step(&mut k, changed(&assignment("a1", "nl", "max@example.com")), TODAY);
    assert!(!p.esp.is_empty(), "the change itself yields the ESP operations");
}

#[test]
fn r_d2_an_inactive_assignment_deactivates_in_cleverreach_and_leaves_the_brevo_list_without_blacklisting() {
    let a = assignment("a1", "nl", "max@example.com");
    let ended = next(&a, TODAY, |b| b.end = Some(ym("2024-05")));
    for (l, expected) in [(cleverreach("nl"), "deactivate"), (brevo("nl"), "remove_from_list")] {
        let mut k = known(vec![l.clone()]);
        step(&mut k, changed(&a), TODAY);
        let p = step(&mut k, changed(&ended), TODAY);
        assert_eq!(ops(&p), vec![op(l.id.as_str(), "max@example.com", expected)]);
        assert!(p.commands.is_empty(), "an OPTIGEM end needs no command back");
        assert!(!p.esp.iter().any(|a| a.op == EspOp::Activate));
    }
}

#[test]
fn r_d2_each_reason_of_inactivity_deactivates_in_that_list_only() {
    let base = assignment("a1", "nl", "max@example.com");
    let mut l = cleverreach("nl");
    l.settings.relevant_privacy.insert(PrivacyCategory::new("email"));
    l.settings.relevant_blocks.insert(DeliveryBlockType::new("gesamt"));
    let other = cleverreach("other");
    let changes: Vec<(&str, Change)> = vec![
        ("end passed", Box::new(|b| b.end = Some(ym("2024-05")))),
        ("count 0", Box::new(|b| b.count = 0)),
        ("deletion mark", Box::new(|b| b.person.deletion_marked = true)),
        (
            "privacy block",
            Box::new(|b| {
                b.person.privacy.insert(PrivacyCategory::new("email"), PrivacyStatus::Blocked);
            }),
        ),
        (
            "delivery block",
            Box::new(|b| {
                b.person.delivery_blocks.push(DeliveryBlock {
                    kind: DeliveryBlockType::new("gesamt"),
                    valid_from: None,
                    valid_until: None,
                })
            }),
        ),
    ];
    for (what, change) in changes {
        let mut k = known(vec![l.clone(), other.clone()]);
        step(&mut k, changed(&base), TODAY);
        step(&mut k, changed(&assignment("x1", "other", "max@example.com")), TODAY);
        let p = step(&mut k, changed(&next(&base, TODAY, change)), TODAY);
        assert_eq!(ops(&p), vec![op("cr-nl", "max@example.com", "deactivate")], "{what}");
    }
    // A deletion does the same.
    let mut k = known(vec![l.clone()]);
    step(&mut k, changed(&base), TODAY);
    let p = step(
        &mut k,
        Input::AssignmentDeleted { id: base.id.clone(), newsletter: base.newsletter.clone(), version: 2 },
        TODAY,
    );
    assert_eq!(ops(&p), vec![op("cr-nl", "max@example.com", "deactivate")]);
    assert_eq!(view(&k, &l).mirror[&base.id].snapshot, None, "personal data of a deleted assignment is dropped");
}

#[test]
fn r_a6_no_statement_counts_as_a_block_only_when_the_tenant_says_so() {
    let mut l = cleverreach("nl");
    l.settings.relevant_privacy.insert(PrivacyCategory::new("email"));
    let a = assignment("a1", "nl", "max@example.com"); // no privacy status at all: "no statement"
    let mut lenient = known(vec![l.clone()]);
    assert_eq!(step(&mut lenient, changed(&a), TODAY).esp.len(), 2);
    let mut strict = known(vec![l]);
    strict.tenant.no_statement_blocks = true;
    assert!(step(&mut strict, changed(&a), TODAY).esp.is_empty(), "inactive from the start: nothing to create");
}

#[test]
fn r_d1_reactivation_activates_the_recipient_again() {
    let a = assignment("a1", "nl", "max@example.com");
    let ended = next(&a, "2024-06-03", |b| b.end = Some(ym("2024-05")));
    let revived = next(&ended, "2024-06-04", |b| b.end = None);
    let mut k = known(vec![cleverreach("nl")]);
    step(&mut k, changed(&a), TODAY);
    step(&mut k, changed(&ended), TODAY);
    let p = step(&mut k, changed(&revived), "2024-06-04");
    assert_eq!(ops(&p), vec![op("cr-nl", "max@example.com", "activate")]);
}

#[test]
fn r_d3_a_mapped_name_change_updates_the_recipient_and_an_unmapped_one_does_not() {
    let a = assignment("a1", "nl", "max@example.com");
    let mut k = known(vec![brevo("nl")]);
    step(&mut k, changed(&a), TODAY);
    let salutation = next(&a, TODAY, |b| b.person.letter_salutation = Some(PersonalText::new("Lieber Max")));
    assert!(step(&mut k, changed(&salutation), TODAY).esp.is_empty(), "salutation is not mapped");
    let renamed = next(&salutation, TODAY, |b| b.person.first_name = Some(PersonalText::new("Maximilian")));
    let p = step(&mut k, changed(&renamed), TODAY);
    assert_eq!(ops(&p), vec![op("br-nl", "max@example.com", "update_fields")]);
    let EspOp::UpdateFields { fields } = &p.esp[0].op else { panic!() };
    assert_eq!(fields.0[&AttributeName::new("FIRSTNAME")].expose(), "Maximilian");
}

#[test]
fn r_d4_an_email_change_deactivates_the_old_recipient_and_adds_the_new_one() {
    let a = assignment("a1", "nl", "old@example.com");
    let moved = next(&a, TODAY, |b| b.email = Some(email("new@example.com")));
    for (l, off) in [(cleverreach("nl"), "deactivate"), (brevo("nl"), "remove_from_list")] {
        let mut k = known(vec![l.clone()]);
        step(&mut k, changed(&a), TODAY);
        let p = step(&mut k, changed(&moved), TODAY);
        let id = l.id.as_str();
        assert_eq!(
            ops(&p),
            vec![
                op(id, "old@example.com", off),
                op(id, "new@example.com", "upsert"),
                op(id, "new@example.com", "add_to_list")
            ]
        );
    }
}

#[test]
fn r_d5_the_old_recipient_stays_while_a_duplicate_still_uses_the_old_email() {
    let a = assignment("a1", "nl", "shared@example.com");
    let b = assignment("a2", "nl", "shared@example.com");
    let mut k = known(vec![cleverreach("nl")]);
    step(&mut k, changed(&a), TODAY);
    step(&mut k, changed(&b), TODAY);
    let moved = next(&a, TODAY, |x| x.email = Some(email("new@example.com")));
    let p = step(&mut k, changed(&moved), TODAY);
    assert_eq!(ops(&p), vec![op("cr-nl", "new@example.com", "upsert"), op("cr-nl", "new@example.com", "add_to_list")]);
    assert!(p.commands.is_empty(), "the unchanged duplicate is not ended");
    assert!(recipient(&k, &cleverreach("nl"), "shared@example.com").active);
}

#[test]
fn r_c4_duplicates_share_one_recipient_whose_fields_come_from_the_oldest() {
    let mut young = assignment("a1", "nl", "shared@example.com");
    young.created_at = noon("2024-03-01");
    young.person.first_name = Some(PersonalText::new("Erika"));
    let old = assignment("a2", "nl", "Shared@Example.com");
    let mut k = known(vec![cleverreach("nl")]);
    let p1 = step(&mut k, changed(&young), TODAY);
    assert_eq!(p1.esp.len(), 2);
    let p2 = step(&mut k, changed(&old), TODAY);
    assert_eq!(ops(&p2), vec![op("cr-nl", "shared@example.com", "update_fields")], "no second recipient");
    let EspOp::UpdateFields { fields } = &p2.esp[0].op else { panic!() };
    assert_eq!(fields.0[&AttributeName::new("FIRSTNAME")].expose(), "Max", "the older assignment is the source");
    assert_eq!(view(&k, &cleverreach("nl")).recipients.len(), 1);
}

#[test]
fn r_c4_ending_one_duplicate_in_optigem_ends_all_of_that_newsletter_with_that_email() {
    let a = assignment("a1", "nl", "shared@example.com");
    let b = assignment("a2", "nl", "shared@example.com");
    let other_nl = assignment("a3", "other", "shared@example.com");
    let mut k = known(vec![cleverreach("nl"), cleverreach("other")]);
    for x in [&a, &b, &other_nl] {
        step(&mut k, changed(x), TODAY);
    }
    let p = step(&mut k, changed(&next(&a, TODAY, |x| x.end = Some(ym("2024-05")))), TODAY);
    assert_eq!(ops(&p), vec![op("cr-nl", "shared@example.com", "deactivate")]);
    assert_eq!(ends(&p), vec![("a2".into(), "2024-05".into(), TODAY.into())]);
    let OptigemCommand::EndAssignment { unsubscription, .. } = &p.commands[0] else { panic!() };
    assert_eq!(unsubscription.source.cause, UnsubscribeCause::DuplicateEnded);
    // The other newsletter is untouched.
    assert!(recipient(&k, &cleverreach("other"), "shared@example.com").active);
    // A stale snapshot of a2 that OPTIGEM sent before it ran the command does not revive it.
    let stale = next(&b, TODAY, |x| x.person.last_name = Some(PersonalText::new("Muster-Meier")));
    let p = step(&mut k, changed(&stale), TODAY);
    assert!(p.esp.is_empty(), "{p:?}");
}

#[test]
fn r_c4_an_unsubscribe_ends_all_duplicates() {
    let a = assignment("a1", "nl", "shared@example.com");
    let b = assignment("a2", "nl", "shared@example.com");
    let l = cleverreach("nl");
    let mut k = known(vec![l.clone()]);
    step(&mut k, changed(&a), TODAY);
    step(&mut k, changed(&b), TODAY);
    let p =
        step(&mut k, esp_event(&l, true, "shared@example.com", "2024-09-25", EspEventKind::Unsubscribed), "2024-09-25");
    assert_eq!(
        ends(&p),
        vec![
            ("a1".into(), "2024-08".into(), "2024-09-25".into()),
            ("a2".into(), "2024-08".into(), "2024-09-25".into())
        ]
    );
}

#[test]
fn r_e1_an_unsubscribe_on_2024_09_25_ends_with_august_2024_and_records_date_and_source() {
    let l = cleverreach("nl");
    let mut k = known(vec![l.clone()]);
    step(&mut k, changed(&assignment("a1", "nl", "max@example.com")), "2024-09-01");
    let p =
        step(&mut k, esp_event(&l, true, "max@example.com", "2024-09-25", EspEventKind::Unsubscribed), "2024-09-25");
    assert!(p.esp.is_empty(), "CleverReach already deactivated it");
    let [OptigemCommand::EndAssignment { assignment, end, unsubscription, .. }] = p.commands.as_slice() else {
        panic!("{p:?}")
    };
    assert_eq!(assignment.as_str(), "a1");
    assert_eq!(*end, ym("2024-08"));
    assert_eq!(unsubscription.date, day("2024-09-25"));
    assert_eq!(unsubscription.source.provider, Provider::CleverReach);
    assert_eq!(unsubscription.source.account.as_str(), "cr-acc");
    assert_eq!(unsubscription.source.cause, UnsubscribeCause::Unsubscribed);
    let r = recipient(&k, &l, "max@example.com");
    assert!(!r.active);
    assert!(r.tombstone.is_some());
}

#[test]
fn r_e1_an_earlier_end_is_kept_and_manual_deactivation_and_deletion_end_too() {
    let l = cleverreach("nl");
    for what in [EspEventKind::Deactivated, EspEventKind::Deleted] {
        let mut k = known(vec![l.clone()]);
        let mut a = assignment("a1", "nl", "max@example.com");
        a.end = Some(ym("2024-12"));
        step(&mut k, changed(&a), "2024-09-01");
        let p = step(&mut k, esp_event(&l, true, "max@example.com", "2024-09-25", what.clone()), "2024-09-25");
        assert_eq!(ends(&p), vec![("a1".into(), "2024-08".into(), "2024-09-25".into())], "{what:?}");
    }
    let mut k = known(vec![l.clone()]);
    let mut a = assignment("a1", "nl", "max@example.com");
    a.count = 0; // inactive, no end yet: gets one
    let mut earlier = assignment("a2", "nl", "max@example.com");
    earlier.end = Some(ym("2024-03")); // already ended earlier: the end is kept
    step(&mut k, changed(&a), "2024-09-01");
    step(&mut k, changed(&earlier), "2024-09-01");
    let p = step(&mut k, esp_event(&l, true, "max@example.com", "2024-09-25", EspEventKind::Deactivated), "2024-09-25");
    // R-E1 (finding B14): the already-ended one keeps "2024-03" but gets the unsubscription record too.
    assert_eq!(
        ends(&p),
        vec![
            ("a1".into(), "2024-08".into(), "2024-09-25".into()),
            ("a2".into(), "2024-03".into(), "2024-09-25".into())
        ]
    );
}

#[test]
fn r_e2_a_brevo_blacklisting_ends_assignments_of_every_newsletter_of_the_account_and_leaves_every_list() {
    let (l1, l2, elsewhere) = (brevo("nl1"), brevo("nl2"), link("br-x", "nl3", Provider::Brevo, "other-acc", "list-x"));
    let mut k = known(vec![l1.clone(), l2.clone(), elsewhere.clone()]);
    step(&mut k, changed(&assignment("a1", "nl1", "max@example.com")), "2024-09-01");
    step(&mut k, changed(&assignment("a2", "nl2", "max@example.com")), "2024-09-01");
    step(&mut k, changed(&assignment("a3", "nl3", "max@example.com")), "2024-09-01");
    let p =
        step(&mut k, esp_event(&l1, false, "max@example.com", "2024-09-25", EspEventKind::Blacklisted), "2024-09-25");
    assert_eq!(
        ops(&p),
        vec![op("br-nl1", "max@example.com", "remove_from_list"), op("br-nl2", "max@example.com", "remove_from_list")]
    );
    assert_eq!(
        ends(&p),
        vec![
            ("a1".into(), "2024-08".into(), "2024-09-25".into()),
            ("a2".into(), "2024-08".into(), "2024-09-25".into())
        ]
    );
    assert!(recipient(&k, &elsewhere, "max@example.com").active, "another account is not touched");
}

#[test]
fn r_e9_a_cleverreach_blacklisting_ends_every_newsletter_of_the_account_and_deactivates_in_every_group() {
    // Max Muster gets the "Rundbrief" and the "Gebetsbrief" from one CleverReach account, and a third
    // newsletter from another account; he lands on the first account's blacklist on 15 May 2024.
    let (rundbrief, gebetsbrief) = (cleverreach("rundbrief"), cleverreach("gebetsbrief"));
    let elsewhere = link("cr-x", "jahresbrief", Provider::CleverReach, "other-acc", "group-x");
    let mut k = known(vec![rundbrief.clone(), gebetsbrief.clone(), elsewhere.clone()]);
    step(&mut k, changed(&assignment("a1", "rundbrief", "max.muster@example.com")), "2024-04-02");
    step(&mut k, changed(&assignment("a2", "gebetsbrief", "max.muster@example.com")), "2024-04-02");
    step(&mut k, changed(&assignment("a3", "jahresbrief", "max.muster@example.com")), "2024-04-02");
    let blacklisted = esp_event(&rundbrief, false, "max.muster@example.com", "2024-05-15", EspEventKind::Blacklisted);
    let p = step(&mut k, blacklisted.clone(), "2024-05-16");
    assert_eq!(
        ends(&p),
        vec![
            ("a1".into(), "2024-04".into(), "2024-05-15".into()),
            ("a2".into(), "2024-04".into(), "2024-05-15".into())
        ],
        "R-E9: ended \"Ende April 2024\" with the blacklist's date, for every newsletter of the account"
    );
    assert_eq!(
        ops(&p),
        vec![
            op("cr-rundbrief", "max.muster@example.com", "deactivate"),
            op("cr-gebetsbrief", "max.muster@example.com", "deactivate")
        ],
        "like R-E2: out of every group, so that a removal from the blacklist revives no old group"
    );
    for l in [&rundbrief, &gebetsbrief] {
        let source = &view(&k, l).recipients[&email("max.muster@example.com")].tombstone.as_ref().unwrap().source;
        // R-J4 (B18): the blacklist does not tell who put the address there, so it is no revocation by the
        // recipient (erasure mode does not act on it).
        assert_eq!((source.provider, source.cause), (Provider::CleverReach, UnsubscribeCause::Blacklisted));
    }
    assert!(recipient(&k, &elsewhere, "max.muster@example.com").active, "another account is not touched");
    // The same blacklisting again, and the listing reporting the deactivation optisync made: nothing.
    assert_eq!(step(&mut k, blacklisted, "2024-05-17"), Plan::default());
    let echo = esp_event(&gebetsbrief, true, "max.muster@example.com", "2024-05-16", EspEventKind::Deactivated);
    assert_eq!(step(&mut k, echo, "2024-05-17"), Plan::default());
}

#[test]
fn r_e2_ending_in_optigem_removes_the_brevo_contact_from_that_one_list_only() {
    let (l1, l2) = (brevo("nl1"), brevo("nl2"));
    let mut k = known(vec![l1.clone(), l2.clone()]);
    let a1 = assignment("a1", "nl1", "max@example.com");
    step(&mut k, changed(&a1), TODAY);
    step(&mut k, changed(&assignment("a2", "nl2", "max@example.com")), TODAY);
    let p = step(&mut k, changed(&next(&a1, TODAY, |a| a.end = Some(ym("2024-05")))), TODAY);
    assert_eq!(ops(&p), vec![op("br-nl1", "max@example.com", "remove_from_list")]);
    assert!(p.commands.is_empty());
}

#[test]
fn r_e3_r_c2_r_c3_a_signup_waits_in_the_approval_queue_once_with_its_evidence() {
    let l = brevo("nl");
    let mut k = known(vec![l.clone()]);
    let signup = Signup {
        first_name: Some(PersonalText::new("Max")),
        last_name: Some(PersonalText::new("Muster")),
        evidence: ConsentEvidence {
            signup_at: Some(noon("2024-06-01")),
            confirmed_at: Some(noon("2024-06-02")),
            source: Some("form:website".into()),
            ip: Some(PersonalText::new("192.0.2.1")),
            ..Default::default()
        },
    };
    let p = step(
        &mut k,
        esp_event(&l, true, "max.muster@example.com", "2024-06-02", EspEventKind::Signup { signup: signup.clone() }),
        TODAY,
    );
    assert!(p.esp.is_empty(), "R-C2: never turned into an assignment automatically");
    assert!(matches!(&p.commands[..], [OptigemCommand::MatchPersons { .. }]), "R-C3: suggestions are asked for");
    let entry = &view(&k, &l).approvals[&email("max.muster@example.com")];
    assert_eq!(entry.status, ApprovalStatus::Pending);
    assert_eq!(entry.signup, signup, "R-J1: evidence kept");
    // A second signup for the same pending e-mail updates the entry.
    let p2 = step(
        &mut k,
        esp_event(&l, true, "max.muster@example.com", "2024-06-05", EspEventKind::Signup { signup }),
        TODAY,
    );
    assert!(p2.commands.is_empty());
    let entry = &view(&k, &l).approvals[&email("max.muster@example.com")];
    assert_eq!((entry.signups, entry.last_seen), (2, noon("2024-06-05")));
    assert_eq!(view(&k, &l).approvals.len(), 1);
}

#[test]
fn r_e3_a_list_addition_for_an_already_linked_email_is_no_signup() {
    let l = brevo("nl");
    let mut k = known(vec![l.clone()]);
    step(&mut k, changed(&assignment("a1", "nl", "max@example.com")), TODAY);
    let p = step(
        &mut k,
        esp_event(&l, true, "max@example.com", TODAY, EspEventKind::Signup { signup: Signup::default() }),
        TODAY,
    );
    assert!(p.is_empty(), "the echo of our own list addition: {p:?}");
}

#[test]
fn r_c5_names_stay_as_they_are_until_optigem_changes_them() {
    let l = cleverreach("nl");
    let mut k = known(vec![l.clone()]);
    let signup = Signup {
        first_name: Some(PersonalText::new("Max")),
        last_name: Some(PersonalText::new("Muster")),
        ..Default::default()
    };
    step(&mut k, esp_event(&l, true, "max.muster@example.com", "2024-06-01", EspEventKind::Signup { signup }), TODAY);
    // The approver links the signup to "Max und Erika Muster"; OPTIGEM creates the assignment.
    let mut a = assignment("a1", "nl", "max.muster@example.com");
    a.created_at = noon(TODAY);
    a.person.first_name = Some(PersonalText::new("Max und Erika"));
    let p = step(&mut k, changed(&a), TODAY);
    assert!(p.esp.is_empty(), "no field is overwritten at approval: {p:?}");
    assert_eq!(view(&k, &l).approvals[&email("max.muster@example.com")].status, ApprovalStatus::Resolved);
    let renamed = next(&a, TODAY, |b| b.person.first_name = Some(PersonalText::new("Max u. Erika")));
    let p = step(&mut k, changed(&renamed), TODAY);
    assert_eq!(ops(&p), vec![op("cr-nl", "max.muster@example.com", "update_fields")]);
}

#[test]
fn r_e4_an_email_change_inside_the_esp_is_a_deletion_plus_a_new_signup() {
    let l = cleverreach("nl");
    let mut k = known(vec![l.clone()]);
    step(&mut k, changed(&assignment("a1", "nl", "old@example.com")), "2024-09-01");
    let what = EspEventKind::EmailChanged { new_email: email("new@example.com"), signup: Signup::default() };
    let p = step(&mut k, esp_event(&l, true, "old@example.com", "2024-09-25", what), "2024-09-25");
    assert_eq!(ends(&p), vec![("a1".into(), "2024-08".into(), "2024-09-25".into())]);
    let OptigemCommand::EndAssignment { unsubscription, .. } = &p.commands[0] else { panic!() };
    assert_eq!(unsubscription.source.cause, UnsubscribeCause::Deleted);
    assert!(
        p.commands
            .iter()
            .any(|c| matches!(c, OptigemCommand::MatchPersons { email: e, .. } if e.key() == "new@example.com"))
    );
    assert_eq!(view(&k, &l).approvals[&email("new@example.com")].status, ApprovalStatus::Pending);
}

#[test]
fn r_e5_field_changes_inside_the_esp_are_ignored_and_r_e6_bounces_too() {
    let l = cleverreach("nl");
    let mut k = known(vec![l.clone()]);
    step(&mut k, changed(&assignment("a1", "nl", "max@example.com")), TODAY);
    for what in [EspEventKind::FieldsChanged, EspEventKind::Bounced] {
        assert!(step(&mut k, esp_event(&l, true, "max@example.com", TODAY, what), TODAY).is_empty());
    }
}

#[test]
fn r_e6_a_hard_bounce_deactivation_arrives_as_an_ordinary_deactivation() {
    let l = cleverreach("nl");
    let mut k = known(vec![l.clone()]);
    step(&mut k, changed(&assignment("a1", "nl", "max@example.com")), "2024-09-01");
    let p = step(&mut k, esp_event(&l, true, "max@example.com", "2024-09-25", EspEventKind::Deactivated), "2024-09-25");
    assert_eq!(ends(&p).len(), 1);
}

#[test]
fn r_j3_a_stale_optigem_change_after_an_unsubscribe_does_not_resubscribe_but_a_new_assignment_does() {
    for l in [cleverreach("nl"), brevo("nl")] {
        let mut k = known(vec![l.clone()]);
        let a = assignment("a1", "nl", "max@example.com");
        step(&mut k, changed(&a), "2024-09-01");
        let what =
            if l.esp.provider == Provider::Brevo { EspEventKind::Blacklisted } else { EspEventKind::Unsubscribed };
        step(
            &mut k,
            esp_event(&l, l.esp.provider == Provider::CleverReach, "max@example.com", "2024-09-25", what),
            "2024-09-25",
        );
        // OPTIGEM has not yet run the end command and sends a name change: still active there.
        let stale = next(&a, "2024-09-26", |b| b.person.last_name = Some(PersonalText::new("Muster-Meier")));
        let p = step(&mut k, changed(&stale), "2024-09-26");
        assert!(!p.esp.iter().any(|x| matches!(x.op, EspOp::Activate | EspOp::AddToList)), "{p:?}");
        // A snapshot of an assignment created before the unsubscribe, first seen now, is ended too.
        let mut old_dup = assignment("a0", "nl", "max@example.com");
        old_dup.created_at = noon("2023-01-01");
        let p = step(&mut k, changed(&old_dup), "2024-09-26");
        assert!(!p.esp.iter().any(|x| matches!(x.op, EspOp::Activate | EspOp::AddToList)));
        assert_eq!(ends(&p), vec![("a0".into(), "2024-08".into(), "2024-09-25".into())]);
        // A new assignment created after the unsubscribe is a deliberate new subscription.
        let mut fresh = assignment("a2", "nl", "max@example.com");
        fresh.created_at = noon("2024-10-01");
        fresh.changed_at = noon("2024-10-01");
        let p = step(&mut k, changed(&fresh), "2024-10-01");
        let names: Vec<_> = ops(&p).into_iter().map(|o| o.2).collect();
        assert!(names.contains(&"activate".to_owned()), "{l:?}: {names:?}");
        assert!(recipient(&k, &l, "max@example.com").tombstone.is_none());
    }
}

#[test]
fn r_j3_a_reactivation_in_optigem_after_the_unsubscribe_resubscribes() {
    let l = cleverreach("nl");
    let mut k = known(vec![l.clone()]);
    let a = assignment("a1", "nl", "max@example.com");
    step(&mut k, changed(&a), "2024-09-01");
    step(&mut k, esp_event(&l, true, "max@example.com", "2024-09-25", EspEventKind::Unsubscribed), "2024-09-25");
    // OPTIGEM runs the end command...
    let ended = next(&a, "2024-09-26", |b| b.end = Some(ym("2024-08")));
    assert!(step(&mut k, changed(&ended), "2024-09-26").esp.is_empty());
    // ...and later someone deliberately clears the end.
    let revived = next(&ended, "2024-10-02", |b| b.end = None);
    let p = step(&mut k, changed(&revived), "2024-10-02");
    assert_eq!(ops(&p), vec![op("cr-nl", "max@example.com", "activate")]);
    // A late duplicate delivery of the old unsubscribe webhook is stale now.
    let p =
        step(&mut k, esp_event(&l, true, "max@example.com", "2024-09-25", EspEventKind::Unsubscribed), "2024-10-03");
    assert!(p.is_empty(), "{p:?}");
}

#[test]
fn r_a9_month_end_expiry_without_any_change_event() {
    let l = brevo("nl");
    let mut k = known(vec![l.clone()]);
    let mut a = assignment("a1", "nl", "max@example.com");
    a.end = Some(ym("2024-04"));
    step(&mut k, changed(&a), "2024-04-15");
    assert_eq!(view(&k, &l).mirror[&a.id].next_transition, Some(day("2024-05-01")));
    assert!(step(&mut k, Input::Today { date: day("2024-04-30") }, "2024-04-30").is_empty());
    let p = step(&mut k, Input::Today { date: day("2024-05-01") }, "2024-05-01");
    assert_eq!(ops(&p), vec![op("br-nl", "max@example.com", "remove_from_list")]);
    assert!(step(&mut k, Input::Today { date: day("2024-05-01") }, "2024-05-01").is_empty());
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

#[test]
fn r_g2_r_g3_segment_membership_flows_to_optigem_only_and_unknown_members_wait_for_approval() {
    let l = segment_link();
    let mut k = known(vec![l.clone()]);
    let p = step(&mut k, membership(&l, "new@example.com", TODAY, true), TODAY);
    assert!(p.esp.is_empty());
    assert!(matches!(&p.commands[..], [OptigemCommand::MatchPersons { .. }]));
    // An OPTIGEM assignment on a segment link never pushes to CleverReach.
    let p = step(&mut k, changed(&assignment("a1", "seg", "other@example.com")), TODAY);
    assert!(p.esp.is_empty(), "{p:?}");
}

#[test]
fn r_g4_the_segment_state_overwrites_manual_changes_in_optigem() {
    let l = segment_link();
    let mut k = known(vec![l.clone()]);
    let a = assignment("a1", "seg", "max@example.com");
    step(&mut k, membership(&l, "max@example.com", "2024-06-01", true), "2024-06-01");
    step(&mut k, changed(&a), TODAY);
    // The member left the segment: the assignment is ended.
    let p = step(&mut k, membership(&l, "max@example.com", "2024-09-25", false), "2024-09-25");
    assert_eq!(ends(&p), vec![("a1".into(), "2024-08".into(), "2024-09-25".into())]);
    let OptigemCommand::EndAssignment { unsubscription, .. } = &p.commands[0] else { panic!() };
    assert_eq!(unsubscription.source.cause, UnsubscribeCause::LeftSegment);
    // OPTIGEM shows it ended; the member is back in the segment: the assignment is made active again.
    let ended = next(&a, "2024-09-26", |b| b.end = Some(ym("2024-08")));
    step(&mut k, changed(&ended), "2024-09-26");
    let p = step(&mut k, membership(&l, "max@example.com", "2024-10-01", true), "2024-10-01");
    assert!(
        matches!(&p.commands[..], [OptigemCommand::CreateAssignment { person: PersonChoice::Existing { .. }, .. }]),
        "{p:?}"
    );
    assert!(step(&mut k, membership(&l, "max@example.com", "2024-10-01", true), "2024-10-01").is_empty(), "asked once");
}

#[test]
fn r_g5_ending_a_segment_assignment_in_optigem_deactivates_the_receiver_in_the_whole_group() {
    let l = segment_link();
    let mut k = known(vec![l.clone()]);
    let a = assignment("a1", "seg", "max@example.com");
    step(&mut k, membership(&l, "max@example.com", "2024-06-01", true), "2024-06-01");
    step(&mut k, changed(&a), TODAY);
    let p = step(&mut k, changed(&next(&a, TODAY, |b| b.end = Some(ym("2024-05")))), TODAY);
    assert_eq!(p.esp.len(), 1);
    assert_eq!((p.esp[0].list.as_str(), &p.esp[0].op), ("group-seg", &EspOp::Deactivate));
}

#[test]
fn r_c1_recipients_and_assignments_are_matched_by_email() {
    let l = cleverreach("nl");
    let mut k = known(vec![l.clone()]);
    step(&mut k, changed(&assignment("a1", "nl", "Max@Example.com")), TODAY);
    let p =
        step(&mut k, esp_event(&l, true, "max@example.COM", "2024-09-25", EspEventKind::Unsubscribed), "2024-09-25");
    assert_eq!(ends(&p).len(), 1, "matched ignoring case");
}

#[test]
fn versions_older_than_the_stored_one_change_nothing() {
    let mut k = known(vec![cleverreach("nl")]);
    let a = assignment("a1", "nl", "max@example.com");
    let v2 = next(&a, TODAY, |b| b.end = Some(ym("2024-05")));
    step(&mut k, changed(&v2), TODAY);
    assert!(step(&mut k, changed(&a), TODAY).is_empty());
    assert!(step(&mut k, changed(&v2), TODAY).is_empty());
}

#[test]
fn r_b3_an_assignment_the_sync_creates_stores_the_email_where_the_tenant_setting_says() {
    for target in [EmailTarget::Assignment, EmailTarget::StandardCommunication] {
        let l = segment_link();
        let mut k = known(vec![l.clone()]);
        k.tenant.approved_email_target = target;
        let a = assignment("a1", "seg", "max@example.com");
        step(&mut k, membership(&l, "max@example.com", "2024-06-01", true), "2024-06-01");
        step(&mut k, changed(&a), TODAY);
        step(&mut k, membership(&l, "max@example.com", "2024-09-25", false), "2024-09-25");
        step(&mut k, changed(&next(&a, "2024-09-26", |b| b.end = Some(ym("2024-08")))), "2024-09-26");
        let p = step(&mut k, membership(&l, "max@example.com", "2024-10-01", true), "2024-10-01");
        let [OptigemCommand::CreateAssignment { email_target, email, .. }] = p.commands.as_slice() else {
            panic!("{p:?}")
        };
        assert_eq!((*email_target, email.key()), (target, "max@example.com"));
    }
}
