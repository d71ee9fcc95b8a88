//! Erasure mode end to end (R-J2, R-J3): Brevo's unsubscribe webhook on a link in erasure mode, OPTIGEM's
//! connector carries out the `end_assignment` and reports it, then the contact is deleted at the fake
//! Brevo and one `erasure_report` goes to the connector's feed.

use optisync_domain::*;
use optisync_e2e::{Stack, person, subscribe};
use optisync_ports::{Erasures, SyncState};

fn erasure() -> LinkSettings {
    LinkSettings { unsubscribe_mode: UnsubscribeMode::Erasure, ..Default::default() }
}

#[tokio::test]
async fn r_j2_a_brevo_unsubscribe_on_an_erasure_link_deletes_the_contact_once_optigem_ended_the_assignment() {
    let stack = Stack::start().await;
    stack.optigem.set_now("2024-09-01T10:00:00Z".parse().unwrap());
    let link = stack.link_brevo("Rundbrief", erasure()).await;
    stack.register_hooks(None).await;
    let max = person(&stack.optigem, "Max", Some("Muster"), "max.muster@example.com");
    let a = subscribe(&stack.optigem, &max, "Rundbrief");
    stack.sync().await;
    let list: i64 = link.list.as_str().parse().unwrap();
    assert!(stack.brevo.contact("max.muster@example.com").is_some_and(|c| c.list_ids.contains(&list)));

    assert_eq!(stack.brevo.emit_unsubscribe("max.muster@example.com", 12).await, vec![200]);
    stack.sync().await;
    assert!(stack.optigem.assignment(&a).unwrap().end.is_some(), "OPTIGEM ended the assignment");
    assert!(stack.brevo.contact("max.muster@example.com").is_none(), "the contact is deleted at Brevo");
    let reports =
        stack.commands().await.into_iter().filter(|c| matches!(c, OptigemCommand::ErasureReport { .. })).count();
    assert_eq!(reports, 1, "exactly one erasure_report");
    let mail = Email::parse("max.muster@example.com").unwrap();
    assert!(stack.store.erased(&stack.tenant, &mail).await.unwrap().is_some(), "the store keeps the hash");
    let slice = optisync_ports::Slice { assignments: vec![], emails: vec![mail] };
    let seen = stack.store.load(&link, &slice).await.unwrap().view;
    assert!(seen.approvals.is_empty(), "no approval is left");
    // The erasure drops the link's R-J6 tombstone item too: the tenant's erased marker is all that is left.
    assert!(seen.recipients.is_empty(), "no recipient state is left: {:?}", seen.recipients);
}

/// R-J2: Max Muster reads "Rundbrief" (erasure mode) and "Gemeindebrief" (classic) from one Brevo
/// account. His unsubscribe link blacklists the contact account-wide, which ends both assignments; once
/// OPTIGEM confirmed the end, the erasure link cannot delete the contact, because the classic link keeps
/// its unsubscribed recipients in Brevo: the contact stays, leaves the "Rundbrief" list, and the report
/// says why it was kept.
#[tokio::test]
async fn r_j2_a_contact_a_classic_link_of_the_same_account_holds_is_kept_and_the_report_says_why() {
    let stack = Stack::start().await;
    stack.optigem.set_now("2024-09-01T10:00:00Z".parse().unwrap());
    let rundbrief = stack.link_brevo("Rundbrief", erasure()).await;
    let gemeindebrief = stack.link_brevo("Gemeindebrief", LinkSettings::default()).await;
    stack.register_hooks(None).await;
    let max = person(&stack.optigem, "Max", Some("Muster"), "max.muster@example.com");
    subscribe(&stack.optigem, &max, "Rundbrief");
    subscribe(&stack.optigem, &max, "Gemeindebrief");
    stack.sync().await;
    let list = |link: &Link| -> i64 { link.list.as_str().parse().unwrap() };
    let lists = stack.brevo.contact("max.muster@example.com").map(|c| c.list_ids).unwrap_or_default();
    assert!(lists.contains(&list(&rundbrief)) && lists.contains(&list(&gemeindebrief)), "{lists:?}");

    assert_eq!(stack.brevo.emit_unsubscribe("max.muster@example.com", 12).await, vec![200]);
    stack.sync().await;
    let contact = stack.brevo.contact("max.muster@example.com").expect("the contact is kept");
    assert!(!contact.list_ids.contains(&list(&rundbrief)), "it left the erasure link's list: {:?}", contact.list_ids);
    let reports: Vec<_> = stack
        .commands()
        .await
        .into_iter()
        .filter_map(|c| match c {
            OptigemCommand::ErasureReport { link, deleted, kept, .. } => Some((link, deleted, kept)),
            _ => None,
        })
        .collect();
    assert_eq!(reports.len(), 1, "one report, of the erasure link: {reports:?}");
    let (link, deleted, kept) = &reports[0];
    assert_eq!(link, &rundbrief.id);
    assert!(!deleted.iter().any(|d| d.system == "brevo" && d.item == "contact"), "{deleted:?}");
    let why = kept.iter().find(|k| k.system == "brevo" && k.item == "contact").expect("the kept contact");
    assert!(why.reason.contains(gemeindebrief.id.as_str()) && why.reason.contains("classic"), "{}", why.reason);
}

/// After the erasure OPTIGEM reports the ended assignment as a change with a newer version (2): the
/// mirror keeps its id and version and names nobody (R-J2).
#[tokio::test]
async fn r_j2_after_the_erasure_the_mirror_names_nobody() {
    let stack = Stack::start().await;
    stack.optigem.set_now("2024-09-01T10:00:00Z".parse().unwrap());
    let link = stack.link_brevo("Rundbrief", erasure()).await;
    stack.register_hooks(None).await;
    let max = person(&stack.optigem, "Max", Some("Muster"), "max.muster@example.com");
    subscribe(&stack.optigem, &max, "Rundbrief");
    stack.sync().await;
    assert_eq!(stack.brevo.emit_unsubscribe("max.muster@example.com", 12).await, vec![200]);
    stack.sync().await;
    let slice = optisync_ports::Slice { assignments: vec![AssignmentId::new("A-1")], emails: vec![] };
    let seen = stack.store.load(&link, &slice).await.unwrap().view;
    assert!(
        seen.mirror.values().all(|e| e.email.is_none() && e.snapshot.is_none()),
        "the mirror names nobody: {:?}",
        seen.mirror
            .values()
            .map(|e| (e.id.clone(), e.version, e.email.is_some(), e.snapshot.is_some(), e.end_requested.clone()))
            .collect::<Vec<_>>()
    );
}

/// R-J3: a new assignment that OPTIGEM creates after the erasure is a deliberate subscription: Max is
/// subscribed to the "Rundbrief" again and the contact is created at the fake Brevo anew.
#[tokio::test]
async fn r_j2_r_j3_a_new_assignment_after_the_erasure_subscribes_again() {
    let stack = Stack::start().await;
    stack.optigem.set_now("2024-09-01T10:00:00Z".parse().unwrap());
    let link = stack.link_brevo("Rundbrief", erasure()).await;
    stack.register_hooks(None).await;
    let max = person(&stack.optigem, "Max", Some("Muster"), "max.muster@example.com");
    subscribe(&stack.optigem, &max, "Rundbrief");
    stack.sync().await;
    assert_eq!(stack.brevo.emit_unsubscribe("max.muster@example.com", 12).await, vec![200]);
    stack.sync().await;
    assert!(stack.brevo.contact("max.muster@example.com").is_none(), "erased");

    // After the unsubscribe (which the fake Brevo dates by the wall clock): a day later.
    let later = chrono::Utc::now() + chrono::Duration::days(1);
    stack.optigem.set_now(later);
    stack.clock.travel_to(later);
    subscribe(&stack.optigem, &max, "Rundbrief");
    stack.sync().await;
    let list: i64 = link.list.as_str().parse().unwrap();
    assert!(
        stack.brevo.contact("max.muster@example.com").is_some_and(|c| c.list_ids.contains(&list)),
        "subscribed again by the new assignment"
    );
}

/// R-J4 (B18): an admin blacklists Max Muster through Brevo's API (`PUT /v3/contacts/{email}`
/// `{"emailBlacklisted":true}`); the next reconciliation finds the contact blacklisted, whose author
/// Brevo does not tell: the assignment is ended, but nothing is erased.
#[tokio::test]
async fn r_j4_an_api_blacklisting_on_an_erasure_link_erases_nothing() {
    let stack = Stack::start().await;
    stack.optigem.set_now("2024-09-01T10:00:00Z".parse().unwrap());
    let link = stack.link_brevo("Rundbrief", erasure()).await;
    let max = person(&stack.optigem, "Max", Some("Muster"), "max.muster@example.com");
    let a = subscribe(&stack.optigem, &max, "Rundbrief");
    stack.sync().await;
    let status = reqwest::Client::new()
        .put(format!("{}/contacts/max.muster@example.com", stack.brevo.base_url()))
        .header("api-key", stack.brevo.api_key())
        .json(&serde_json::json!({ "emailBlacklisted": true }))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
    stack.reconcile_to_end(&link).await;
    stack.sync().await;
    assert!(stack.optigem.assignment(&a).unwrap().end.is_some(), "the blacklisting was found and ended the assignment");
    assert!(stack.brevo.contact("max.muster@example.com").is_some(), "the contact is still there");
    let reports =
        stack.commands().await.into_iter().filter(|c| matches!(c, OptigemCommand::ErasureReport { .. })).count();
    assert_eq!(reports, 0, "no erasure_report");
    let mail = Email::parse("max.muster@example.com").unwrap();
    assert!(stack.store.erased(&stack.tenant, &mail).await.unwrap().is_none(), "nothing erased");
}

/// R-J2: Max Muster clicks CleverReach's unsubscribe link on the "Rundbrief" group of a link in erasure
/// mode; once OPTIGEM ended the assignment, the receiver is deleted from the group at the fake
/// CleverReach and one `erasure_report` goes to the feed.
#[tokio::test]
async fn r_j2_a_cleverreach_unsubscribe_on_an_erasure_link_deletes_the_receiver_from_the_group() {
    let stack = Stack::start().await;
    stack.optigem.set_now("2024-09-01T10:00:00Z".parse().unwrap());
    let link = stack.link_cleverreach("Rundbrief", erasure()).await;
    stack.register_hooks(Some(link.list.as_str())).await;
    let max = person(&stack.optigem, "Max", Some("Muster"), "max.muster@example.com");
    let a = subscribe(&stack.optigem, &max, "Rundbrief");
    stack.sync().await;
    stack.cleverreach.settle_webhooks().await;
    stack.sync().await;
    assert!(stack.cleverreach.receiver(link.list.as_str(), "max.muster@example.com").is_some());

    stack.cleverreach.unsubscribe_via_link(link.list.as_str(), "max.muster@example.com");
    stack.cleverreach.settle_webhooks().await;
    stack.sync().await;
    assert!(stack.optigem.assignment(&a).unwrap().end.is_some(), "OPTIGEM ended the assignment");
    assert!(
        stack.cleverreach.receiver(link.list.as_str(), "max.muster@example.com").is_none(),
        "the receiver is deleted from the group"
    );
    let reports =
        stack.commands().await.into_iter().filter(|c| matches!(c, OptigemCommand::ErasureReport { .. })).count();
    assert_eq!(reports, 1, "exactly one erasure_report");
}
