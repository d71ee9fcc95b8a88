//! R-J3 end to end over the fake Brevo and the simulated OPTIGEM: an unsubscribed address is not
//! re-subscribed by an e-mail change in OPTIGEM (B7) nor by an approval decided before the unsubscribe
//! and carried out by the connector after it (B8).

use optisync_app::approvals::{Approvals, Choice};
use optisync_domain::*;
use optisync_e2e::{BREVO_ACCOUNT, Stack, email, person, subscribe};
use serde_json::json;

fn mapped() -> LinkSettings {
    LinkSettings {
        mapping: FieldMapping { first_name: Some(AttributeName::new("FIRSTNAME")), ..Default::default() },
        ..Default::default()
    }
}

fn on_list(stack: &Stack, link: &Link, mail: &str) -> bool {
    let list: i64 = link.list.as_str().parse().unwrap();
    stack.brevo.contact(mail).is_some_and(|c| c.list_ids.contains(&list))
}

fn blacklisted(stack: &Stack, mail: &str) -> bool {
    stack.brevo.contact(mail).is_some_and(|c| c.email_blacklisted)
}

/// Brevo's `unsubscribed` marketing event at a UTC instant ("2024-09-25 09:15:37").
fn brevo_unsubscribe(mail: &str, utc: &str, ts: i64) -> serde_json::Value {
    json!({
        "id": 1, "camp_id": 12, "email": mail, "campaign name": "Rundbrief September",
        "date_sent": utc, "date_event": utc, "event": "unsubscribed", "tag": "", "sending_ip": "192.0.2.1",
        "list_id": [1], "ts_sent": ts - 600, "ts_event": ts, "ts": ts + 60
    })
}

/// Brevo's `list_addition` event (a form signup) at a UTC instant.
fn brevo_list_addition(mail: &str, list: i64, utc: &str, ts: i64) -> serde_json::Value {
    json!({"id": 1, "email": mail, "event": "list_addition", "key": "k", "list_id": [list], "date": utc, "ts": ts})
}

fn unsubscribed_by_brevo() -> UnsubscribeSource {
    UnsubscribeSource {
        provider: Provider::Brevo,
        account: AccountId::new(BREVO_ACCOUNT),
        cause: UnsubscribeCause::Unsubscribed,
    }
}

/// B7: Max unsubscribes from "Rundbrief" on 2024-09-25; on 2024-10-05 staff set Erika's standard e-mail
/// (her assignment is active) to Max's address. The address stays on Brevo's blacklist and off the list;
/// Erika's assignment is ended as of the change (end "September 2024", dated 2024-10-05, source Brevo),
/// like every assignment of the newsletter with that address (R-C4, R-E1; the reasoning is in the
/// planner's test of the same name).
#[tokio::test]
async fn r_j3_an_email_change_to_an_address_that_unsubscribed_does_not_resubscribe_it() {
    let stack = Stack::start().await;
    stack.optigem.set_now("2024-09-01T10:00:00Z".parse().unwrap());
    let link = stack.link_brevo("rundbrief", mapped()).await;
    let max = person(&stack.optigem, "Max", Some("Muster"), "max.muster@example.com");
    let erika = person(&stack.optigem, "Erika", Some("Muster"), "erika.muster@example.com");
    let a_max = subscribe(&stack.optigem, &max, "rundbrief");
    let a_erika = subscribe(&stack.optigem, &erika, "rundbrief");
    stack.sync().await;
    assert!(on_list(&stack, &link, "max.muster@example.com") && on_list(&stack, &link, "erika.muster@example.com"));

    stack.brevo.blacklist("max.muster@example.com");
    let unsubscribe = brevo_unsubscribe("max.muster@example.com", "2024-09-25 09:15:37", 1_727_255_737);
    assert_eq!(stack.brevo_webhook(&unsubscribe).await, 200);
    stack.sync().await;
    assert_eq!(stack.optigem.assignment(&a_max).unwrap().end, Some("2024-08".parse().unwrap()));

    stack.optigem.set_now("2024-10-05T10:00:00Z".parse().unwrap());
    stack.optigem.update_person(&erika, |p| {
        p.emails = vec![RankedEmail { email: email("max.muster@example.com"), priority: 1 }];
    });
    stack.sync().await;
    assert!(blacklisted(&stack, "max.muster@example.com"), "max@ stays on the blacklist");
    assert!(!on_list(&stack, &link, "max.muster@example.com"), "max@ is not put on the list again");
    assert!(!on_list(&stack, &link, "erika.muster@example.com"), "the old address leaves the list (R-D4)");
    let ended = stack.optigem.assignment(&a_erika).unwrap();
    assert_eq!(ended.end, Some("2024-09".parse().unwrap()), "Erika received September at her old address");
    let record = ended.unsubscription.expect("an unsubscription record");
    assert_eq!(record.date.to_string(), "2024-10-05");
    assert_eq!(record.source, unsubscribed_by_brevo());
}

/// B8: Max signs up through a Brevo form on 2024-09-01; the signup is approved on 2024-09-05 and the
/// `create_assignment` waits in the connector's feed; Max unsubscribes on 2024-09-10; the connector runs
/// the command on 2024-09-12. The new assignment does not take Max off the blacklist nor put him on the
/// list: it is ended (end "August 2024", dated 2024-09-10, source Brevo).
#[tokio::test]
async fn r_j3_an_approval_decided_before_the_unsubscribe_and_carried_out_after_it_resubscribes_nobody() {
    let stack = Stack::start().await;
    stack.optigem.set_now("2024-09-01T08:00:00Z".parse().unwrap());
    let link = stack.link_brevo("rundbrief", mapped()).await;
    let list: i64 = link.list.as_str().parse().unwrap();
    let max = person(&stack.optigem, "Max", Some("Muster"), "max.muster@example.com");
    let attributes = serde_json::from_value(json!({"FIRSTNAME": "Max"})).unwrap();
    stack.brevo.add_contact("max.muster@example.com", attributes, &[list]);
    let signup = brevo_list_addition("max.muster@example.com", list, "2024-09-01 08:00:00", 1_725_177_600);
    assert_eq!(stack.brevo_webhook(&signup).await, 200);
    stack.sync().await;
    let mail = email("max.muster@example.com");
    assert_eq!(stack.approval(&link, &mail).await.expect("queued").status, ApprovalStatus::Pending);

    let approvals = Approvals::new(stack.store.clone());
    let decided = "2024-09-05T10:00:00Z".parse().unwrap();
    approvals.decide(&stack.tenant, &link.id, &mail, Choice::ExistingPerson(max.clone()), decided).await.unwrap();
    // The command waits in the feed: the connector does not run before 2024-09-12.
    stack.brevo.blacklist("max.muster@example.com");
    let unsubscribe = brevo_unsubscribe("max.muster@example.com", "2024-09-10 09:15:37", 1_725_959_737);
    assert_eq!(stack.brevo_webhook(&unsubscribe).await, 200);
    stack.deliver().await;
    assert!(!on_list(&stack, &link, "max.muster@example.com"));

    stack.optigem.set_now("2024-09-12T08:00:00Z".parse().unwrap());
    stack.sync().await;
    let created: Vec<Assignment> = stack
        .optigem
        .assignments_of(&NewsletterId::new("rundbrief"))
        .into_iter()
        .filter(|a| a.person.id == max)
        .collect();
    assert_eq!(created.len(), 1, "the approval's command ran exactly once");
    assert!(blacklisted(&stack, "max.muster@example.com"), "not taken off the blacklist");
    assert!(!on_list(&stack, &link, "max.muster@example.com"), "not put on the list again");
    let ended = stack.optigem.assignment(&created[0].id).unwrap();
    assert_eq!(ended.end, Some("2024-08".parse().unwrap()));
    let record = ended.unsubscription.expect("an unsubscription record");
    assert_eq!(record.date.to_string(), "2024-09-10");
    assert_eq!(record.source, unsubscribed_by_brevo());
}
