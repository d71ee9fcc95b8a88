//! The scheduled run end to end, over the fake ESPs (through the real clients and the ESP router) and the
//! simulated OPTIGEM with its connector: a webhook that never came is caught (R-E1, R-E2, R-E7), an
//! address changed inside the ESP becomes an end plus a signup (R-E4), and the first sync of a new link
//! goes through the connector's export (R-F1…F5).

use optisync_app::reconcile::RunOutcome;
use optisync_domain::*;
use optisync_e2e::{BREVO_ACCOUNT, Stack};
use optisync_optigem_sim::{AssignmentDraft, PersonDraft, SimOptigem};

fn person(sim: &SimOptigem, first: &str, mail: &str) -> PersonId {
    sim.add_person(PersonDraft { first_name: Some(first.into()), emails: vec![(mail.into(), 1)], ..Default::default() })
}

fn subscribe(sim: &SimOptigem, person: &PersonId, newsletter: &str) -> AssignmentId {
    sim.add_assignment(person, &NewsletterId::new(newsletter), AssignmentDraft::default())
}

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

fn finished(outcome: RunOutcome) -> optisync_app::reconcile::Finished {
    match outcome {
        RunOutcome::Finished(f) => f,
        other => panic!("expected a finished run, got {other:?}"),
    }
}

fn today() -> chrono::NaiveDate {
    berlin_date(chrono::Utc::now())
}

#[tokio::test]
async fn r_e7_a_brevo_unsubscribe_whose_webhook_never_came_is_caught_by_the_next_run() {
    let stack = Stack::start().await;
    let link = stack.link_brevo("NL-1", mapped()).await;
    let max = person(&stack.optigem, "Max", "max.muster@example.com");
    let a = subscribe(&stack.optigem, &max, "NL-1");
    stack.sync().await;
    assert!(on_list(&stack, &link, "max.muster@example.com"));

    // Max unsubscribes in Brevo (the account-wide blacklist); the webhook is lost.
    assert!(stack.brevo.blacklist("max.muster@example.com"));
    let run = finished(stack.reconcile(&link).await);
    assert_eq!(run.counts.ended, 1);
    stack.sync().await;
    let ended = stack.optigem.assignment(&a).unwrap();
    assert_eq!(ended.end, Some(YearMonth::of(today()).prev()), "R-E1: the month before the run's month");
    let record = ended.unsubscription.expect("an unsubscription record");
    assert_eq!(record.date, today());
    assert_eq!(record.source.provider, Provider::Brevo);
    assert_eq!(record.source.account, AccountId::new(BREVO_ACCOUNT));
    assert!(!on_list(&stack, &link, "max.muster@example.com"), "R-E2: off the list too");

    let again = finished(stack.reconcile(&link).await);
    assert_eq!((again.counts.inputs, again.counts.deferred), (0, 0), "the next run finds nothing to do");
}

#[tokio::test]
async fn r_e4_an_address_changed_in_brevo_ends_the_old_assignment_and_queues_the_new_address() {
    let stack = Stack::start().await;
    let link = stack.link_brevo("NL-1", mapped()).await;
    let max = person(&stack.optigem, "Max", "max@example.com");
    let a = subscribe(&stack.optigem, &max, "NL-1");
    stack.sync().await;
    assert!(on_list(&stack, &link, "max@example.com"));

    // In Brevo, Max's address becomes max.muster@…: the old contact is gone, the new one is on the list.
    let list: i64 = link.list.as_str().parse().unwrap();
    let client = optisync_brevo::BrevoClient::new(optisync_brevo::BrevoConfig::new(
        stack.brevo.base_url(),
        optisync_brevo::ApiKey::new(stack.brevo.api_key()),
    ))
    .unwrap();
    assert!(client.delete_contact("max@example.com").await.unwrap());
    stack.brevo.add_contact("max.muster@example.com", Default::default(), &[list]);

    finished(stack.reconcile(&link).await);
    stack.sync().await;
    let ended = stack.optigem.assignment(&a).unwrap();
    assert_eq!(ended.end, Some(YearMonth::of(today()).prev()), "R-E1: the old recipient was deleted");
    assert_eq!(ended.unsubscription.map(|u| u.source.cause), Some(UnsubscribeCause::Deleted));
    let entry = stack.approval(&link, &optisync_e2e::email("max.muster@example.com")).await.expect("R-E3");
    assert_eq!(entry.status, ApprovalStatus::Pending);
    let matches = stack.commands().await.iter().filter(|c| matches!(c, OptigemCommand::MatchPersons { .. })).count();
    assert_eq!(matches, 1, "OPTIGEM is asked for suggestions once");
}

#[tokio::test]
async fn r_f1_to_r_f5_the_first_sync_of_a_cleverreach_link_goes_through_the_connectors_export() {
    let stack = Stack::start().await;
    let mut link = stack.link_cleverreach("NL-1", LinkSettings::default()).await;
    link.status = LinkStatus::Linking;
    stack.store.put_link(&link).await.unwrap();
    let t = chrono::Utc::now().timestamp() - 3600;
    // In the group before linking: Lena (unknown to OPTIGEM) and Erika (deactivated).
    stack.cleverreach.add_receiver(link.list.as_str(), "lena@example.com", t, 0, &[("firstname", "Lena")]);
    stack.cleverreach.add_receiver(link.list.as_str(), "erika@example.com", t, t + 60, &[]);
    let anna = person(&stack.optigem, "Anna", "anna@example.com");
    let erika = person(&stack.optigem, "Erika", "erika@example.com");
    subscribe(&stack.optigem, &anna, "NL-1");
    let a_erika = subscribe(&stack.optigem, &erika, "NL-1");

    use optisync_ports::StateStore;
    let RunOutcome::Waiting(_) = stack.reconcile(&link).await else { panic!("the run waits for the export") };
    stack.sync().await; // the connector exports the newsletter and reports it
    finished(stack.reconcile(&link).await);
    stack.sync().await; // and executes what the first sync asked for

    let links = stack.store.links(&stack.tenant).await.unwrap();
    assert_eq!(links[0].status, LinkStatus::Linked, "R-F1");
    let anna_r = stack.cleverreach.receiver(link.list.as_str(), "anna@example.com").expect("R-F2: created");
    assert!(anna_r.active, "R-F3: on the list, active");
    let erika_r = stack.cleverreach.receiver(link.list.as_str(), "erika@example.com").unwrap();
    assert!(!erika_r.active, "R-F3: stays inactive");
    assert!(stack.optigem.assignment(&a_erika).unwrap().end.is_some(), "R-F5: her assignment is ended");
    let lena = stack.approval(&link, &optisync_e2e::email("lena@example.com")).await.expect("R-F4");
    assert_eq!(lena.status, ApprovalStatus::Pending);
    assert!(stack.approval(&link, &optisync_e2e::email("anna@example.com")).await.is_none());
}
