//! Table-driven tests of the rules that are plain functions (R-A, R-B, R-D6, R-E1), with the source
//! documents' examples.

use crate::common;
use common::*;
use optisync_domain::rules::*;
use optisync_domain::*;
use std::collections::BTreeSet;

fn settings_with(privacy: &[&str], blocks: &[&str]) -> LinkSettings {
    LinkSettings {
        relevant_privacy: privacy.iter().map(|p| PrivacyCategory::new(*p)).collect(),
        relevant_blocks: blocks.iter().map(|b| DeliveryBlockType::new(*b)).collect(),
        ..Default::default()
    }
}

fn check(a: &Assignment, settings: &LinkSettings, tenant: &TenantSettings, on: &str) -> Verdict {
    verdict(a, settings, tenant, day(on))
}

#[test]
fn r_a1_an_assignment_is_active_unless_a_reason_holds_and_every_inactive_verdict_names_its_reasons() {
    let a = assignment("a1", "nl", "max@example.com");
    let ok = check(&a, &LinkSettings::default(), &TenantSettings::default(), "2024-05-01");
    assert!(ok.is_active());
    assert!(ok.reasons.is_empty());

    let mut b = a.clone();
    b.count = 0;
    b.person.deletion_marked = true;
    let v = check(&b, &LinkSettings::default(), &TenantSettings::default(), "2024-05-01");
    assert!(!v.is_active());
    assert_eq!(v.reasons, vec![InactiveReason::CountZero, InactiveReason::PersonDeletionMarked]);
}

#[test]
fn r_a2_end_april_2024_is_active_on_30_april_and_inactive_on_1_may() {
    let mut a = assignment("a1", "nl", "max@example.com");
    a.end = Some(ym("2024-04"));
    let s = LinkSettings::default();
    let t = TenantSettings::default();
    for (on, active) in [("2024-04-01", true), ("2024-04-30", true), ("2024-05-01", false), ("2025-01-01", false)] {
        assert_eq!(check(&a, &s, &t, on).is_active(), active, "{on}");
    }
    assert_eq!(check(&a, &s, &t, "2024-05-01").reasons, vec![InactiveReason::EndPassed { end: ym("2024-04") }]);
}

#[test]
fn r_a2_to_stop_from_25_september_2024_the_end_is_august_2024() {
    assert_eq!(unsubscribe_end(None, day("2024-09-25")), ym("2024-08"));
    let mut a = assignment("a1", "nl", "max@example.com");
    a.end = Some(ym("2024-08"));
    let (s, t) = (LinkSettings::default(), TenantSettings::default());
    assert!(check(&a, &s, &t, "2024-08-31").is_active());
    assert!(!check(&a, &s, &t, "2024-09-25").is_active());
}

#[test]
fn r_a3_no_email_on_assignment_or_person_is_inactive() {
    let (s, t) = (LinkSettings::default(), TenantSettings::default());
    let mut a = assignment("a1", "nl", "max@example.com");
    a.person.emails.clear();
    assert_eq!(check(&a, &s, &t, "2024-05-01").reasons, vec![InactiveReason::NoEmail]);
    a.email = Some(email("own@example.com"));
    assert!(check(&a, &s, &t, "2024-05-01").is_active(), "the assignment's own e-mail suffices");
}

#[test]
fn r_a4_count_zero_is_inactive() {
    let (s, t) = (LinkSettings::default(), TenantSettings::default());
    let mut a = assignment("a1", "nl", "max@example.com");
    for (count, active) in [(0, false), (1, true), (3, true)] {
        a.count = count;
        assert_eq!(check(&a, &s, &t, "2024-05-01").is_active(), active, "count {count}");
    }
}

#[test]
fn r_a5_deletion_marked_person_is_inactive() {
    let (s, t) = (LinkSettings::default(), TenantSettings::default());
    let mut a = assignment("a1", "nl", "max@example.com");
    a.person.deletion_marked = true;
    assert_eq!(check(&a, &s, &t, "2024-05-01").reasons, vec![InactiveReason::PersonDeletionMarked]);
    assert!(!Verdict::deleted().is_active(), "a deleted assignment is inactive");
}

#[test]
fn r_a6_privacy_blocks_count_only_for_relevant_categories_and_no_statement_per_tenant() {
    use PrivacyStatus::*;
    let strict = TenantSettings { no_statement_blocks: true, ..Default::default() };
    let lenient = TenantSettings::default();
    // (status of "email", relevant?, tenant, active?)
    let table = [
        (Some(Allowed), true, &lenient, true),
        (Some(Blocked), true, &lenient, false),
        (Some(Blocked), false, &lenient, true),
        (Some(NoStatement), true, &lenient, true),
        (Some(NoStatement), true, &strict, false),
        (None, true, &strict, false), // a missing status is "no statement"
        (None, true, &lenient, true),
        (Some(NoStatement), false, &strict, true),
    ];
    for (status, relevant, tenant, active) in table {
        let mut a = assignment("a1", "nl", "max@example.com");
        if let Some(s) = status {
            a.person.privacy.insert(PrivacyCategory::new("email"), s);
        }
        let s = if relevant { settings_with(&["email"], &[]) } else { settings_with(&[], &[]) };
        let v = check(&a, &s, tenant, "2024-05-01");
        assert_eq!(v.is_active(), active, "{status:?} relevant={relevant} tenant={tenant:?}");
    }
    let mut a = assignment("a1", "nl", "max@example.com");
    a.person.privacy.insert(PrivacyCategory::new("email"), Blocked);
    let v = check(&a, &settings_with(&["email"], &[]), &lenient, "2024-05-01");
    assert_eq!(v.reasons, vec![InactiveReason::PrivacyBlocked { category: PrivacyCategory::new("email") }]);
}

#[test]
fn r_a7_relevant_delivery_blocks_count_on_the_days_they_are_in_force() {
    let (t, s) = (TenantSettings::default(), settings_with(&[], &["gesamt"]));
    let block = |kind: &str, from: Option<&str>, until: Option<&str>| DeliveryBlock {
        kind: DeliveryBlockType::new(kind),
        valid_from: from.map(day),
        valid_until: until.map(day),
    };
    let table = [
        (block("gesamt", None, None), "2024-05-01", false),
        (block("gesamt", Some("2024-05-01"), None), "2024-04-30", true),
        (block("gesamt", Some("2024-05-01"), None), "2024-05-01", false),
        (block("gesamt", None, Some("2024-05-31")), "2024-05-31", false),
        (block("gesamt", None, Some("2024-05-31")), "2024-06-01", true),
        (block("telefon", None, None), "2024-05-01", true), // not relevant
    ];
    for (b, on, active) in table {
        let mut a = assignment("a1", "nl", "max@example.com");
        a.person.delivery_blocks.push(b.clone());
        assert_eq!(check(&a, &s, &t, on).is_active(), active, "{b:?} on {on}");
    }
}

#[test]
fn r_a8_new_links_mark_nothing_relevant() {
    let s = LinkSettings::default();
    assert!(s.relevant_privacy.is_empty() && s.relevant_blocks.is_empty());
    let mut a = assignment("a1", "nl", "max@example.com");
    a.person.privacy.insert(PrivacyCategory::new("email"), PrivacyStatus::Blocked);
    a.person.delivery_blocks.push(DeliveryBlock {
        kind: DeliveryBlockType::new("gesamt"),
        valid_from: None,
        valid_until: None,
    });
    let strict = TenantSettings { no_statement_blocks: true, ..Default::default() };
    assert!(check(&a, &s, &strict, "2024-05-01").is_active());
}

#[test]
fn r_a9_next_transition_is_the_first_day_time_alone_can_change_the_verdict() {
    let s = settings_with(&[], &["gesamt"]);
    let mut a = assignment("a1", "nl", "max@example.com");
    assert_eq!(next_transition(&a, &s, day("2024-04-15")), None);
    a.end = Some(ym("2024-04"));
    assert_eq!(next_transition(&a, &s, day("2024-04-15")), Some(day("2024-05-01")));
    assert_eq!(next_transition(&a, &s, day("2024-05-01")), None, "already past");
    a.person.delivery_blocks.push(DeliveryBlock {
        kind: DeliveryBlockType::new("gesamt"),
        valid_from: Some(day("2024-04-20")),
        valid_until: Some(day("2024-04-25")),
    });
    assert_eq!(next_transition(&a, &s, day("2024-04-15")), Some(day("2024-04-20")));
    assert_eq!(next_transition(&a, &s, day("2024-04-20")), Some(day("2024-04-26")));
    a.person.delivery_blocks[0].kind = DeliveryBlockType::new("telefon");
    assert_eq!(next_transition(&a, &s, day("2024-04-15")), Some(day("2024-05-01")), "irrelevant types do not count");
}

#[test]
fn r_b1_own_email_first_then_highest_priority_standard_communication() {
    let mut a = assignment("a1", "nl", "p3@example.com");
    a.person.emails = vec![
        RankedEmail { email: email("p3@example.com"), priority: 3 },
        RankedEmail { email: email("p1@example.com"), priority: 1 },
        RankedEmail { email: email("p1b@example.com"), priority: 1 },
    ];
    assert_eq!(email_used(&a), Some(&email("p1@example.com")), "priority 1, first given on a tie");
    a.email = Some(email("own@example.com"));
    assert_eq!(email_used(&a), Some(&email("own@example.com")));
    a.email = None;
    a.person.emails.clear();
    assert_eq!(email_used(&a), None);
}

#[test]
fn r_c4_the_field_source_of_duplicates_is_the_oldest_assignment() {
    let mut young = assignment("a2", "nl", "max@example.com");
    young.created_at = noon("2024-03-01");
    let mut old = assignment("a9", "nl", "max@example.com");
    old.created_at = noon("2023-03-01");
    assert_eq!(field_source([&young, &old]).unwrap().id, old.id);
    assert_eq!(field_source([&old, &young]).unwrap().id, old.id, "independent of order");
    let mut twin = young.clone();
    twin.id = AssignmentId::new("a1");
    assert_eq!(field_source([&young, &twin]).unwrap().id, twin.id, "same time: lowest id");
}

#[test]
fn r_d3_mapped_fields_follow_the_mapping() {
    let a = assignment("a1", "nl", "max@example.com");
    let f = mapped_fields(&a, &mapping());
    let names: BTreeSet<_> = f.0.keys().map(|k| k.as_str().to_owned()).collect();
    assert_eq!(names, BTreeSet::from(["FIRSTNAME".to_owned(), "LASTNAME".to_owned()]));
    assert_eq!(f.0[&AttributeName::new("FIRSTNAME")].expose(), "Max");
    assert!(mapped_fields(&a, &FieldMapping::default()).is_empty());
}

#[test]
fn r_d6_only_existing_distinct_global_attributes_can_be_mapped() {
    let available = [
        AttributeInfo { name: AttributeName::new("FIRSTNAME"), scope: AttributeScope::Global },
        AttributeInfo { name: AttributeName::new("LASTNAME"), scope: AttributeScope::Global },
        AttributeInfo { name: AttributeName::new("group_note"), scope: AttributeScope::List },
    ];
    assert!(validate_mapping(&mapping(), &available).is_ok());
    let bad = FieldMapping {
        first_name: Some(AttributeName::new("group_note")),
        last_name: Some(AttributeName::new("NOPE")),
        letter_salutation: None,
    };
    let errors = validate_mapping(&bad, &available).unwrap_err();
    assert!(matches!(errors[0], MappingError::NotGlobal { field: "first_name", .. }));
    assert!(matches!(errors[1], MappingError::Unknown { field: "last_name", .. }));
    let twice = FieldMapping {
        first_name: Some(AttributeName::new("FIRSTNAME")),
        last_name: Some(AttributeName::new("FIRSTNAME")),
        letter_salutation: None,
    };
    assert!(matches!(validate_mapping(&twice, &available).unwrap_err()[0], MappingError::Duplicate { .. }));
}

#[test]
fn r_e1_the_end_is_the_month_before_the_unsubscribe_and_an_earlier_end_is_kept() {
    let table = [
        (None, "2024-09-25", "2024-08"),
        (Some("2024-03"), "2024-09-25", "2024-03"),
        (Some("2025-12"), "2024-09-25", "2024-08"),
        (None, "2024-01-15", "2023-12"),
    ];
    for (existing, date, end) in table {
        assert_eq!(unsubscribe_end(existing.map(ym), day(date)), ym(end), "{existing:?} {date}");
    }
}

#[test]
fn r_h2_link_settings_parse_with_optional_mapping_and_explicit_relevance() {
    let json = r#"{"relevant_privacy":["email"],"mapping":{"first_name":"FIRSTNAME"},"unsubscribe_mode":"erasure"}"#;
    let s: LinkSettings = serde_json_from(json);
    assert_eq!(s.mapping.first_name, Some(AttributeName::new("FIRSTNAME")));
    assert_eq!(s.mapping.last_name, None);
    assert!(s.relevant_blocks.is_empty());
    assert_eq!(s.unsubscribe_mode, UnsubscribeMode::Erasure);
    assert_eq!(serde_json_from::<LinkSettings>("{}").unsubscribe_mode, UnsubscribeMode::Classic, "R-J2 default");
}

#[test]
fn r_j4_only_the_recipients_own_unsubscribe_counts_as_revocation() {
    assert!(UnsubscribeCause::Unsubscribed.by_recipient());
    for cause in [
        UnsubscribeCause::Deactivated,
        UnsubscribeCause::Deleted,
        UnsubscribeCause::DuplicateEnded,
        UnsubscribeCause::LeftSegment,
    ] {
        assert!(!cause.by_recipient(), "{cause:?}");
    }
}

fn serde_json_from<T: serde::de::DeserializeOwned>(s: &str) -> T {
    serde_json::from_str(s).expect("json")
}
