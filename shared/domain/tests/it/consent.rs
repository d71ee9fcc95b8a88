//! R-J1 / R-G3: consent evidence that proves something, with seed 003's examples ("Max Muster" signs up
//! to "Rundbrief" by double opt-in; the confirmation click with its time stamp is what proves consent).

use crate::common;
use common::*;
use optisync_domain::*;
use pretty_assertions::assert_eq;

/// Max Muster's signup as the ESP holds it: names, opt-in and confirmation times, form and IP.
fn max_signup(signed: &str, confirmed: &str, source: &str, ip: &str) -> Signup {
    Signup {
        first_name: Some(PersonalText::new("Max")),
        last_name: Some(PersonalText::new("Muster")),
        evidence: ConsentEvidence {
            signup_at: Some(noon(signed)),
            confirmed_at: Some(noon(confirmed)),
            source: Some(source.into()),
            ip: Some(PersonalText::new(ip)),
            ..Default::default()
        },
    }
}

fn segment_rundbrief() -> Link {
    let mut l = cleverreach("rundbrief");
    l.segment = Some(SegmentId::new("filter-7"));
    l
}

/// R-G3, R-J1 (B11): a CleverReach segment member unknown to the link is queued with the names and the
/// evidence the listing holds, and OPTIGEM's person lookup gets the names.
#[test]
fn r_g3_r_j1_a_segment_member_is_queued_with_its_names_and_evidence() {
    let link = segment_rundbrief();
    let mut k = known(vec![link.clone()]);
    let signup = max_signup("2024-04-29", "2024-04-30", "https://example.org/rundbrief", "192.0.2.44");
    let member = ListedMember {
        email: email("max.muster@example.com"),
        active: true,
        blacklisted: false,
        changed_at: Some(noon("2024-04-30")),
        signup: signup.clone(),
    };
    let found = drift::differences(&link, view(&k, &link), std::slice::from_ref(&member), noon("2024-05-02"));
    assert_eq!(found.now.len(), 1, "{found:?}");
    let plan = step(&mut k, Input::Esp(found.now[0].clone()), "2024-05-02");
    let entry = &view(&k, &link).approvals[&email("max.muster@example.com")];
    assert_eq!(entry.status, ApprovalStatus::Pending);
    assert_eq!(entry.signup, signup, "R-J1: the names and evidence CleverReach holds");
    let asked: Vec<_> = plan
        .commands
        .iter()
        .filter_map(|c| match c {
            OptigemCommand::MatchPersons { first_name, last_name, .. } => Some((
                first_name.as_ref().map(|n| n.expose().to_owned()),
                last_name.as_ref().map(|n| n.expose().to_owned()),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(asked, vec![(Some("Max".to_owned()), Some("Muster".to_owned()))], "R-C3: looked up by name");
}

/// R-G4, R-J1 (B11): a known member back in the segment has its assignment made active again; the
/// `create_assignment` carries the evidence CleverReach holds, not an empty one.
#[test]
fn r_g4_r_j1_a_segment_rejoin_hands_the_members_evidence_to_optigem() {
    let link = segment_rundbrief();
    let mut k = known(vec![link.clone()]);
    let a = assignment("a1", "rundbrief", "max.muster@example.com");
    step(&mut k, changed(&a), "2024-04-01");
    let ended = next(&a, "2024-04-02", |b| b.end = Some(ym("2024-03")));
    step(&mut k, changed(&ended), "2024-04-02");
    let signup = max_signup("2024-04-29", "2024-04-30", "https://example.org/rundbrief", "192.0.2.44");
    let joined =
        EspEventKind::SegmentMembership { segment: SegmentId::new("filter-7"), member: true, signup: signup.clone() };
    let p = step(&mut k, esp_event(&link, true, "max.muster@example.com", "2024-04-30", joined), "2024-04-30");
    let consents: Vec<_> = p
        .commands
        .iter()
        .filter_map(|c| match c {
            OptigemCommand::CreateAssignment { consent, .. } => Some(consent.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(consents, vec![signup.evidence], "R-J1: the rejoin's evidence goes to OPTIGEM");
}

/// R-J1: Max Muster signs up to "Rundbrief" at the end of April 2024 and again in May while the first
/// signup still waits; the second adds its evidence, the first's stays as it was.
#[test]
fn r_j1_a_second_signup_adds_evidence_and_keeps_the_first() {
    let link = brevo("rundbrief");
    let mut k = known(vec![link.clone()]);
    let first = max_signup("2024-04-29", "2024-04-30", "form:website", "192.0.2.1");
    let second = max_signup("2024-05-20", "2024-05-21", "form:event", "198.51.100.9");
    let signup = |s: &Signup, when: &str| {
        esp_event(&link, true, "max.muster@example.com", when, EspEventKind::Signup { signup: s.clone() })
    };
    step(&mut k, signup(&first, "2024-04-30"), "2024-04-30");
    step(&mut k, signup(&second, "2024-05-21"), "2024-05-21");
    let entry = &view(&k, &link).approvals[&email("max.muster@example.com")];
    assert_eq!(entry.signups, 2);
    let kept = entry.signup.evidence.entries();
    assert_eq!(kept, vec![first.evidence.clone(), second.evidence.clone()], "R-J1: added, never overwritten");
    // A redelivery of the second signup adds nothing.
    step(&mut k, signup(&second, "2024-05-21"), "2024-05-22");
    let entry = &view(&k, &link).approvals[&email("max.muster@example.com")];
    assert_eq!(entry.signup.evidence.entries().len(), 2);
}

/// R-J1: a report of the same opt-in that only adds what the first lacked (Brevo's `list_addition` has
/// no confirmation time) completes that entry; one that contradicts it (another source) is kept beside it.
#[test]
fn r_j1_a_report_of_the_same_opt_in_completes_its_evidence_and_a_contradicting_one_is_kept_beside_it() {
    let link = brevo("rundbrief");
    let mut k = known(vec![link.clone()]);
    let report = |source: Option<&str>, confirmed: Option<&str>, ip: Option<&str>| Signup {
        evidence: ConsentEvidence {
            signup_at: Some(noon("2024-04-29")),
            confirmed_at: confirmed.map(noon),
            source: source.map(Into::into),
            ip: ip.map(PersonalText::new),
            ..Default::default()
        },
        ..Signup::default()
    };
    let mut at = |s: Signup, when: &str| {
        let what = EspEventKind::Signup { signup: s };
        step(&mut k, esp_event(&link, true, "max.muster@example.com", when, what), when);
    };
    at(report(Some("brevo:list_addition"), None, None), "2024-04-29");
    at(report(None, Some("2024-04-30"), Some("192.0.2.1")), "2024-04-30");
    at(report(Some("brevo:form:3"), None, None), "2024-05-01");
    let e = &view(&k, &link).approvals[&email("max.muster@example.com")].signup.evidence;
    assert_eq!(e.entries().len(), 2, "{e:?}");
    assert_eq!(e.source.as_deref(), Some("brevo:list_addition"), "what was recorded stays");
    assert_eq!(e.confirmed_at, Some(noon("2024-04-30")), "what was missing is added");
    assert_eq!(e.ip.as_ref().map(|i| i.expose().to_owned()).as_deref(), Some("192.0.2.1"));
    assert_eq!(e.later[0].source.as_deref(), Some("brevo:form:3"), "the contradicting report is kept");
}

/// R-J1: Max Muster's approved signup is followed, after he left, by a new one: the new entry keeps the
/// evidence of the first and adds its own.
#[test]
fn r_j1_a_new_signup_after_a_decision_keeps_the_earlier_evidence() {
    let link = brevo("rundbrief");
    let mut k = known(vec![link.clone()]);
    let first = max_signup("2024-04-29", "2024-04-30", "form:website", "192.0.2.1");
    let second = max_signup("2024-09-20", "2024-09-21", "form:event", "198.51.100.9");
    let what = |s: &Signup| EspEventKind::Signup { signup: s.clone() };
    step(&mut k, esp_event(&link, true, "max.muster@example.com", "2024-04-30", what(&first)), "2024-04-30");
    // The approver rejected it (the decision as the store records it).
    for v in &mut k.links {
        for e in v.approvals.values_mut() {
            e.status = ApprovalStatus::Rejected;
        }
    }
    step(&mut k, esp_event(&link, true, "max.muster@example.com", "2024-09-21", what(&second)), "2024-09-21");
    let entry = &view(&k, &link).approvals[&email("max.muster@example.com")];
    assert_eq!(entry.status, ApprovalStatus::Pending);
    let kept = entry.signup.evidence.entries();
    assert_eq!(kept, vec![first.evidence, second.evidence], "R-J1: the earlier evidence stays");
}

/// R-J1: records stored before the evidence became a list still read: a single evidence, and a segment
/// membership without a signup.
#[test]
fn r_j1_old_records_with_a_single_evidence_still_deserialize() {
    let old = r#"{"first_name":"Max","evidence":{"signup_at":"2024-04-30T10:00:00Z","source":"form:website"}}"#;
    let s: Signup = serde_json::from_str(old).unwrap();
    assert_eq!(s.evidence.entries().len(), 1);
    assert_eq!(s.evidence.source.as_deref(), Some("form:website"));
    let old = r#"{"type":"segment_membership","segment":"filter-7","member":true}"#;
    let kind: EspEventKind = serde_json::from_str(old).unwrap();
    assert!(
        matches!(kind, EspEventKind::SegmentMembership { member: true, signup, .. } if signup == Signup::default())
    );
}
