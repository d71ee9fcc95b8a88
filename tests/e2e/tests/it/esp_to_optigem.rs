//! ESP → OPTIGEM end to end (R-E1…E5, R-C2, R-C3, R-C5, R-J1, R-J3): webhooks from the fake ESPs go
//! through hook-brevo / hook-cleverreach into the inbox, the worker applies them (CleverReach events after
//! a re-read of the receiver), and the simulated OPTIGEM's connector executes the commands.

use optisync_app::approvals::{Approvals, Choice};
use optisync_domain::*;
use optisync_e2e::{BREVO_ACCOUNT, CLEVERREACH_ACCOUNT, Stack, email, person, subscribe};
use serde_json::json;

fn mapped(attribute: &str) -> LinkSettings {
    LinkSettings {
        mapping: FieldMapping { first_name: Some(AttributeName::new(attribute)), ..Default::default() },
        ..Default::default()
    }
}

fn on_list(stack: &Stack, link: &Link, mail: &str) -> bool {
    let list: i64 = link.list.as_str().parse().unwrap();
    stack.brevo.contact(mail).is_some_and(|c| c.list_ids.contains(&list))
}

/// Brevo's unsubscribe payload for 2024-09-25 11:15:37 in Berlin.
fn brevo_unsubscribe(mail: &str) -> serde_json::Value {
    json!({
        "id": 1, "camp_id": 12, "email": mail, "campaign name": "Rundbrief September",
        "date_sent": "2024-09-25 09:00:00", "date_event": "2024-09-25 11:15:37", "event": "unsubscribed",
        "tag": "", "sending_ip": "192.0.2.1", "list_id": [1], "ts_sent": 1727254800, "ts_event": 1727255737,
        "ts": 1727255800
    })
}

fn source(provider: Provider, account: &str, cause: UnsubscribeCause) -> UnsubscribeSource {
    UnsubscribeSource { provider, account: AccountId::new(account), cause }
}

#[tokio::test]
async fn r_e1_an_unsubscribe_on_2024_09_25_ends_the_assignment_with_august_2024_and_the_source() {
    let stack = Stack::start().await;
    // The assignment exists before the unsubscribe it is ended by: an unsubscribe dated before the
    // assignment's start ends nothing (R-D1, R-J3; the rule-fidelity findings B2 and B16).
    stack.optigem.set_now("2024-09-01T10:00:00Z".parse().unwrap());
    let link = stack.link_brevo("NL-1", mapped("FIRSTNAME")).await;
    let max = person(&stack.optigem, "Max", Some("Muster"), "max.muster@example.com");
    let a = subscribe(&stack.optigem, &max, "NL-1");
    stack.sync().await;
    assert!(on_list(&stack, &link, "max.muster@example.com"));

    assert_eq!(stack.brevo_webhook(&brevo_unsubscribe("max.muster@example.com")).await, 200);
    assert_eq!(stack.brevo_webhook(&brevo_unsubscribe("max.muster@example.com")).await, 200, "a retry");
    stack.sync().await;
    let ended = stack.optigem.assignment(&a).unwrap();
    assert_eq!(ended.end, Some("2024-08".parse().unwrap()), "the month before the unsubscribe");
    let record = ended.unsubscription.expect("an unsubscription record");
    assert_eq!(record.date.to_string(), "2024-09-25");
    assert_eq!(record.source, source(Provider::Brevo, BREVO_ACCOUNT, UnsubscribeCause::Unsubscribed));
    assert!(!on_list(&stack, &link, "max.muster@example.com"));
    let ends = stack.commands().await.iter().filter(|c| matches!(c, OptigemCommand::EndAssignment { .. })).count();
    assert_eq!(ends, 1, "one end, however often the webhook came");
}

#[tokio::test]
async fn r_e2_a_brevo_blacklisting_ends_both_newsletters_and_leaves_both_lists() {
    let stack = Stack::start().await;
    let l1 = stack.link_brevo("NL-1", mapped("FIRSTNAME")).await;
    let l2 = stack.link_brevo("NL-2", mapped("FIRSTNAME")).await;
    stack.register_hooks(None).await;
    let max = person(&stack.optigem, "Max", Some("Muster"), "max.muster@example.com");
    let a1 = subscribe(&stack.optigem, &max, "NL-1");
    let a2 = subscribe(&stack.optigem, &max, "NL-2");
    stack.sync().await;
    assert!(on_list(&stack, &l1, "max.muster@example.com") && on_list(&stack, &l2, "max.muster@example.com"));

    // The recipient clicks the unsubscribe link of a campaign: Brevo blacklists and calls the webhook.
    assert_eq!(stack.brevo.emit_unsubscribe("max.muster@example.com", 12).await, vec![200]);
    stack.sync().await;
    for a in [&a1, &a2] {
        let a = stack.optigem.assignment(a).unwrap();
        assert!(a.end.is_some(), "ended");
        assert_eq!(
            a.unsubscription.unwrap().source,
            source(Provider::Brevo, BREVO_ACCOUNT, UnsubscribeCause::Unsubscribed)
        );
    }
    assert!(!on_list(&stack, &l1, "max.muster@example.com") && !on_list(&stack, &l2, "max.muster@example.com"));
}

#[tokio::test]
async fn r_e1_deletion_and_hard_bounce_deactivation_end_the_assignment_and_field_changes_do_nothing() {
    let stack = Stack::start().await;
    // The assignments exist before the bounce of 2024-09-25 that ends one: a deactivation dated before the
    // assignment's start ends nothing (R-D1, R-J3; the rule-fidelity findings B2 and B16).
    stack.optigem.set_now("2024-09-01T10:00:00Z".parse().unwrap());
    stack.link_brevo("NL-1", mapped("FIRSTNAME")).await;
    stack.register_hooks(None).await;
    let max = person(&stack.optigem, "Max", Some("Muster"), "max@example.com");
    let erika = person(&stack.optigem, "Erika", Some("Muster"), "erika@example.com");
    let hans = person(&stack.optigem, "Hans", Some("Muster"), "hans@example.com");
    let (a_max, a_erika, a_hans) = (
        subscribe(&stack.optigem, &max, "NL-1"),
        subscribe(&stack.optigem, &erika, "NL-1"),
        subscribe(&stack.optigem, &hans, "NL-1"),
    );
    stack.sync().await;
    let before = stack.commands().await.len();

    // R-E5: a field change inside Brevo changes nothing.
    let updated = json!({"id": 1, "email": "hans@example.com", "event": "contact_updated", "key": "k",
        "content": [{"FIRSTNAME": "Johannes"}], "date": "2024-09-25 10:00:00", "ts": 1727251200});
    assert_eq!(stack.brevo_webhook(&updated).await, 200);
    stack.sync().await;
    assert_eq!(stack.commands().await.len(), before);
    assert!(stack.optigem.assignment(&a_hans).unwrap().end.is_none());

    // Deleted in Brevo.
    assert_eq!(stack.brevo.emit_contact_deleted("max@example.com").await, vec![200]);
    // Deactivated after a hard bounce (R-E6: the deactivation counts, the bounce itself not).
    let bounce = json!({"id": 1, "camp_id": 12, "email": "erika@example.com", "event": "hard_bounce",
        "date_sent": "2024-09-25 09:00:00", "date_event": "2024-09-25 09:01:00", "reason": "mailbox unknown",
        "tag": "", "sending_ip": "192.0.2.1", "ts_sent": 1727254800, "ts_event": 1727254860, "ts": 1727254900});
    assert_eq!(stack.brevo_webhook(&bounce).await, 200);
    stack.sync().await;
    let cause = |a: &AssignmentId| stack.optigem.assignment(a).unwrap().unsubscription.map(|u| u.source.cause);
    assert_eq!(cause(&a_max), Some(UnsubscribeCause::Deleted));
    assert_eq!(cause(&a_erika), Some(UnsubscribeCause::Deactivated));
    assert_eq!(cause(&a_hans), None);
}

#[tokio::test]
async fn r_e1_cleverreach_unsubscribe_and_manual_deactivation_are_reread_and_end_the_assignment() {
    let stack = Stack::start().await;
    let link = stack.link_cleverreach("NL-1", mapped("firstname")).await;
    stack.register_hooks(Some(link.list.as_str())).await;
    let max = person(&stack.optigem, "Max", Some("Muster"), "max@example.com");
    let erika = person(&stack.optigem, "Erika", Some("Muster"), "erika@example.com");
    let (a_max, a_erika) = (subscribe(&stack.optigem, &max, "NL-1"), subscribe(&stack.optigem, &erika, "NL-1"));
    stack.sync().await;
    stack.cleverreach.settle_webhooks().await;
    stack.sync().await;
    assert!(stack.optigem.assignment(&a_max).unwrap().end.is_none(), "our own writes end nothing");

    // The recipient's own unsubscribe link; and an admin deactivating a receiver in CleverReach.
    stack.cleverreach.unsubscribe_via_link(link.list.as_str(), "max@example.com");
    let admin = optisync_cleverreach::CleverReachClient::new(
        stack.cleverreach.client_config(),
        std::sync::Arc::new(optisync_cleverreach::MemoryTokenStore::new()),
    );
    admin.set_tokens(stack.cleverreach.issue_tokens()).await;
    admin.set_inactive(link.list.as_str(), "erika@example.com").await.unwrap();
    stack.cleverreach.settle_webhooks().await;
    stack.sync().await;
    let record = |a: &AssignmentId| stack.optigem.assignment(a).unwrap().unsubscription.expect("ended");
    assert_eq!(
        record(&a_max).source,
        source(Provider::CleverReach, CLEVERREACH_ACCOUNT, UnsubscribeCause::Unsubscribed)
    );
    assert_eq!(
        record(&a_erika).source,
        source(Provider::CleverReach, CLEVERREACH_ACCOUNT, UnsubscribeCause::Deactivated)
    );
}

#[tokio::test]
async fn r_j3_a_stale_change_does_not_resubscribe_but_a_new_assignment_after_the_unsubscribe_does() {
    let stack = Stack::start().await;
    let link = stack.link_brevo("NL-1", mapped("FIRSTNAME")).await;
    let max = person(&stack.optigem, "Max", Some("Muster"), "max.muster@example.com");
    stack.optigem.set_now("2024-09-01T10:00:00Z".parse().unwrap());
    let a = subscribe(&stack.optigem, &max, "NL-1");
    stack.sync().await;

    // The unsubscribe arrives; before the connector ran the end command, OPTIGEM sends a change of the
    // still-active assignment (a name change, made before it knew of the unsubscribe).
    stack.brevo.blacklist("max.muster@example.com");
    assert_eq!(stack.brevo_webhook(&brevo_unsubscribe("max.muster@example.com")).await, 200);
    stack.deliver().await;
    stack.optigem.set_now("2024-09-25T12:00:00Z".parse().unwrap());
    stack.optigem.update_person(&max, |p| p.first_name = Some(PersonalText::new("Maximilian")));
    stack.connector.push_events(&stack.optigem).await.unwrap();
    stack.deliver().await;
    assert!(!on_list(&stack, &link, "max.muster@example.com"), "the stale change does not re-subscribe");
    assert!(stack.brevo.contact("max.muster@example.com").unwrap().email_blacklisted);
    stack.sync().await;
    assert!(stack.optigem.assignment(&a).unwrap().end.is_some());
    assert!(!on_list(&stack, &link, "max.muster@example.com"));

    // A deliberate new subscription after the unsubscribe: a new assignment.
    stack.optigem.set_now("2024-10-02T09:00:00Z".parse().unwrap());
    subscribe(&stack.optigem, &max, "NL-1");
    stack.sync().await;
    assert!(on_list(&stack, &link, "max.muster@example.com"), "re-subscribed");
    assert!(!stack.brevo.contact("max.muster@example.com").unwrap().email_blacklisted);
}

#[tokio::test]
async fn r_e3_r_c2_r_c3_r_c5_r_j1_a_signup_waits_once_and_approval_creates_exactly_one_assignment() {
    let stack = Stack::start().await;
    let link = stack.link_brevo("NL-1", mapped("FIRSTNAME")).await;
    stack.register_hooks(None).await;
    let existing = person(&stack.optigem, "Erika", Some("Muster"), "erika.alt@example.com");
    // Someone signs up through a Brevo form, with a name of their own.
    let list: i64 = link.list.as_str().parse().unwrap();
    stack.brevo.add_contact("erika@example.com", serde_json::from_value(json!({"FIRSTNAME": "Eri"})).unwrap(), &[]);
    for _ in 0..2 {
        assert_eq!(stack.brevo.emit_list_addition("erika@example.com", &[list]).await, vec![200]);
    }
    stack.sync().await;
    let erika = email("erika@example.com");
    let entry = stack.approval(&link, &erika).await.expect("queued");
    assert_eq!(entry.status, ApprovalStatus::Pending);
    let matches = stack.commands().await.iter().filter(|c| matches!(c, OptigemCommand::MatchPersons { .. })).count();
    assert_eq!(matches, 1, "one entry, one question to OPTIGEM");
    assert!(entry.signup.evidence.signup_at.is_some(), "the signup time is kept (R-J1)");

    let approvals = Approvals::new(stack.store.clone());
    // OPTIGEM answered match_persons during the sync; the admin picks Erika Muster.
    let view = approvals.view(&stack.tenant, &link.id, &erika).await.unwrap();
    assert!(view.matched);
    for _ in 0..2 {
        approvals
            .decide(&stack.tenant, &link.id, &erika, Choice::ExistingPerson(existing.clone()), chrono::Utc::now())
            .await
            .unwrap();
    }
    let calls = stack.esp_mutations();
    stack.sync().await;
    let created: Vec<Assignment> = stack
        .optigem
        .assignments_of(&NewsletterId::new("NL-1"))
        .into_iter()
        .filter(|a| a.person.id == existing)
        .collect();
    assert_eq!(created.len(), 1, "exactly one assignment");
    assert_eq!(created[0].email.as_ref(), Some(&erika), "the e-mail on the assignment (tenant default, R-B3)");
    assert!(stack.optigem.consent_of(&created[0].id).unwrap().signup_at.is_some(), "consent evidence (R-J1)");
    assert_eq!(stack.esp_mutations(), calls, "the names in Brevo stay as they were (R-C5)");
    let contact = stack.brevo.contact("erika@example.com").unwrap();
    assert_eq!(contact.attributes.get("FIRSTNAME").and_then(|v| v.as_str()), Some("Eri"));
    assert!(on_list(&stack, &link, "erika@example.com"));
    let view = approvals.view(&stack.tenant, &link.id, &erika).await.unwrap();
    assert!(matches!(view.created, Some(CommandResult::Done { assignment: Some(_), .. })), "the mapping is recorded");
}

/// R-E3, R-C3: Max Muster signs up through a Brevo form; the contact has FIRSTNAME Max and LASTNAME Muster,
/// both mapped, and Brevo's `list_addition` names neither. The worker reads the contact back once: the
/// approval entry has his names, OPTIGEM is asked for suggestions with them, and a `create` decision makes
/// a new person "Max Muster" with the assignment.
#[tokio::test]
async fn r_e3_r_c3_a_brevo_form_signup_reaches_the_queue_with_its_names_and_create_makes_the_named_person() {
    let stack = Stack::start().await;
    let settings = LinkSettings {
        mapping: FieldMapping {
            first_name: Some(AttributeName::new("FIRSTNAME")),
            last_name: Some(AttributeName::new("LASTNAME")),
            ..Default::default()
        },
        ..Default::default()
    };
    let link = stack.link_brevo("NL-1", settings).await;
    stack.register_hooks(None).await;
    let list: i64 = link.list.as_str().parse().unwrap();
    let names = serde_json::from_value(json!({"FIRSTNAME": "Max", "LASTNAME": "Muster"})).unwrap();
    stack.brevo.add_contact("max.muster@example.com", names, &[]);
    stack.brevo.clear_request_log();
    assert_eq!(stack.brevo.emit_list_addition("max.muster@example.com", &[list]).await, vec![200]);
    stack.sync().await;

    let max = email("max.muster@example.com");
    let entry = stack.approval(&link, &max).await.expect("queued");
    assert_eq!(entry.status, ApprovalStatus::Pending);
    let text = |t: &Option<PersonalText>| t.as_ref().map(|t| t.expose().to_owned());
    assert_eq!(
        (text(&entry.signup.first_name), text(&entry.signup.last_name)),
        (Some("Max".into()), Some("Muster".into()))
    );
    assert_eq!(stack.brevo.calls("GET", "/contacts/max.muster@example.com"), 1, "read back once");
    let asked: Vec<_> = stack
        .commands()
        .await
        .into_iter()
        .filter_map(|c| match c {
            OptigemCommand::MatchPersons { first_name, last_name, .. } => Some((text(&first_name), text(&last_name))),
            _ => None,
        })
        .collect();
    assert_eq!(asked, [(Some("Max".to_owned()), Some("Muster".to_owned()))], "suggestions by the names");

    let approvals = Approvals::new(stack.store.clone());
    approvals.decide(&stack.tenant, &link.id, &max, Choice::NewPerson, chrono::Utc::now()).await.unwrap();
    stack.sync().await;
    let created: Vec<Assignment> = stack
        .optigem
        .assignments_of(&NewsletterId::new("NL-1"))
        .into_iter()
        .filter(|a| a.email.as_ref() == Some(&max) || a.person.emails.iter().any(|e| e.email == max))
        .collect();
    assert_eq!(created.len(), 1, "one assignment");
    let person = &created[0].person;
    assert_eq!((text(&person.first_name), text(&person.last_name)), (Some("Max".into()), Some("Muster".into())));
}
