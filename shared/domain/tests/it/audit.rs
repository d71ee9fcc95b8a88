//! The audit trail of a plan: one entry per link changed, recipients masked (R-J5), nothing for a no-op.

use crate::common;
use common::*;
use optisync_domain::audit::audit_entries;
use optisync_domain::*;
use pretty_assertions::assert_eq;

#[test]
fn an_unsubscribe_leaves_one_entry_per_link_with_the_end_command_and_no_address() {
    let (l1, l2) = (brevo("nl1"), brevo("nl2"));
    let mut k = known(vec![l1.clone(), l2.clone()]);
    step(&mut k, changed(&assignment("a1", "nl1", "max.muster@example.com")), "2024-09-01");
    step(&mut k, changed(&assignment("a2", "nl2", "max.muster@example.com")), "2024-09-01");
    let input = esp_event(&l1, false, "max.muster@example.com", "2024-09-25", EspEventKind::Blacklisted);
    let plan = optisync_domain::plan(&k, &input, noon("2024-09-25"));
    let entries = audit_entries(&k, &input, &plan, noon("2024-09-25"));

    assert_eq!(entries.iter().map(|e| e.link.as_str()).collect::<Vec<_>>(), vec!["br-nl1", "br-nl2"]);
    for e in &entries {
        assert_eq!(e.input, "esp.blacklisted");
        assert_eq!(e.recipient.as_deref(), Some("m***@e***.com"));
        assert_eq!(e.esp.iter().map(|o| o.op.as_str()).collect::<Vec<_>>(), vec!["remove_from_list"]);
        assert_eq!(e.commands.iter().map(|c| c.kind.as_str()).collect::<Vec<_>>(), vec!["end_assignment"]);
        assert!(e.writes >= 1, "{e:?}");
        assert_eq!(e.expires_at(), noon("2024-09-25") + chrono::Duration::days(90));
    }
    let json = serde_json::to_string(&entries).unwrap();
    assert!(!json.contains("max.muster") && !json.contains("Muster"), "R-J5: {json}");
}

#[test]
fn a_plan_without_effects_leaves_no_entry() {
    let l = cleverreach("nl");
    let mut k = known(vec![l.clone()]);
    let a = assignment("a1", "nl", "max@example.com");
    let first = changed(&a);
    let plan = step(&mut k, first.clone(), "2024-06-03");
    let entries = audit_entries(&k, &first, &plan, noon("2024-06-03"));
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].assignment.as_ref().map(|a| a.as_str()), Some("a1"));
    assert_eq!(entries[0].recipient, None);

    // The same snapshot again (a redelivery) plans nothing and leaves no trace.
    let again = optisync_domain::plan(&k, &first, noon("2024-06-04"));
    assert!(again.is_empty());
    assert!(audit_entries(&k, &first, &again, noon("2024-06-04")).is_empty());
}

#[test]
fn operation_and_command_names_are_their_serialised_tags() {
    let ops = [
        EspOp::Upsert { fields: rules::FieldValues::default() },
        EspOp::AddToList,
        EspOp::RemoveFromList,
        EspOp::Activate,
        EspOp::Deactivate,
        EspOp::UpdateFields { fields: rules::FieldValues::default() },
    ];
    for op in ops {
        assert_eq!(serde_json::to_value(&op).unwrap()["op"], op.name());
    }
    let id = CommandId::new("c1");
    let nl = NewsletterId::new("nl");
    let commands = [
        OptigemCommand::ExportNewsletter { id: id.clone(), newsletter: nl.clone() },
        OptigemCommand::MatchPersons {
            id: id.clone(),
            link: LinkId::new("l"),
            email: email("max@example.com"),
            first_name: None,
            last_name: None,
        },
    ];
    for command in commands {
        assert_eq!(serde_json::to_value(&command).unwrap()["type"], command.kind());
    }
}
