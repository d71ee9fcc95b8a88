//! Erasure mode (R-J2) and who may trigger it (R-J4): what the planner does once OPTIGEM confirms the end
//! that the recipient's own unsubscribe asked for. Seed 004: Max Muster unsubscribes from the
//! "Rundbrief" on 15 May 2024; OPTIGEM ends the assignment "Ende April 2024".

use crate::common::*;
use optisync_domain::*;

const MAX: &str = "max.muster@example.com";

fn erasing(mut link: Link) -> Link {
    link.settings.unsubscribe_mode = UnsubscribeMode::Erasure;
    link
}

fn tenant(known: &mut Known) {
    known.tenant.deletion_report_email = Some(email("datenschutz@gemeinde.example"));
}

/// The result of every `end_assignment` of a plan, as the connector reports it done.
fn confirmations(plan: &Plan) -> Vec<Input> {
    plan.commands
        .iter()
        .filter_map(|c| match c {
            OptigemCommand::EndAssignment { id, assignment, newsletter, unsubscription, .. } => {
                Some(Input::EndConfirmed {
                    command: id.clone(),
                    assignment: assignment.clone(),
                    newsletter: newsletter.clone(),
                    unsubscription: unsubscription.clone(),
                })
            }
            _ => None,
        })
        .collect()
}

fn reports(plan: &Plan) -> Vec<&OptigemCommand> {
    plan.commands.iter().filter(|c| c.kind() == "erasure_report").collect()
}

#[test]
fn r_j2_a_cleverreach_unsubscribe_on_an_erasure_link_erases_once_optigem_confirmed_the_end() {
    let rundbrief = erasing(cleverreach("rundbrief"));
    let mut k = known(vec![rundbrief.clone()]);
    tenant(&mut k);
    step(&mut k, changed(&assignment("a1", "rundbrief", MAX)), "2024-04-02");
    let unsubscribed =
        step(&mut k, esp_event(&rundbrief, true, MAX, "2024-05-15", EspEventKind::Unsubscribed), "2024-05-15");
    assert_eq!(ends(&unsubscribed), vec![("a1".into(), "2024-04".into(), "2024-05-15".into())], "Ende April 2024");
    assert!(unsubscribed.erasures.is_empty() && reports(&unsubscribed).is_empty(), "nothing before OPTIGEM confirmed");

    let confirmed = confirmations(&unsubscribed).remove(0);
    let p = step(&mut k, confirmed.clone(), "2024-05-15");
    assert_eq!(ops(&p), vec![op("cr-rundbrief", MAX, "delete")], "the receiver is deleted from the group");
    assert_eq!(p.erasures.len(), 1);
    assert_eq!(p.erasures[0].tombstone.at, noon("2024-05-15"), "the hash keeps the unsubscribe's time (R-J3)");
    let [OptigemCommand::ErasureReport { email: erased, deleted, notify, link, .. }] = reports(&p)[..] else {
        panic!("one deletion report: {:?}", p.commands)
    };
    assert_eq!((erased.key(), link.as_str()), (MAX, "cr-rundbrief"));
    assert_eq!(notify.as_ref().map(Email::key), Some("datenschutz@gemeinde.example"));
    let deleted: Vec<_> = deleted.iter().map(|d| format!("{}:{}", d.system, d.item)).collect();
    assert_eq!(deleted, ["cleverreach:receiver", "optisync:recipient_state", "optisync:assignment_mirror"]);
    let view = view(&k, &rundbrief);
    assert!(!view.recipients.contains_key(&email(MAX)), "no recipient state left");
    let entry = &view.mirror[&AssignmentId::new("a1")];
    assert!(entry.snapshot.is_none() && entry.email.is_none(), "the mirror keeps id and version only");
    assert!(
        optisync_domain::plan(&k, &confirmed, noon("2024-05-16")).is_empty(),
        "a repeated result erases nothing more"
    );
}

#[test]
fn r_j2_a_brevo_contact_is_deleted_account_wide_when_no_other_link_holds_it() {
    let rundbrief = erasing(brevo("rundbrief"));
    let mut k = known(vec![rundbrief.clone()]);
    step(&mut k, changed(&assignment("a1", "rundbrief", MAX)), "2024-04-02");
    let p = step(&mut k, esp_event(&rundbrief, false, MAX, "2024-05-15", EspEventKind::Unsubscribed), "2024-05-15");
    let p = step(&mut k, confirmations(&p).remove(0), "2024-05-15");
    assert_eq!(ops(&p), vec![op("br-rundbrief", MAX, "delete")]);
    let [OptigemCommand::ErasureReport { deleted, .. }] = reports(&p)[..] else { panic!("{:?}", p.commands) };
    assert!(deleted.iter().any(|d| d.system == "brevo" && d.item == "contact"));
}

#[test]
fn r_j2_a_brevo_contact_another_classic_link_of_the_account_holds_is_kept_and_the_report_says_why() {
    let rundbrief = erasing(brevo("rundbrief"));
    let gebetsbrief = brevo("gebetsbrief"); // classic
    let mut k = known(vec![rundbrief.clone(), gebetsbrief.clone()]);
    step(&mut k, changed(&assignment("a1", "rundbrief", MAX)), "2024-04-02");
    step(&mut k, changed(&assignment("a2", "gebetsbrief", MAX)), "2024-04-02");
    let p = step(&mut k, esp_event(&rundbrief, false, MAX, "2024-05-15", EspEventKind::Unsubscribed), "2024-05-15");
    assert_eq!(ends(&p).len(), 2, "Brevo's unsubscribe is account-wide (R-E2)");
    let mut erased = Plan::default();
    for confirmed in confirmations(&p) {
        let plan = step(&mut k, confirmed, "2024-05-15");
        erased.esp.extend(plan.esp);
        erased.commands.extend(plan.commands);
    }
    assert!(ops(&erased).iter().all(|(_, _, op)| op != "delete"), "the contact stays: {:?}", ops(&erased));
    let [OptigemCommand::ErasureReport { kept, link, .. }] = reports(&erased)[..] else {
        panic!("one report, for the erasure link only: {:?}", erased.commands)
    };
    assert_eq!(link.as_str(), "br-rundbrief");
    let contact = kept.iter().find(|k| k.system == "brevo" && k.item == "contact").expect("the contact is kept");
    assert!(contact.reason.contains("br-gebetsbrief") && contact.reason.contains("classic"), "{}", contact.reason);
    assert!(view(&k, &gebetsbrief).recipients.contains_key(&email(MAX)), "the classic link keeps its recipient");
    assert!(!view(&k, &rundbrief).recipients.contains_key(&email(MAX)));
}

#[test]
fn r_j4_an_admin_deactivation_erases_nothing() {
    let rundbrief = erasing(cleverreach("rundbrief"));
    let mut k = known(vec![rundbrief.clone()]);
    step(&mut k, changed(&assignment("a1", "rundbrief", MAX)), "2024-04-02");
    let p = step(&mut k, esp_event(&rundbrief, true, MAX, "2024-05-15", EspEventKind::Deactivated), "2024-05-15");
    assert_eq!(ends(&p).len(), 1, "the deactivation still ends the assignment (R-E1)");
    let p = step(&mut k, confirmations(&p).remove(0), "2024-05-15");
    assert!(p.is_empty(), "{p:?}");
    assert!(view(&k, &rundbrief).recipients.contains_key(&email(MAX)));
}

#[test]
fn r_j4_b18_a_blacklisting_whose_author_the_esp_does_not_tell_erases_nothing() {
    let rundbrief = erasing(brevo("rundbrief"));
    let mut k = known(vec![rundbrief.clone()]);
    step(&mut k, changed(&assignment("a1", "rundbrief", MAX)), "2024-04-02");
    // The Brevo listing shows the contact blacklisted: by the recipient, an admin or an import?
    let p = step(&mut k, esp_event(&rundbrief, false, MAX, "2024-05-15", EspEventKind::Blacklisted), "2024-05-15");
    let [OptigemCommand::EndAssignment { unsubscription, .. }] = &p.commands[..] else { panic!("{:?}", p.commands) };
    assert_eq!(unsubscription.source.cause, UnsubscribeCause::Blacklisted);
    assert!(!unsubscription.source.cause.by_recipient());
    let p = step(&mut k, confirmations(&p).remove(0), "2024-05-15");
    assert!(p.is_empty(), "{p:?}");
}

#[test]
fn r_j2_r_j3_the_keyed_hash_keeps_an_erased_address_unsubscribed_and_a_new_assignment_subscribes_it_again() {
    let rundbrief = erasing(cleverreach("rundbrief"));
    let mut k = known(vec![rundbrief.clone()]);
    step(&mut k, changed(&assignment("a1", "rundbrief", MAX)), "2024-04-02");
    let p = step(&mut k, esp_event(&rundbrief, true, MAX, "2024-05-15", EspEventKind::Unsubscribed), "2024-05-15");
    let p = step(&mut k, confirmations(&p).remove(0), "2024-05-15");
    // The store keeps only the hash; the engine hands its tombstone to the planner.
    k.links[0].erased.insert(email(MAX), p.erasures[0].tombstone.clone());

    // A stale OPTIGEM snapshot: another assignment of Max created before the unsubscribe.
    let mut stale = assignment("a7", "rundbrief", MAX);
    stale.created_at = noon("2024-03-01");
    stale.changed_at = noon("2024-03-01");
    let p = step(&mut k, changed(&stale), "2024-05-20");
    assert!(ops(&p).is_empty(), "not created again in CleverReach: {:?}", ops(&p));
    assert_eq!(ends(&p), vec![("a7".into(), "2024-04".into(), "2024-05-15".into())], "ended like the unsubscribe");
    assert!(!p.writes.iter().any(|w| matches!(w, StateWrite::Recipient { .. })), "no address stored again");

    // A deliberate new subscription after the erasure subscribes again (R-J3).
    let mut new = assignment("a8", "rundbrief", MAX);
    new.created_at = noon("2024-06-03");
    new.changed_at = noon("2024-06-03");
    let p = step(&mut k, changed(&new), "2024-06-03");
    assert_eq!(ops(&p), vec![op("cr-rundbrief", MAX, "upsert"), op("cr-rundbrief", MAX, "add_to_list")]);
}

/// R-J7: on request, a classic link erases too, and the erasure is dated the request: Max unsubscribed on
/// 15 May 2024 and asks for erasure on 10 June; an OPTIGEM snapshot of an assignment created on 5 June
/// (after the unsubscribe, before the request) subscribes nobody afterwards.
#[test]
fn r_j7_an_erasure_on_request_is_planned_on_a_classic_link_and_dated_the_request() {
    let rundbrief = cleverreach("rundbrief");
    let mut k = known(vec![rundbrief.clone()]);
    step(&mut k, changed(&assignment("a1", "rundbrief", MAX)), "2024-04-02");
    step(&mut k, esp_event(&rundbrief, true, MAX, "2024-05-15", EspEventKind::Unsubscribed), "2024-05-15");
    let request = Input::EraseOnRequest { email: email(MAX), request: CommandId::new("req-1") };
    let p = step(&mut k, request.clone(), "2024-06-10");
    assert_eq!(ops(&p), vec![op("cr-rundbrief", MAX, "delete")], "classic mode erases on request");
    let [OptigemCommand::ErasureReport { ended, .. }] = &reports(&p)[..] else { panic!("{:?}", p.commands) };
    assert_eq!(ended.as_str(), "req-1");
    let [erasure] = &p.erasures[..] else { panic!("{:?}", p.erasures) };
    assert_eq!(berlin_date(erasure.tombstone.at).to_string(), "2024-06-10", "dated the request");
    k.links[0].erased.insert(email(MAX), erasure.tombstone.clone());
    assert!(step(&mut k, request, "2024-06-10").is_empty(), "planned again: nothing left");

    let mut stale = assignment("a7", "rundbrief", MAX);
    stale.created_at = noon("2024-06-05");
    stale.changed_at = noon("2024-06-05");
    let p = step(&mut k, changed(&stale), "2024-06-12");
    assert!(ops(&p).is_empty(), "not created again in CleverReach: {:?}", ops(&p));
}

/// R-J2, R-J3: after the erasure OPTIGEM reports the ended assignment (Ende April 2024) as a change with a
/// newer version; the mirror keeps its id and version and names nobody again, and an older version
/// still cannot revive it.
#[test]
fn r_j2_the_ended_assignments_change_after_the_erasure_keeps_the_mirror_without_names() {
    let rundbrief = erasing(cleverreach("rundbrief"));
    let mut k = known(vec![rundbrief.clone()]);
    let a1 = assignment("a1", "rundbrief", MAX);
    step(&mut k, changed(&a1), "2024-04-02");
    let p = step(&mut k, esp_event(&rundbrief, true, MAX, "2024-05-15", EspEventKind::Unsubscribed), "2024-05-15");
    let p = step(&mut k, confirmations(&p).remove(0), "2024-05-15");
    k.links[0].erased.insert(email(MAX), p.erasures[0].tombstone.clone());

    let mut ended = a1.clone();
    ended.version = a1.version + 1;
    ended.end = Some(ym("2024-04"));
    ended.changed_at = noon("2024-05-15");
    let p = step(&mut k, changed(&ended), "2024-05-16");
    assert!(ops(&p).is_empty() && p.commands.is_empty(), "nothing to do: {p:?}");
    let entry = &view(&k, &rundbrief).mirror[&AssignmentId::new("a1")];
    assert_eq!(entry.version, ended.version, "the version is kept");
    assert!(entry.snapshot.is_none() && entry.email.is_none(), "the mirror names nobody: {entry:?}");
    assert!(!view(&k, &rundbrief).recipients.contains_key(&email(MAX)), "no address stored again");

    let p = step(&mut k, changed(&a1), "2024-05-17");
    assert!(ops(&p).is_empty(), "an older version revives nothing: {:?}", ops(&p));
    assert!(view(&k, &rundbrief).mirror[&AssignmentId::new("a1")].email.is_none());
}
