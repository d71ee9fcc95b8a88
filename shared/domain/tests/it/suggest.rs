//! R-C3: OPTIGEM's candidates for a signup are ranked — the same e-mail first, then similar names — and
//! each carries the reason it is offered.

use optisync_domain::suggest::{Reason, rank};
use optisync_domain::*;

fn candidate(id: &str, first: Option<&str>, last: Option<&str>, emails: &[&str]) -> Candidate {
    Candidate {
        person: PersonId::new(id),
        first_name: first.map(PersonalText::new),
        last_name: last.map(PersonalText::new),
        emails: emails.iter().map(|e| Email::parse(e).unwrap()).collect(),
    }
}

fn signup(first: Option<&str>, last: Option<&str>) -> Signup {
    Signup { first_name: first.map(PersonalText::new), last_name: last.map(PersonalText::new), ..Default::default() }
}

#[test]
fn r_c3_same_email_outranks_an_identical_name() {
    let email = Email::parse("max@example.com").unwrap();
    let ranked = rank(
        &email,
        &signup(Some("Max"), Some("Muster")),
        &[
            candidate("P-1", Some("Max"), Some("Muster"), &[]),
            candidate("P-2", Some("Ruth"), Some("Schneider"), &["MAX@example.com"]),
        ],
    );
    assert_eq!(ranked[0].person.as_str(), "P-2");
    assert_eq!(ranked[0].reasons, vec![Reason::SameEmail]);
    assert_eq!(ranked[1].reasons, vec![Reason::SimilarName { similarity: 100 }]);
}

#[test]
fn r_c3_max_muster_is_closer_to_max_muster_than_to_max_und_erika() {
    // The documents' example: "Max Muster" and "Max und Erika Muster" are different persons.
    let email = Email::parse("max@example.com").unwrap();
    let ranked = rank(
        &email,
        &signup(Some("Max"), Some("Muster")),
        &[
            candidate("P-1", Some("Max und Erika"), Some("Muster"), &[]),
            candidate("P-2", Some("max "), Some(" muster"), &[]),
        ],
    );
    assert_eq!(ranked.iter().map(|s| s.person.as_str()).collect::<Vec<_>>(), vec!["P-2", "P-1"]);
    assert_eq!(ranked[0].reasons, vec![Reason::SimilarName { similarity: 100 }], "case and spaces do not matter");
}

#[test]
fn r_c3_without_names_every_candidate_is_kept_as_offered_in_a_stable_order() {
    let email = Email::parse("x@example.com").unwrap();
    let candidates = [
        candidate("P-3", Some("A"), None, &[]),
        candidate("P-1", None, Some("B"), &[]),
        candidate("P-3", Some("A"), None, &[]),
    ];
    let ranked = rank(&email, &signup(None, None), &candidates);
    assert_eq!(ranked.iter().map(|s| s.person.as_str()).collect::<Vec<_>>(), vec!["P-1", "P-3"], "by id, once each");
    assert!(ranked.iter().all(|s| s.reasons == vec![Reason::OfferedByOptigem]));
}

#[test]
fn r_c3_dissimilar_names_give_no_name_reason() {
    let email = Email::parse("x@example.com").unwrap();
    let ranked = rank(
        &email,
        &signup(Some("Erika"), Some("Muster")),
        &[candidate("P-1", Some("Johannes"), Some("Zimmermann"), &[])],
    );
    assert_eq!(ranked[0].reasons, vec![Reason::OfferedByOptigem]);
}
