//! OPTIGEM → ESP end to end (R-A1…A8, R-C4, R-D1…D6, R-E7): a change in the simulated OPTIGEM goes as a
//! signed event through hook-optigem into the inbox, the worker applies it through the engine, and the
//! real Brevo and CleverReach clients bring the fake ESPs in step.

use optisync_domain::*;
use optisync_e2e::{Stack, email, person, subscribe};
use optisync_optigem_sim::PersonDraft;

fn mapped() -> LinkSettings {
    LinkSettings {
        mapping: FieldMapping {
            first_name: Some(AttributeName::new("FIRSTNAME")),
            last_name: Some(AttributeName::new("LASTNAME")),
            letter_salutation: None,
        },
        ..Default::default()
    }
}

fn cr_mapped() -> LinkSettings {
    LinkSettings {
        mapping: FieldMapping {
            first_name: Some(AttributeName::new("firstname")),
            last_name: Some(AttributeName::new("lastname")),
            letter_salutation: None,
        },
        ..Default::default()
    }
}

fn on_brevo_list(stack: &Stack, link: &Link, mail: &str) -> bool {
    let list: i64 = link.list.as_str().parse().unwrap();
    stack.brevo.contact(mail).is_some_and(|c| c.list_ids.contains(&list) && !c.email_blacklisted)
}

fn active_in_group(stack: &Stack, link: &Link, mail: &str) -> Option<bool> {
    stack.cleverreach.receiver(link.list.as_str(), mail).map(|r| r.active)
}

#[tokio::test]
async fn r_d1_a_new_assignment_creates_and_lists_the_recipient_in_both_esps() {
    let stack = Stack::start().await;
    let brevo = stack.link_brevo("NL-1", mapped()).await;
    let cr = stack.link_cleverreach("NL-2", cr_mapped()).await;
    let max = person(&stack.optigem, "Max", Some("Muster"), "max.muster@example.com");
    subscribe(&stack.optigem, &max, "NL-1");
    subscribe(&stack.optigem, &max, "NL-2");
    stack.sync().await;
    assert!(on_brevo_list(&stack, &brevo, "max.muster@example.com"));
    let contact = stack.brevo.contact("max.muster@example.com").unwrap();
    assert_eq!(contact.attributes.get("FIRSTNAME").and_then(|v| v.as_str()), Some("Max"));
    assert_eq!(active_in_group(&stack, &cr, "max.muster@example.com"), Some(true));
    let receiver = stack.cleverreach.receiver(cr.list.as_str(), "max.muster@example.com").unwrap();
    assert_eq!(receiver.global_attributes.get("lastname").map(String::as_str), Some("Muster"));
}

/// Each way an assignment stops being active (R-A2…A7) takes the recipient off the list of that
/// newsletter (Brevo: removed from the list, never blacklisted; CleverReach: deactivated in the group),
/// and leaves a third newsletter's list alone unless the rule also holds there.
#[tokio::test]
async fn r_a2_to_r_a7_r_d2_inactive_assignments_leave_their_list_only() {
    enum Change {
        Assignment(fn(&mut optisync_optigem_sim::AssignmentFields)),
        Person(fn(&mut Person)),
    }
    let cases: Vec<(&str, Change, bool, bool)> = vec![
        // (case, change, tenant: "no statement" blocks, the third newsletter's list keeps the recipient)
        ("end month passed (R-A2)", Change::Assignment(|f| f.end = Some("2024-04".parse().unwrap())), false, true),
        ("count 0 (R-A4)", Change::Assignment(|f| f.count = 0), false, true),
        ("deletion mark (R-A5)", Change::Person(|p| p.deletion_marked = true), false, false),
        ("no statement with the tenant setting (R-A6)", Change::Person(|p| p.privacy.clear()), true, true),
        (
            "relevant privacy block (R-A6)",
            Change::Person(|p| {
                p.privacy.insert(PrivacyCategory::new("E-Mail"), PrivacyStatus::Blocked);
            }),
            false,
            true,
        ),
        (
            "relevant delivery block in force (R-A7)",
            Change::Person(|p| {
                p.delivery_blocks.push(DeliveryBlock {
                    kind: DeliveryBlockType::new("Verstorben"),
                    valid_from: Some("2020-01-01".parse().unwrap()),
                    valid_until: None,
                })
            }),
            false,
            true,
        ),
    ];
    for (case, change, no_statement_blocks, third_keeps) in cases {
        let stack = Stack::start().await;
        stack.store.set_tenant(stack.tenant.clone(), TenantSettings { no_statement_blocks, ..Default::default() });
        let relevant = |mapping: FieldMapping| LinkSettings {
            relevant_privacy: [PrivacyCategory::new("E-Mail")].into(),
            relevant_blocks: [DeliveryBlockType::new("Verstorben")].into(),
            mapping,
            ..Default::default()
        };
        let brevo = stack.link_brevo("NL-1", relevant(mapped().mapping)).await;
        let cr = stack.link_cleverreach("NL-2", relevant(cr_mapped().mapping)).await;
        let third = stack.link_brevo("NL-3", mapped()).await; // R-A8: nothing relevant by default
        let max = stack.optigem.add_person(PersonDraft {
            first_name: Some("Max".into()),
            last_name: Some("Muster".into()),
            emails: vec![("max.muster@example.com".into(), 1)],
            privacy: [(PrivacyCategory::new("E-Mail"), PrivacyStatus::Allowed)].into(),
            ..Default::default()
        });
        let a1 = subscribe(&stack.optigem, &max, "NL-1");
        let a2 = subscribe(&stack.optigem, &max, "NL-2");
        subscribe(&stack.optigem, &max, "NL-3");
        stack.sync().await;
        assert!(on_brevo_list(&stack, &brevo, "max.muster@example.com"), "{case}");
        assert_eq!(active_in_group(&stack, &cr, "max.muster@example.com"), Some(true), "{case}");
        assert!(on_brevo_list(&stack, &third, "max.muster@example.com"), "{case}");

        match change {
            Change::Assignment(f) => {
                stack.optigem.update_assignment(&a1, f);
                stack.optigem.update_assignment(&a2, f);
            }
            Change::Person(f) => stack.optigem.update_person(&max, f),
        }
        stack.sync().await;
        let contact = stack.brevo.contact("max.muster@example.com").expect("still in Brevo");
        assert!(!on_brevo_list(&stack, &brevo, "max.muster@example.com"), "{case}: off the Brevo list");
        assert!(!contact.email_blacklisted, "{case}: never blacklisted by the sync");
        assert_eq!(active_in_group(&stack, &cr, "max.muster@example.com"), Some(false), "{case}: deactivated");
        assert_eq!(on_brevo_list(&stack, &third, "max.muster@example.com"), third_keeps, "{case}: third list");
    }
}

#[tokio::test]
async fn r_d3_a_mapped_name_change_updates_the_recipient_and_an_unmapped_one_does_not() {
    let stack = Stack::start().await;
    let only_first = LinkSettings {
        mapping: FieldMapping { first_name: Some(AttributeName::new("FIRSTNAME")), ..Default::default() },
        ..Default::default()
    };
    stack.link_brevo("NL-1", only_first).await;
    let cr = stack
        .link_cleverreach(
            "NL-2",
            LinkSettings {
                mapping: FieldMapping { first_name: Some(AttributeName::new("firstname")), ..Default::default() },
                ..Default::default()
            },
        )
        .await;
    let max = person(&stack.optigem, "Max", Some("Muster"), "max.muster@example.com");
    subscribe(&stack.optigem, &max, "NL-1");
    subscribe(&stack.optigem, &max, "NL-2");
    stack.sync().await;

    let before = stack.esp_mutations();
    stack.optigem.update_person(&max, |p| p.last_name = Some(PersonalText::new("Mustermann")));
    stack.sync().await;
    assert_eq!(stack.esp_mutations(), before, "the last name is not mapped: no call");

    stack.optigem.update_person(&max, |p| p.first_name = Some(PersonalText::new("Maximilian")));
    stack.sync().await;
    assert!(stack.esp_mutations() > before);
    let contact = stack.brevo.contact("max.muster@example.com").unwrap();
    assert_eq!(contact.attributes.get("FIRSTNAME").and_then(|v| v.as_str()), Some("Maximilian"));
    assert!(contact.attributes.get("LASTNAME").is_none());
    let receiver = stack.cleverreach.receiver(cr.list.as_str(), "max.muster@example.com").unwrap();
    assert_eq!(receiver.global_attributes.get("firstname").map(String::as_str), Some("Maximilian"));
    assert!(receiver.active, "a field update never changes the state");
}

#[tokio::test]
async fn r_d4_r_d5_an_email_change_moves_the_recipient_unless_a_duplicate_still_uses_the_old_address() {
    let stack = Stack::start().await;
    let brevo = stack.link_brevo("NL-1", mapped()).await;
    let cr = stack.link_cleverreach("NL-2", cr_mapped()).await;
    let max = person(&stack.optigem, "Max", Some("Muster"), "max@example.com");
    let erika = person(&stack.optigem, "Erika", Some("Muster"), "familie.muster@example.com");
    let hans = person(&stack.optigem, "Hans", Some("Muster"), "familie.muster@example.com");
    for p in [&max, &erika, &hans] {
        subscribe(&stack.optigem, p, "NL-1");
        subscribe(&stack.optigem, p, "NL-2");
    }
    stack.sync().await;

    // R-D4: Max's only address changes: the old recipient leaves, the new one joins.
    stack
        .optigem
        .update_person(&max, |p| p.emails = vec![RankedEmail { email: email("max.neu@example.com"), priority: 1 }]);
    stack.sync().await;
    assert!(!on_brevo_list(&stack, &brevo, "max@example.com"));
    assert!(on_brevo_list(&stack, &brevo, "max.neu@example.com"));
    assert_eq!(active_in_group(&stack, &cr, "max@example.com"), Some(false));
    assert_eq!(active_in_group(&stack, &cr, "max.neu@example.com"), Some(true));

    // R-D5: Erika moves to her own address, Hans still uses the family address: it stays.
    stack
        .optigem
        .update_person(&erika, |p| p.emails = vec![RankedEmail { email: email("erika@example.com"), priority: 1 }]);
    stack.sync().await;
    assert!(on_brevo_list(&stack, &brevo, "familie.muster@example.com"));
    assert!(on_brevo_list(&stack, &brevo, "erika@example.com"));
    assert_eq!(active_in_group(&stack, &cr, "familie.muster@example.com"), Some(true));
    assert_eq!(active_in_group(&stack, &cr, "erika@example.com"), Some(true));
}

#[tokio::test]
async fn r_c4_duplicates_share_one_recipient() {
    let stack = Stack::start().await;
    let brevo = stack.link_brevo("NL-1", mapped()).await;
    let cr = stack.link_cleverreach("NL-2", cr_mapped()).await;
    let max = person(&stack.optigem, "Max", Some("Muster"), "familie.muster@example.com");
    let erika = person(&stack.optigem, "Erika", Some("Muster"), "familie.muster@example.com");
    for p in [&max, &erika] {
        subscribe(&stack.optigem, p, "NL-1");
        subscribe(&stack.optigem, p, "NL-2");
    }
    stack.sync().await;
    let in_list: Vec<_> = stack
        .brevo
        .contacts()
        .into_iter()
        .filter(|c| c.list_ids.contains(&brevo.list.as_str().parse().unwrap()))
        .collect();
    assert_eq!(in_list.len(), 1, "one recipient for both assignments");
    assert_eq!(stack.brevo.calls("POST", "/contacts"), 1, "created once");
    assert_eq!(active_in_group(&stack, &cr, "familie.muster@example.com"), Some(true));
    let receivers = stack
        .cleverreach
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/receivers/upsert"))
        .count();
    assert_eq!(receivers, 1, "one upsert into the group");
}
