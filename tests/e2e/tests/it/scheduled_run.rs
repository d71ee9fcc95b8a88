//! The scheduled run end to end, over the fake ESPs (through the real clients and the ESP router) and the
//! simulated OPTIGEM with its connector: a webhook that never came is caught (R-E1, R-E2, R-E7), an
//! address changed inside the ESP becomes an end plus a signup (R-E4), and the first sync of a new link
//! goes through the connector's export (R-F1…F5), an assignment whose change event was lost is added by
//! the run's export (R-D1, R-E7), an assignment ending "April 2024" leaves the list on the run of
//! 2024-05-01 (R-A9), a CleverReach segment is imported (R-G1…G5), and CleverReach's account-wide
//! blacklist ends every newsletter of the account while a blocked hard bounce is only reported (R-E9).

use optisync_app::reconcile::RunOutcome;
use optisync_domain::*;
use optisync_e2e::{BREVO_ACCOUNT, Stack, person, subscribe};
use optisync_optigem_sim::AssignmentDraft;

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
    let max = person(&stack.optigem, "Max", None, "max.muster@example.com");
    let a = subscribe(&stack.optigem, &max, "NL-1");
    stack.sync().await;
    assert!(on_list(&stack, &link, "max.muster@example.com"));

    // Max unsubscribes in Brevo (the account-wide blacklist); the webhook is lost.
    assert!(stack.brevo.blacklist("max.muster@example.com"));
    let run = finished(stack.reconcile_to_end(&link).await);
    assert_eq!(run.counts.ended, 1);
    stack.sync().await;
    let ended = stack.optigem.assignment(&a).unwrap();
    assert_eq!(ended.end, Some(YearMonth::of(today()).prev()), "R-E1: the month before the run's month");
    let record = ended.unsubscription.expect("an unsubscription record");
    assert_eq!(record.date, today());
    assert_eq!(record.source.provider, Provider::Brevo);
    assert_eq!(record.source.account, AccountId::new(BREVO_ACCOUNT));
    assert!(!on_list(&stack, &link, "max.muster@example.com"), "R-E2: off the list too");

    let again = finished(stack.reconcile_to_end(&link).await);
    assert_eq!((again.counts.inputs, again.counts.deferred), (0, 0), "the next run finds nothing to do");
}

#[tokio::test]
async fn r_e4_an_address_changed_in_brevo_ends_the_old_assignment_and_queues_the_new_address() {
    let stack = Stack::start().await;
    let link = stack.link_brevo("NL-1", mapped()).await;
    let max = person(&stack.optigem, "Max", None, "max@example.com");
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

    finished(stack.reconcile_to_end(&link).await);
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
    let anna = person(&stack.optigem, "Anna", None, "anna@example.com");
    let erika = person(&stack.optigem, "Erika", None, "erika@example.com");
    subscribe(&stack.optigem, &anna, "NL-1");
    let a_erika = subscribe(&stack.optigem, &erika, "NL-1");

    use optisync_ports::prelude::*;
    let RunOutcome::Waiting(_) = stack.reconcile(&link).await else { panic!("the run waits for the export") };
    stack.sync().await; // the connector exports the newsletter and reports it
    finished(stack.reconcile_to_end(&link).await);
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

fn berlin(y: i32, m: u32, d: u32, h: u32) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono_tz::Europe::Berlin.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap().with_timezone(&chrono::Utc)
}

#[tokio::test]
async fn r_a9_an_assignment_ending_april_2024_leaves_the_list_on_the_run_of_2024_05_01_without_any_event() {
    let stack = Stack::start().await;
    stack.clock.travel_to(berlin(2024, 4, 10, 12));
    stack.optigem.set_now(berlin(2024, 4, 10, 12));
    let link = stack.link_brevo("NL-1", mapped()).await;
    let max = person(&stack.optigem, "Max", None, "max@example.com");
    let erika = person(&stack.optigem, "Erika", None, "erika@example.com");
    let april = AssignmentDraft { end: Some("2024-04".parse().unwrap()), ..Default::default() };
    let a_max = stack.optigem.add_assignment(&max, &NewsletterId::new("NL-1"), april);
    subscribe(&stack.optigem, &erika, "NL-1");
    stack.sync().await;
    assert!(on_list(&stack, &link, "max@example.com") && on_list(&stack, &link, "erika@example.com"));
    let before = stack.optigem.assignment(&a_max).unwrap();

    stack.clock.travel_to(berlin(2024, 4, 30, 23));
    finished(stack.reconcile_to_end(&link).await);
    assert!(on_list(&stack, &link, "max@example.com"), "April is not over yet");

    // No change event: only the date moves on.
    stack.clock.travel_to(berlin(2024, 5, 1, 6));
    assert_eq!(stack.optigem.pending_events(), 0);
    let run = finished(stack.reconcile_to_end(&link).await);
    assert!(run.error.is_none());
    assert!(!on_list(&stack, &link, "max@example.com"), "R-A2: the end month has passed");
    assert!(on_list(&stack, &link, "erika@example.com"));
    assert!(!stack.brevo.contact("max@example.com").unwrap().email_blacklisted, "off the list, not blacklisted");
    let ends = stack.commands().await.iter().filter(|c| matches!(c, OptigemCommand::EndAssignment { .. })).count();
    assert_eq!(ends, 0, "OPTIGEM already knows: nothing is asked of it");
    assert_eq!(stack.optigem.assignment(&a_max).unwrap(), before, "the assignment is as OPTIGEM keeps it");

    let mutations = stack.esp_mutations();
    let again = finished(stack.reconcile_to_end(&link).await);
    assert_eq!((again.counts.inputs, again.counts.esp_operations, stack.esp_mutations()), (0, 0, mutations));
}

#[tokio::test]
async fn r_d1_r_e7_an_assignment_whose_change_event_was_lost_is_added_by_the_runs_export() {
    let stack = Stack::start().await;
    let link = stack.link_brevo("NL-1", mapped()).await;
    let max = person(&stack.optigem, "Max", None, "max@example.com");
    subscribe(&stack.optigem, &max, "NL-1");
    stack.sync().await;
    let erika = person(&stack.optigem, "Erika", None, "erika@example.com");
    subscribe(&stack.optigem, &erika, "NL-1");
    assert_eq!(stack.optigem.take_events().len(), 1, "the change event is lost");
    stack.sync().await;
    assert!(!on_list(&stack, &link, "erika@example.com"));

    let run = finished(stack.reconcile_to_end(&link).await);
    assert_eq!((run.counts.imported, run.counts.created), (2, 1));
    assert!(on_list(&stack, &link, "erika@example.com"), "R-D1 by the reconciliation");
    let contact = stack.brevo.contact("erika@example.com").unwrap();
    assert_eq!(contact.attributes.get("FIRSTNAME").and_then(|v| v.as_str()), Some("Erika"), "R-D3");
}

#[tokio::test]
async fn r_g1_to_r_g5_a_cleverreach_segment_is_imported_and_members_leaving_it_end_their_assignment() {
    use optisync_cleverreach::model::FilterRule;
    use optisync_ports::prelude::*;
    let stack = Stack::start().await;
    let mut link = stack.link_cleverreach("NL-1", LinkSettings::default()).await;
    let group = link.list.as_str().to_owned();
    stack.cleverreach.add_global_attribute("region", "text");
    let t = chrono::Utc::now().timestamp() - 3600;
    for (mail, region) in [("max", "north"), ("lena", "north"), ("paul", "south"), ("erika", "north")] {
        stack.cleverreach.add_receiver(&group, &format!("{mail}@example.com"), t, 0, &[("region", region)]);
    }
    let rule =
        FilterRule { operator: "AND".into(), field: "region".into(), logic: "eq".into(), condition: "north".into() };
    let north = stack.cleverreach.add_filter(&group, "Nord", "AND", vec![rule]);
    link.segment = Some(SegmentId::new(north));
    stack.store.put_link(&link).await.unwrap();
    // Max and Erika are assigned in OPTIGEM; Paul is assigned by hand, though not in the segment.
    let mut assignments = std::collections::BTreeMap::new();
    for name in ["max", "erika", "paul"] {
        let p = person(&stack.optigem, name, None, &format!("{name}@example.com"));
        assignments.insert(name, subscribe(&stack.optigem, &p, "NL-1"));
    }
    stack.cleverreach.clear_log();
    stack.sync().await;
    assert_eq!(stack.cleverreach.mutating_calls(), 0, "R-G2: nothing flows from OPTIGEM into the segment's group");

    let run = finished(stack.reconcile_to_end(&link).await);
    assert_eq!((run.counts.queued, run.counts.ended), (1, 1));
    stack.sync().await;
    let ended = |name: &str| stack.optigem.assignment(&assignments[name]).unwrap().end.is_some();
    assert!(ended("paul"), "R-G4: not in the segment → ended");
    assert!(!ended("max") && !ended("erika"), "R-G1: segment members keep their assignments");
    let lena = stack.approval(&link, &optisync_e2e::email("lena@example.com")).await.expect("R-G3: queued");
    assert_eq!(lena.status, ApprovalStatus::Pending);

    // R-G4: Max leaves the segment in CleverReach (his region changes) → ended on the next run.
    stack.cleverreach.add_receiver(&group, "max@example.com", t, 0, &[("region", "south")]);
    finished(stack.reconcile_to_end(&link).await);
    stack.sync().await;
    assert!(ended("max"), "R-G4: left the segment");
    let max = stack.optigem.assignment(&assignments["max"]).unwrap();
    assert_eq!(max.unsubscription.map(|u| u.source.provider), Some(Provider::CleverReach));

    // R-G5: Erika's assignment ended in OPTIGEM deactivates her receiver in the whole group.
    assert!(stack.cleverreach.receiver(&group, "erika@example.com").unwrap().active);
    let end = YearMonth::of(today()).prev();
    stack.optigem.update_assignment(&assignments["erika"], |a| a.end = Some(end));
    stack.sync().await;
    assert!(!stack.cleverreach.receiver(&group, "erika@example.com").unwrap().active, "R-G5");

    // In step: the next run plans nothing.
    let again = finished(stack.reconcile_to_end(&link).await);
    assert_eq!((again.counts.inputs, again.counts.deferred), (0, 0));
}

#[tokio::test]
async fn r_f2_to_r_f6_the_first_sync_of_a_brevo_link_over_a_mixed_data_set() {
    use optisync_ports::prelude::*;
    let stack = Stack::start().await;
    let mut link = stack.link_brevo("NL-1", mapped()).await;
    link.status = LinkStatus::Linking;
    stack.store.put_link(&link).await.unwrap();
    let list: i64 = link.list.as_str().parse().unwrap();
    // In Brevo before linking: Lena (unknown to OPTIGEM), Max under another first name, Erika blacklisted.
    let attrs = |first: &str| {
        let mut m = serde_json::Map::new();
        m.insert("FIRSTNAME".into(), serde_json::Value::String(first.into()));
        m
    };
    stack.brevo.add_contact("lena@example.com", attrs("Lena"), &[list]);
    stack.brevo.add_contact("max@example.com", attrs("Maximilian"), &[list]);
    stack.brevo.add_contact("erika@example.com", attrs("Erika"), &[list]);
    assert!(stack.brevo.blacklist("erika@example.com"));
    // In OPTIGEM: Anna (only here), Max, Erika.
    let mut assignments = std::collections::BTreeMap::new();
    for (first, mail) in [("Anna", "anna@example.com"), ("Max", "max@example.com"), ("Erika", "erika@example.com")] {
        let p = person(&stack.optigem, first, None, mail);
        assignments.insert(first, subscribe(&stack.optigem, &p, "NL-1"));
    }
    stack.optigem.take_events(); // the newsletter existed before the link: its events went nowhere

    let RunOutcome::Waiting(_) = stack.reconcile(&link).await else { panic!("the run waits for the export") };
    let run = finished(stack.reconcile_to_end(&link).await);
    stack.sync().await;
    assert_eq!(run.counts.imported, 3);

    let links = stack.store.links(&stack.tenant).await.unwrap();
    assert_eq!(links[0].status, LinkStatus::Linked, "R-F1");
    let anna = stack.brevo.contact("anna@example.com").expect("R-F2: created");
    assert!(anna.list_ids.contains(&list), "R-F3: on the list");
    assert_eq!(anna.attributes.get("FIRSTNAME").and_then(|v| v.as_str()), Some("Anna"));
    let max = stack.brevo.contact("max@example.com").unwrap();
    assert_eq!(max.attributes.get("FIRSTNAME").and_then(|v| v.as_str()), Some("Max"), "R-F2: OPTIGEM's value");
    assert!(stack.brevo.contact("erika@example.com").unwrap().email_blacklisted, "R-F3: stays blacklisted");
    let erika = stack.optigem.assignment(&assignments["Erika"]).unwrap();
    assert!(erika.end.is_some(), "R-F5: her assignment is ended");
    assert_eq!(erika.unsubscription.map(|u| u.source.provider), Some(Provider::Brevo));
    for name in ["Anna", "Max"] {
        assert!(stack.optigem.assignment(&assignments[name]).unwrap().end.is_none(), "{name} stays");
    }
    let lena = stack.approval(&link, &optisync_e2e::email("lena@example.com")).await.expect("R-F4");
    assert_eq!(lena.status, ApprovalStatus::Pending);
    assert!(stack.approval(&link, &optisync_e2e::email("max@example.com")).await.is_none());

    // R-F6: in step both ways.
    let mutations = stack.esp_mutations();
    let again = finished(stack.reconcile_to_end(&link).await);
    assert_eq!((again.counts.inputs, again.counts.deferred, stack.esp_mutations()), (0, 0, mutations));
}

#[tokio::test]
async fn r_e9_cleverreachs_account_blacklist_ends_every_newsletter_of_the_account_and_a_blocked_bounce_is_reported() {
    let stack = Stack::start().await;
    stack.clock.travel_to(berlin(2024, 4, 2, 12));
    stack.optigem.set_now(berlin(2024, 4, 2, 12));
    let rundbrief = stack.link_cleverreach("rundbrief", LinkSettings::default()).await;
    let gebetsbrief = stack.link_cleverreach("gebetsbrief", LinkSettings::default()).await;
    let max = person(&stack.optigem, "Max", Some("Muster"), "max.muster@example.com");
    let erika = person(&stack.optigem, "Erika", None, "erika@example.com");
    let a_rundbrief = subscribe(&stack.optigem, &max, "rundbrief");
    let a_gebetsbrief = subscribe(&stack.optigem, &max, "gebetsbrief");
    let a_erika = subscribe(&stack.optigem, &erika, "rundbrief");
    stack.sync().await;
    let active =
        |link: &Link, mail: &str| stack.cleverreach.receiver(link.list.as_str(), mail).is_some_and(|r| r.active);
    assert!(active(&rundbrief, "max.muster@example.com") && active(&gebetsbrief, "max.muster@example.com"));

    // An admin puts Max on the account's blacklist on 15 May 2024 (no webhook tells of it); Erika's mails
    // bounce hard and CleverReach blocks her address without deactivating her.
    stack.clock.travel_to(berlin(2024, 5, 20, 12));
    stack.optigem.set_now(berlin(2024, 5, 20, 12));
    stack.cleverreach.blacklist("max.muster@example.com", berlin(2024, 5, 15, 10).timestamp());
    let tomorrow = chrono::Utc::now().timestamp() + 86_400;
    stack.cleverreach.hard_bounce("erika@example.com", berlin(2024, 5, 18, 10).timestamp(), tomorrow);
    let run = finished(stack.reconcile_to_end(&rundbrief).await);
    stack.sync().await;

    assert_eq!((run.counts.ended, run.counts.bounced), (2, 1), "R-E9: both newsletters end; one bounce reported");
    for a in [&a_rundbrief, &a_gebetsbrief] {
        let ended = stack.optigem.assignment(a).unwrap();
        assert_eq!(ended.end, Some("2024-04".parse().unwrap()), "Ende April 2024");
        let record = ended.unsubscription.expect("R-E1: an unsubscription record");
        assert_eq!(record.date, chrono::NaiveDate::from_ymd_opt(2024, 5, 15).unwrap(), "the blacklist's date");
        assert_eq!((record.source.provider, record.source.account.as_str()), (Provider::CleverReach, "cr-main"));
    }
    assert!(!active(&rundbrief, "max.muster@example.com") && !active(&gebetsbrief, "max.muster@example.com"));
    let erika_now = stack.optigem.assignment(&a_erika).unwrap();
    assert!(erika_now.end.is_none() && erika_now.unsubscription.is_none(), "R-E6: a bounce writes nothing");
    assert!(active(&rundbrief, "erika@example.com"));
    let blacklist_reads = stack.cleverreach.requests().iter().filter(|r| r.path.starts_with("/v3/blacklist")).count();
    assert_eq!(blacklist_reads, 1, "the blacklist is read once per run");

    // Exactly once: neither link's next run changes anything in OPTIGEM or CleverReach.
    let (commands, mutations) = (stack.commands().await.len(), stack.esp_mutations());
    let again = finished(stack.reconcile_to_end(&rundbrief).await);
    let other = finished(stack.reconcile_to_end(&gebetsbrief).await);
    stack.sync().await;
    assert_eq!((again.counts.inputs, again.counts.deferred, again.counts.bounced), (0, 0, 1));
    assert_eq!((other.counts.ended, other.counts.esp_operations, other.counts.bounced), (0, 0, 0));
    let is_export = |c: &OptigemCommand| matches!(c, OptigemCommand::ExportNewsletter { .. });
    let new: Vec<_> = stack.commands().await.into_iter().skip(commands).filter(|c| !is_export(c)).collect();
    assert!(new.is_empty(), "nothing more asked of OPTIGEM: {new:?}");
    assert_eq!(stack.esp_mutations(), mutations);
}

/// R-E2 (B9): before linking, Erika is on the Brevo list of "Rundbrief" while blacklisted, without an
/// assignment in OPTIGEM. The first sync takes her off that list (and asks nothing of OPTIGEM), so when an
/// admin later unblocks her in Brevo, the old list does not send to her again.
#[tokio::test]
async fn r_e2_a_contact_found_blacklisted_at_the_first_sync_leaves_the_list_so_an_unblocking_revives_none() {
    use optisync_ports::prelude::*;
    let stack = Stack::start().await;
    let mut link = stack.link_brevo("NL-1", mapped()).await;
    link.status = LinkStatus::Linking;
    stack.store.put_link(&link).await.unwrap();
    let list: i64 = link.list.as_str().parse().unwrap();
    stack.brevo.add_contact("erika@example.com", Default::default(), &[list]);
    assert!(stack.brevo.blacklist("erika@example.com"));
    let max = person(&stack.optigem, "Max", Some("Muster"), "max.muster@example.com");
    subscribe(&stack.optigem, &max, "NL-1");
    stack.optigem.take_events();

    let run = finished(stack.reconcile_to_end(&link).await);
    stack.sync().await;
    assert!(!on_list(&stack, &link, "erika@example.com"), "taken off the list at the first sync");
    assert!(stack.brevo.contact("erika@example.com").unwrap().email_blacklisted, "the blacklist is Brevo's");
    assert_eq!((run.counts.ended, run.counts.queued), (0, 0), "nothing asked of OPTIGEM");
    assert!(stack.approval(&link, &optisync_e2e::email("erika@example.com")).await.is_none());
    assert!(on_list(&stack, &link, "max.muster@example.com"));

    assert!(stack.brevo.unblacklist("erika@example.com"));
    assert!(!on_list(&stack, &link, "erika@example.com"), "no old list revived");
    let mutations = stack.esp_mutations();
    let again = finished(stack.reconcile_to_end(&link).await);
    assert_eq!((again.counts.deactivated, stack.esp_mutations()), (0, mutations), "taken off once");
}

/// R-E7 (B15): an admin takes Max Muster off the Brevo list of "Rundbrief" by hand, which sends no webhook
/// and which Brevo's `modifiedSince` listing does not show. The next scheduled run, six hours after the
/// last one, ends his assignment, with Brevo as its source.
#[tokio::test]
async fn r_e7_a_member_taken_off_a_brevo_list_by_hand_is_ended_by_the_next_run_within_6_hours() {
    let stack = Stack::start().await;
    let link = stack.link_brevo("NL-1", mapped()).await;
    let max = person(&stack.optigem, "Max", Some("Muster"), "max.muster@example.com");
    let a = subscribe(&stack.optigem, &max, "NL-1");
    stack.sync().await;
    assert_eq!(finished(stack.reconcile_to_end(&link).await).counts.deferred, 0);

    let list: i64 = link.list.as_str().parse().unwrap();
    assert!(stack.brevo.remove_from_list("max.muster@example.com", list));
    stack.clock.travel_to(chrono::Utc::now() + chrono::Duration::hours(6));
    let run = finished(stack.reconcile_to_end(&link).await);
    assert_eq!(run.counts.ended, 1, "found by the run six hours later");
    stack.sync().await;
    let ended = stack.optigem.assignment(&a).unwrap();
    assert!(ended.end.is_some());
    assert_eq!(ended.unsubscription.map(|u| u.source.provider), Some(Provider::Brevo));
}
