//! The scheduled run of a link over the in-memory ports: month-end expiry without any change event
//! (R-A9), drift the ESP shows (R-E1, R-E2, R-E3), checkpoints, continuation and a crash mid-page.

use chrono::{DateTime, Utc};
use optisync_app::reconcile::{Budget, Guard, Phase, Reconciler, RunOutcome};
use optisync_domain::*;
use optisync_ports::prelude::*;
use optisync_ports::{Clock, EspError, EspLister};
use optisync_testkit::memory::MemoryEsp;
use std::sync::Arc;

use crate::common;
use common::*;

#[tokio::test]
async fn r_a9_an_assignment_ending_april_2024_leaves_the_list_on_the_run_of_2024_05_01_without_any_event() {
    for provider in [Provider::CleverReach, Provider::Brevo] {
        let h = harness(provider, berlin(2024, 4, 10, 12)).await;
        h.change(assignment("a1", "max@example.com", Some("2024-04"), berlin(2024, 4, 10, 12))).await;
        h.change(assignment("a2", "erika@example.com", None, berlin(2024, 4, 10, 12))).await;
        assert_eq!(h.receiving(), ["erika@example.com", "max@example.com"]);

        h.clock.set(berlin(2024, 4, 30, 23));
        h.run_to_end().await;
        assert_eq!(h.receiving(), ["erika@example.com", "max@example.com"], "April is not over yet");

        h.clock.set(berlin(2024, 5, 1, 6));
        let finished = h.run_to_end().await;
        assert_eq!(h.receiving(), ["erika@example.com"], "{provider}: the end month has passed (R-A2)");
        assert!(finished.counts.esp_operations >= 1);
        assert!(h.feed().await.iter().all(|c| !matches!(c, OptigemCommand::EndAssignment { .. })), "no command");

        // Reconciling again plans nothing.
        let (calls, audit) = (h.esp.mutating_calls(), h.audit_len().await);
        let again = h.run_to_end().await;
        assert_eq!((again.counts.esp_operations, again.counts.commands, again.counts.inputs), (0, 0, 0));
        assert_eq!((h.esp.mutating_calls(), h.audit_len().await), (calls, audit));
    }
}

#[tokio::test]
async fn r_e1_r_e2_r_e3_the_list_shows_deactivations_and_unknown_members_that_no_webhook_reported() {
    let h = harness(Provider::Brevo, berlin(2024, 9, 1, 12)).await;
    h.change(assignment("a1", "max@example.com", None, berlin(2024, 9, 1, 12))).await;
    h.change(assignment("a2", "erika@example.com", None, berlin(2024, 9, 1, 12))).await;
    // Without a webhook: Max unsubscribed (Brevo blacklists him), Lena joined the list in Brevo.
    h.esp.blacklist(&h.link.esp, "max@example.com");
    h.esp.set_member(&h.link.esp, &h.link.list, "lena@example.com", true);

    h.clock.set(berlin(2024, 9, 25, 12));
    let finished = h.run_to_end().await;
    assert_eq!((finished.counts.deactivated, finished.counts.queued), (1, 1));
    let feed = h.feed().await;
    let ends: Vec<_> = feed
        .iter()
        .filter_map(|c| match c {
            OptigemCommand::EndAssignment { assignment, end, unsubscription, .. } => {
                Some((assignment.to_string(), end.to_string(), unsubscription.date.to_string()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(ends, [("a1".to_owned(), "2024-08".to_owned(), "2024-09-25".to_owned())], "R-E1 with the run's date");
    let matches = feed.iter().filter(|c| matches!(c, OptigemCommand::MatchPersons { .. })).count();
    assert_eq!(matches, 1, "R-E3: the unknown member waits for approval, OPTIGEM is asked for suggestions");
    let lena = Email::parse("lena@example.com").unwrap();
    let slice = optisync_ports::Slice { assignments: vec![], emails: vec![lena.clone()] };
    let view = h.store.load(&h.link, &slice).await.unwrap().view;
    assert_eq!(view.approvals[&lena].status, ApprovalStatus::Pending);

    // Reconciling twice in a row plans nothing the second time.
    let (calls, commands, audit) = (h.esp.mutating_calls(), feed.len(), h.audit_len().await);
    h.clock.set(berlin(2024, 9, 25, 18));
    let again = h.run_to_end().await;
    assert_eq!((again.counts.inputs, again.counts.esp_operations, again.counts.commands), (0, 0, 0));
    assert_eq!((h.esp.mutating_calls(), h.feed().await.len(), h.audit_len().await), (calls, commands, audit));
}

#[tokio::test]
async fn r_e9_a_cleverreach_blacklisting_no_webhook_told_ends_every_newsletter_of_the_account_once_and_a_blocked_bounce_is_counted()
 {
    // Max Muster gets the newsletter of the link ("Rundbrief") and a second one of the same CleverReach
    // account; Erika's mails bounce hard. No webhook tells of either.
    let h = harness(Provider::CleverReach, berlin(2024, 4, 2, 12)).await;
    let second = optisync_testkit::build::link("cr-gebetsbrief", "t1", "NL-2", h.link.esp.clone(), "list-2");
    h.store.put_link(&second).await.unwrap();
    h.change(assignment("a1", "max.muster@example.com", None, berlin(2024, 4, 2, 12))).await;
    h.change(assignment("a3", "erika@example.com", None, berlin(2024, 4, 2, 12))).await;
    let a2 = optisync_testkit::build::assignment("a2", "NL-2", "max.muster@example.com", berlin(2024, 4, 2, 12));
    h.engine.process(&tenant(), &Input::AssignmentChanged { assignment: a2 }).await.unwrap();
    h.esp.cleverreach_blacklist(&h.link.esp, "max.muster@example.com", berlin(2024, 5, 15, 10));
    h.esp.hard_bounce(&h.link.esp, "erika@example.com", berlin(2024, 5, 20, 10));

    h.clock.set(berlin(2024, 6, 1, 12));
    let finished = h.run_to_end().await;
    let feed = h.feed().await;
    let ends: Vec<_> = feed
        .iter()
        .filter_map(|c| match c {
            OptigemCommand::EndAssignment { assignment, end, unsubscription, .. } => {
                Some((assignment.to_string(), end.to_string(), unsubscription.date.to_string()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        ends,
        [
            ("a1".to_owned(), "2024-04".to_owned(), "2024-05-15".to_owned()),
            ("a2".into(), "2024-04".into(), "2024-05-15".into())
        ],
        "R-E9: \"Ende April 2024\" with the blacklist's date, for both newsletters of the account"
    );
    assert_eq!((finished.counts.ended, finished.counts.bounced), (2, 1));
    assert_eq!(h.receiving(), ["erika@example.com"], "R-E6: the bounce writes nothing, Erika stays");
    assert!(h.esp.receiving(&second.esp, &second.list).is_empty(), "deactivated in the other group too");

    // Exactly once: the next run plans nothing more, and still reports the blocked bounce.
    let (calls, commands, audit) = (h.esp.mutating_calls(), feed.len(), h.audit_len().await);
    h.clock.set(berlin(2024, 6, 1, 18));
    let again = h.run_to_end().await;
    assert_eq!((again.counts.inputs, again.counts.esp_operations, again.counts.commands), (0, 0, 0));
    assert_eq!((again.counts.deferred, again.counts.bounced), (0, 1));
    assert_eq!((h.esp.mutating_calls(), h.feed().await.len(), h.audit_len().await), (calls, commands, audit));
}

#[tokio::test]
async fn a_run_continues_from_its_checkpoint_and_a_crash_mid_page_repeats_no_effect() {
    let mut h = harness(Provider::Brevo, berlin(2024, 9, 1, 12)).await;
    h.reconciler = h.reconciler.clone().with_guard(Guard { share: 1.0, min: 1 });
    let n = 120;
    for i in 0..n {
        h.change(assignment(&format!("a{i:03}"), &format!("m{i:03}@example.com"), None, berlin(2024, 9, 1, 12))).await;
    }
    for i in 0..n {
        h.esp.blacklist(&h.link.esp, &format!("m{i:03}@example.com"));
    }
    h.esp.set_page_size(25);
    h.clock.set(berlin(2024, 9, 25, 12));
    let before = h.esp.mutating_calls();

    // Invocation 1 asks OPTIGEM for its snapshot and waits; the connector answers (one page).
    assert!(matches!(h.run_once(Budget::default()).await, RunOutcome::Waiting(_)));
    h.answer_with_optigem().await;
    // Invocation 2: the snapshot page (in step), two list pages, then the (simulated) deadline; the ends
    // found wait for the apply phase.
    let RunOutcome::Continue(progress) = h.run(Budget { max_pages: Some(3), ..Default::default() }).await else {
        panic!("expected a continuation")
    };
    let c = progress.counts;
    assert_eq!((c.imported, c.inputs, c.pages, c.deferred, c.ended), (120, 0, 3, 50, 0));
    // Invocation 3: the other three list pages; the sweep is next.
    let RunOutcome::Continue(progress) = h.run(Budget { max_pages: Some(3), ..Default::default() }).await else {
        panic!("expected a continuation")
    };
    assert_eq!((progress.counts.pages, progress.counts.deferred, progress.phase), (6, 120, Phase::Sweep));
    assert_eq!(h.esp.mutating_calls(), before, "nothing applied before the guard has seen every end");
    // Invocation 4 sweeps, then dies in the middle of the ends: the five chunks (120 ends) are one batch of at
    // most 150, and its 60th removal fails (the ESP is unavailable: nothing more is sent).
    h.esp.fail_at(before + 60, EspError::Transient { retry_after_secs: None });
    let failed = h.reconciler.run(&tenant(), &h.link.id, Budget::default()).await;
    assert!(failed.is_err());
    let state = h.reconciler.state(&h.link.tenant, &h.link.id).await.unwrap();
    assert_eq!(state.current.as_ref().map(|p| p.counts.ended), Some(0), "the checkpoint before the batch");
    // Invocations 5…: the batch again, then the end.
    let mut invocations = 0;
    let finished = loop {
        invocations += 1;
        match h.run_once(Budget { max_pages: Some(1), ..Default::default() }).await {
            RunOutcome::Continue(_) => continue,
            RunOutcome::Finished(f) => break f,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(invocations, 2, "the batch, then the end");
    // The 59 ends the crashed invocation applied are not repeated, and as its checkpoint was lost they
    // are not counted either: the counts are a floor, the feed below is the truth.
    let c = finished.counts;
    assert_eq!((c.pages, c.ended, c.deactivated, c.imported), (6, 61, 61, n as u64));
    assert_eq!(finished.invocations, 6, "the one that crashed saved its checkpoint up to the batch");

    // Every member was taken off the list once and every assignment ended once, the crash notwithstanding.
    assert_eq!(h.esp.mutating_calls() - before, n as u64, "one removal per member");
    let ends = h.feed().await.iter().filter(|c| matches!(c, OptigemCommand::EndAssignment { .. })).count();
    assert_eq!(ends, n);
    assert!(h.receiving().is_empty());
    assert!(h.reconciler.state(&h.link.tenant, &h.link.id).await.unwrap().current.is_none());
    assert_eq!(h.esp.list_reads(), 5, "every list page read once");
}

#[tokio::test]
async fn r_f8_the_guard_holds_a_run_that_would_end_most_of_the_list_until_an_admin_confirms() {
    let h = harness(Provider::CleverReach, berlin(2024, 9, 1, 12)).await;
    for i in 0..40 {
        h.change(assignment(&format!("a{i:03}"), &format!("m{i:03}@example.com"), None, berlin(2024, 9, 1, 12))).await;
    }
    // Someone deactivated 30 of 40 receivers in CleverReach: 75 % of the list, over the default 10 %.
    for i in 0..30 {
        h.esp.set_member(&h.link.esp, &h.link.list, &format!("m{i:03}@example.com"), false);
    }
    h.clock.set(berlin(2024, 9, 25, 12));
    let before = h.esp.mutating_calls();
    let RunOutcome::Held(progress) = h.run(Budget::default()).await else { panic!("expected the guard to hold") };
    assert_eq!((progress.counts.deferred, progress.counts.members), (30, 40));
    assert_eq!(h.esp.mutating_calls(), before, "nothing deactivated");
    assert!(h.feed().await.iter().all(|c| !matches!(c, OptigemCommand::EndAssignment { .. })), "nothing ended");
    let RunOutcome::Held(again) = h.run(Budget::default()).await else { panic!("held until confirmed") };
    assert_eq!((again.counts, again.invocations), (progress.counts, 3), "the export's wait, the hold, again");

    assert!(h.reconciler.confirm(&h.link.tenant, &h.link.id).await.unwrap());
    let finished = h.run_to_end().await;
    assert_eq!(finished.counts.ended, 30);
    let ends = h.feed().await.iter().filter(|c| matches!(c, OptigemCommand::EndAssignment { .. })).count();
    assert_eq!(ends, 30);
    assert!(!h.reconciler.confirm(&h.link.tenant, &h.link.id).await.unwrap(), "nothing held any more");

    // Below the share, or below the minimum count, a run goes through without asking.
    let g = Guard::default();
    assert!(!g.holds(4, 40) && !g.holds(9, 10) && g.holds(10, 40) && !g.holds(10, 100));
}

#[tokio::test]
async fn a_second_run_waits_while_one_holds_the_lease_and_unlinked_links_are_skipped() {
    let h = harness(Provider::CleverReach, berlin(2024, 9, 1, 12)).await;
    let now = h.clock.now();
    assert!(
        h.store
            .try_lease(
                &optisync_ports::names::lease::run(&h.link.tenant, &h.link.id),
                "other-run",
                now,
                now + chrono::Duration::minutes(5)
            )
            .await
            .unwrap()
    );
    assert_eq!(h.run(Budget::default()).await, RunOutcome::Busy);
    h.clock.set(now + chrono::Duration::minutes(6));
    let taken = h.run(Budget::default()).await;
    assert!(matches!(taken, RunOutcome::Finished(_)), "an expired lease is taken over: {taken:?}");

    let mut off = h.link.clone();
    off.status = LinkStatus::NotLinked;
    h.store.put_link(&off).await.unwrap();
    assert_eq!(h.run(Budget::default()).await, RunOutcome::Skipped);
    let unknown = h.reconciler.run(&tenant(), &LinkId::new("nope"), Budget::default()).await.unwrap();
    assert_eq!(unknown, RunOutcome::Skipped);
}

/// The mixed data set of the first sync: Anna only in OPTIGEM, Lena only in the ESP, Max in both with
/// another first name in the ESP, Erika in both but deactivated (CleverReach) or blacklisted (Brevo) in
/// the ESP, Otto in OPTIGEM with an assignment that ended in January.
async fn mixed(provider: Provider) -> (Harness, Vec<Assignment>) {
    let mut h = harness(provider, berlin(2024, 9, 1, 12)).await;
    h.link.status = LinkStatus::Linking;
    h.link.settings.mapping.first_name = Some(AttributeName::new("FIRSTNAME"));
    h.store.put_link(&h.link).await.unwrap();
    let (esp, list) = (h.link.esp.clone(), h.link.list.clone());
    h.esp.set_member(&esp, &list, "max@example.com", true);
    h.esp.set_field(&esp, "max@example.com", "FIRSTNAME", "Maximilian");
    h.esp.set_member(&esp, &list, "lena@example.com", true);
    match provider {
        Provider::Brevo => {
            h.esp.set_member(&esp, &list, "erika@example.com", true);
            h.esp.blacklist(&esp, "erika@example.com");
        }
        Provider::CleverReach => h.esp.set_member(&esp, &list, "erika@example.com", false),
    }
    let t = berlin(2024, 1, 5, 9);
    let mut otto = named("a-otto", "otto@example.com", "Otto", t);
    otto.end = Some("2024-01".parse().unwrap());
    let snapshot = vec![
        named("a-anna", "anna@example.com", "Anna", t),
        named("a-max", "max@example.com", "Max", t),
        named("a-erika", "erika@example.com", "Erika", t),
        otto,
    ];
    (h, snapshot)
}

#[tokio::test]
async fn r_f1_to_r_f6_the_first_sync_of_a_mixed_data_set_adds_both_ways_and_the_esp_wins_on_active_status() {
    for provider in [Provider::CleverReach, Provider::Brevo] {
        let (h, snapshot) = mixed(provider).await;
        let before = h.esp.mutating_calls();
        // R-F1: saving the link starts the first sync; it asks OPTIGEM for the snapshot and waits.
        let RunOutcome::Waiting(progress) = h.run(Budget::default()).await else { panic!("waits for the export") };
        assert_eq!(progress.phase, Phase::AwaitExport);
        assert!(matches!(h.run(Budget::default()).await, RunOutcome::Waiting(p) if p.phase == Phase::AwaitExport));
        assert_eq!(h.esp.mutating_calls(), before, "nothing reaches the ESP before the snapshot");
        h.answer_export(&snapshot).await;
        let finished = h.run_to_end().await;
        let link = h.store.links(&tenant()).await.unwrap().into_iter().next().unwrap();
        assert_eq!(link.status, LinkStatus::Linked, "{provider}: R-F1 linked after the first sync");
        assert_eq!((finished.counts.imported, finished.counts.pages), (4, 2 + 1));

        // R-F2, R-F3: Anna created and on the list; Max's fields take OPTIGEM's values; Otto not imported.
        assert_eq!(h.receiving(), ["anna@example.com", "lena@example.com", "max@example.com"], "{provider}");
        let max = h.esp.contact(&h.link.esp, "max@example.com").unwrap();
        assert_eq!(max.fields.get("FIRSTNAME").map(String::as_str), Some("Max"), "{provider}: OPTIGEM's value");
        assert!(h.esp.contact(&h.link.esp, "otto@example.com").is_none(), "{provider}: ended assignments stay out");
        // R-F3, R-F5: Erika stays inactive in the ESP and her assignment is ended (R-E1).
        match provider {
            Provider::Brevo => assert!(h.esp.contact(&h.link.esp, "erika@example.com").unwrap().blacklisted),
            Provider::CleverReach => {}
        }
        let feed = h.feed().await;
        assert_eq!(Harness::ends_of(&feed), ["a-erika"], "{provider}: R-F5");
        // R-F4: Lena, unknown to OPTIGEM, waits for approval; nobody imported by R-F2 is queued.
        assert_eq!(h.approvals(&h.link.id, "lena@example.com").await.map(|a| a.status), Some(ApprovalStatus::Pending));
        for known in ["anna@example.com", "max@example.com", "erika@example.com"] {
            assert!(h.approvals(&h.link.id, known).await.is_none(), "{provider}: {known} is not queued");
        }
        let matches = feed.iter().filter(|c| matches!(c, OptigemCommand::MatchPersons { .. })).count();
        assert_eq!(matches, 1);

        // R-F6: in step both ways: the next run (a reconciliation now) plans nothing.
        let calls = h.esp.mutating_calls();
        h.clock.set(berlin(2024, 9, 1, 18));
        let again = h.run_to_end().await;
        assert_eq!((again.counts.inputs, again.counts.deferred), (0, 0), "{provider}");
        assert_eq!((h.esp.mutating_calls(), h.feed().await.len()), (calls, feed.len()), "{provider}");
    }
}

#[tokio::test]
async fn r_f8_a_dry_run_of_the_first_sync_shows_what_would_be_created_queued_and_ended_and_changes_nothing() {
    let (h, snapshot) = mixed(Provider::Brevo).await;
    let mut draft = h.link.clone();
    draft.status = LinkStatus::NotLinked;
    h.store.put_link(&draft).await.unwrap();
    let before = h.esp.mutating_calls();
    let (dry_tenant, shadow) = h.reconciler.start_preview(&draft).await.unwrap();
    let run = |h: &Harness| {
        let (t, s) = (dry_tenant.clone(), shadow.clone());
        let r = h.reconciler.clone();
        async move { r.run(&t, &s, Budget::default()).await.unwrap() }
    };
    assert!(matches!(run(&h).await, RunOutcome::Waiting(_)));
    h.answer_export(&snapshot).await;
    let RunOutcome::Finished(finished) = run(&h).await else { panic!("the dry run finishes") };
    assert_eq!((finished.counts.imported, finished.counts.queued, finished.counts.ended), (4, 1, 1));

    let preview = h.reconciler.preview(&tenant(), &draft.id, 100).await.unwrap().expect("a dry run");
    let mut lines: Vec<(String, String)> = preview
        .lines
        .iter()
        .map(|l| {
            let who = l.email.as_ref().map(|e| e.key().to_owned());
            (l.action.to_string(), who.or(l.assignment.as_ref().map(|a| a.to_string())).unwrap())
        })
        .collect();
    lines.sort();
    let want = [
        ("create", "anna@example.com"),
        ("create", "erika@example.com"),
        ("create", "max@example.com"),
        ("deactivate", "erika@example.com"),
        ("end", "a-erika"),
        ("queue", "lena@example.com"),
    ];
    assert_eq!(lines, want.map(|(a, b)| (a.to_owned(), b.to_owned())));

    // Nothing happened: no ESP call, no command in the tenant's feed but the export, no approval entry, and
    // the link is as it was; the dry run's own link rests, so no schedule runs it again.
    assert_eq!(h.esp.mutating_calls(), before);
    let feed = h.feed().await;
    assert!(feed.iter().all(|c| matches!(c, OptigemCommand::ExportNewsletter { .. })), "{feed:?}");
    assert!(h.approvals(&draft.id, "lena@example.com").await.is_none());
    let links = h.store.all_links().await.unwrap();
    assert!(links.iter().all(|l| l.status == LinkStatus::NotLinked), "{links:?}");
}

#[tokio::test]
async fn r_e4_an_address_changed_inside_the_esp_ends_the_old_and_queues_the_new_on_the_next_run() {
    for provider in [Provider::CleverReach, Provider::Brevo] {
        let h = harness(provider, berlin(2024, 9, 1, 12)).await;
        h.change(assignment("a1", "max@example.com", None, berlin(2024, 9, 1, 12))).await;
        h.change(assignment("a2", "erika@example.com", None, berlin(2024, 9, 1, 12))).await;
        // In the ESP, without a webhook: Max's address becomes max.muster@…; Erika is deleted.
        h.esp.remove_member(&h.link.esp, &h.link.list, "max@example.com");
        h.esp.set_member(&h.link.esp, &h.link.list, "max.muster@example.com", true);
        h.esp.remove_member(&h.link.esp, &h.link.list, "erika@example.com");
        h.clock.set(berlin(2024, 9, 25, 12));
        let finished = h.run_to_end().await;
        assert!(finished.complete);
        let feed = h.feed().await;
        let mut ends = Harness::ends_of(&feed);
        ends.sort();
        assert_eq!(ends, ["a1", "a2"], "{provider}: R-E1 deletion of the old address");
        let end = feed.iter().find_map(|c| match c {
            OptigemCommand::EndAssignment { end, unsubscription, .. } => {
                Some((end.to_string(), unsubscription.clone()))
            }
            _ => None,
        });
        let (end, record) = end.unwrap();
        assert_eq!((end.as_str(), record.date.to_string().as_str()), ("2024-08", "2024-09-25"));
        assert_eq!(record.source.cause, UnsubscribeCause::Deleted);
        let new = h.approvals(&h.link.id, "max.muster@example.com").await.map(|a| a.status);
        assert_eq!(new, Some(ApprovalStatus::Pending), "{provider}: R-E3 the new address waits for approval");

        let again = h.run_to_end().await;
        assert_eq!((again.counts.inputs, again.counts.deferred), (0, 0), "{provider}: nothing twice");
    }
}

#[tokio::test]
async fn r_g1_to_r_g5_a_segment_link_takes_membership_from_cleverreach_only() {
    let mut h = harness(Provider::CleverReach, berlin(2024, 9, 1, 12)).await;
    h.link.segment = Some(SegmentId::new("S1"));
    h.store.put_link(&h.link).await.unwrap();
    let (esp, list) = (h.link.esp.clone(), h.link.list.clone());
    for (mail, in_segment) in [("max", true), ("lena", true), ("paul", false), ("erika", true)] {
        let mail = format!("{mail}@example.com");
        h.esp.set_member(&esp, &list, &mail, true);
        h.esp.set_segment_member(&esp, &list, "S1", &mail, in_segment);
    }
    let t = berlin(2024, 9, 1, 12);
    h.change(assignment("a-max", "max@example.com", None, t)).await;
    h.change(assignment("a-erika", "erika@example.com", None, t)).await;
    // R-G4: someone in OPTIGEM assigns Paul by hand, who is not in the segment.
    h.change(assignment("a-paul", "paul@example.com", None, t)).await;
    assert_eq!(h.esp.mutating_calls(), 0, "R-G2: nothing flows OPTIGEM → CleverReach");

    h.clock.set(berlin(2024, 9, 2, 12));
    let run = h.run_to_end().await;
    let feed = h.feed().await;
    assert_eq!(Harness::ends_of(&feed), ["a-paul"], "R-G4: not in the segment → ended");
    assert_eq!(h.approvals(&h.link.id, "lena@example.com").await.map(|a| a.status), Some(ApprovalStatus::Pending));
    assert_eq!(run.counts.queued, 1, "R-G3: the unknown member waits for approval");

    // R-G4: Max leaves the segment in CleverReach → his assignment is ended on the next run.
    h.esp.set_segment_member(&esp, &list, "S1", "max@example.com", false);
    h.clock.set(berlin(2024, 9, 3, 12));
    h.run_to_end().await;
    assert_eq!(Harness::ends_of(&h.feed().await), ["a-paul", "a-max"]);

    // R-G5: ending Erika's assignment in OPTIGEM deactivates her receiver in the whole group.
    let mut ended = assignment("a-erika", "erika@example.com", Some("2024-08"), t);
    ended.version = 2;
    h.change(ended).await;
    assert!(!h.receiving().contains(&"erika@example.com".to_owned()), "R-G5: inactive in the group");
    // R-G4: a known member in the segment whose assignment ended by hand gets a new one (once).
    h.esp.set_segment_member(&esp, &list, "S1", "max@example.com", true);
    h.clock.set(berlin(2024, 9, 4, 12));
    let rejoined = h.run_to_end().await;
    assert_eq!(rejoined.counts.deferred, 0, "Erika, inactive in the group, is not missing from the segment");
    let creates =
        |feed: &[OptigemCommand]| feed.iter().filter(|c| matches!(c, OptigemCommand::CreateAssignment { .. })).count();
    assert_eq!(creates(&h.feed().await), 1, "Max rejoined after his assignment was ended: a new one is asked for");
    let again = h.run_to_end().await;
    assert_eq!(creates(&h.feed().await), 1, "asked once");
    assert_eq!((again.counts.inputs, again.counts.deferred), (0, 0), "reconciling twice plans nothing");
}

/// A listing that misses one member, as offset paging does when an earlier member leaves between two
/// pages; lookups of single members are the ESP's own.
struct Skipping {
    esp: Arc<MemoryEsp>,
    missed: &'static str,
}

#[async_trait::async_trait]
impl optisync_ports::EspLister for Skipping {
    async fn list_page(
        &self,
        link: &Link,
        since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<optisync_ports::ListPage, EspError> {
        let mut page = self.esp.list_page(link, since, cursor).await?;
        page.members.retain(|m| m.email.key() != self.missed);
        Ok(page)
    }

    async fn is_listed(&self, link: &Link, email: &Email) -> Result<bool, EspError> {
        self.esp.is_listed(link, email).await
    }
}

#[tokio::test]
async fn a_member_the_paging_missed_is_looked_up_before_anything_is_ended() {
    let h = harness(Provider::Brevo, berlin(2024, 9, 1, 12)).await;
    h.change(assignment("a1", "max@example.com", None, berlin(2024, 9, 1, 12))).await;
    h.change(assignment("a2", "erika@example.com", None, berlin(2024, 9, 1, 12))).await;
    h.esp.remove_member(&h.link.esp, &h.link.list, "erika@example.com"); // really gone
    let lister = Arc::new(Skipping { esp: h.esp.clone(), missed: "max@example.com" });
    let reconciler = Reconciler::new(h.store.clone(), h.esp.clone(), lister, h.store.clone(), h.clock.clone());
    h.clock.set(berlin(2024, 9, 25, 12));
    assert!(matches!(reconciler.run(&tenant(), &h.link.id, Budget::default()).await.unwrap(), RunOutcome::Waiting(_)));
    h.answer_with_optigem().await;
    let RunOutcome::Finished(run) = reconciler.run(&tenant(), &h.link.id, Budget::default()).await.unwrap() else {
        panic!("finished")
    };
    assert_eq!(run.counts.deferred, 1, "only the member that is really gone");
    assert_eq!(Harness::ends_of(&h.feed().await), ["a2"], "Max, missed by the paging, keeps his assignment");
    assert!(h.receiving().contains(&"max@example.com".to_owned()));
}

#[tokio::test]
async fn r_d1_an_assignment_whose_change_event_was_lost_reaches_the_list_by_the_runs_export() {
    for provider in [Provider::CleverReach, Provider::Brevo] {
        let h = harness(provider, berlin(2024, 9, 1, 12)).await;
        h.change(assignment("a1", "max@example.com", None, berlin(2024, 9, 1, 12))).await;
        // Erika's assignment is created in OPTIGEM, but its change event never arrives.
        let lost = assignment("a2", "erika@example.com", None, berlin(2024, 9, 2, 9));
        h.optigem.lock().unwrap().insert("a2".into(), lost);
        assert_eq!(h.receiving(), ["max@example.com"]);

        h.clock.set(berlin(2024, 9, 2, 18));
        let finished = h.run_to_end().await;
        assert_eq!(h.receiving(), ["erika@example.com", "max@example.com"], "{provider}: added by the run");
        assert_eq!((finished.counts.imported, finished.counts.inputs, finished.counts.created), (2, 1, 1));
        assert!(h.feed().await.is_empty(), "{provider}: nothing for OPTIGEM to do");

        let (calls, audit) = (h.esp.mutating_calls(), h.audit_len().await);
        h.clock.set(berlin(2024, 9, 3, 0));
        let again = h.run_to_end().await;
        assert_eq!((again.counts.imported, again.counts.inputs, again.counts.esp_operations), (2, 0, 0));
        assert_eq!((h.esp.mutating_calls(), h.audit_len().await), (calls, audit), "{provider}: in step");
    }
}

#[tokio::test]
async fn a_reconciliation_whose_export_stays_unanswered_does_the_esp_side_after_the_wait_and_reports_it() {
    let h = harness(Provider::Brevo, berlin(2024, 9, 1, 12)).await;
    h.change(assignment("a1", "max@example.com", None, berlin(2024, 9, 1, 12))).await;
    h.esp.blacklist(&h.link.esp, "max@example.com");
    let RunOutcome::Waiting(waiting) = h.run_once(Budget::default()).await else { panic!("waits for the export") };
    assert_eq!((waiting.phase, waiting.counts.ended), (Phase::AwaitExport, 0));

    h.clock.set(berlin(2024, 9, 1, 16));
    assert!(matches!(h.run_once(Budget::default()).await, RunOutcome::Waiting(_)), "still within the wait");
    // The connector is offline; the next tick, six hours on, goes on with the ESP side without it.
    h.clock.set(berlin(2024, 9, 1, 18));
    let RunOutcome::Finished(run) = h.run_once(Budget::default()).await else { panic!("finished without it") };
    assert_eq!(run.error.as_deref(), Some("the connector did not answer the export in time"));
    assert_eq!((run.counts.ended, run.counts.imported), (1, 0), "the lost unsubscribe is caught all the same");
    assert!(run.complete);
    let state = h.reconciler.state(&h.link.tenant, &h.link.id).await.unwrap();
    assert!(state.last_success.is_none() && state.last_complete.is_some() && state.current.is_none());

    // The next run asks again (a new export command) and succeeds once it is answered.
    let exports = || async {
        let all = h.store.commands(&tenant(), 0, 1000).await.unwrap();
        all.iter().filter(|(_, c)| matches!(c, OptigemCommand::ExportNewsletter { .. })).count()
    };
    assert_eq!(exports().await, 1);
    h.clock.set(berlin(2024, 9, 2, 0));
    assert!(h.run_to_end().await.error.is_none());
    assert_eq!(exports().await, 2);
}

#[tokio::test]
async fn a_run_whose_invocation_died_is_taken_over_and_counted_as_stale() {
    let h = harness(Provider::CleverReach, berlin(2024, 9, 1, 12)).await;
    for i in 0..30 {
        h.esp.set_member(&h.link.esp, &h.link.list, &format!("m{i:02}@example.com"), true);
    }
    h.esp.set_page_size(10);
    let RunOutcome::Continue(p) = h.run(Budget { max_pages: Some(1), ..Default::default() }).await else {
        panic!("a continuation")
    };
    assert_eq!(p.stale_takeovers, 0);
    // The continuation is never announced (the invocation died); the next tick comes 6 hours later.
    h.clock.set(berlin(2024, 9, 1, 18));
    let RunOutcome::Continue(p) = h.run(Budget { max_pages: Some(1), ..Default::default() }).await else {
        panic!("a continuation")
    };
    assert_eq!(p.stale_takeovers, 1, "StaleRun");
    // A continuation in time is not stale, nor is a run waiting for OPTIGEM's export.
    h.clock.set(berlin(2024, 9, 1, 18) + chrono::Duration::minutes(1));
    let finished = h.run_to_end().await;
    assert_eq!(finished.counts.pages, 3, "three list pages (OPTIGEM has no assignment: no snapshot page)");
    let state = h.reconciler.state(&h.link.tenant, &h.link.id).await.unwrap();
    assert!(state.current.is_none());
}

#[tokio::test]
async fn r_g6_linking_a_segment_to_a_newsletter_with_assignments_warns_in_the_dry_run_and_the_first_sync() {
    use optisync_app::reconcile::SEGMENT_OVER_ASSIGNMENTS;
    let t = berlin(2024, 9, 1, 12);
    for (snapshot, warned) in [
        (vec![assignment("a1", "max@example.com", None, t)], true),
        (vec![assignment("a1", "max@example.com", Some("2024-03"), t)], false), // ended: none active
        (vec![], false),
    ] {
        let mut h = harness(Provider::CleverReach, t).await;
        h.link.segment = Some(SegmentId::new("S1"));
        h.link.status = LinkStatus::NotLinked;
        h.store.put_link(&h.link).await.unwrap();
        // The admin's dry run before saving shows the warning …
        let (dry_tenant, shadow) = h.reconciler.start_preview(&h.link).await.unwrap();
        assert!(matches!(
            h.reconciler.run(&dry_tenant, &shadow, Budget::default()).await.unwrap(),
            RunOutcome::Waiting(_)
        ));
        h.answer_export(&snapshot).await;
        assert!(matches!(
            h.reconciler.run(&dry_tenant, &shadow, Budget::default()).await.unwrap(),
            RunOutcome::Finished(_)
        ));
        let preview = h.reconciler.preview(&tenant(), &h.link.id, 10).await.unwrap().unwrap();
        let warnings = preview.state.last.map(|l| l.warnings).unwrap_or_default();
        assert_eq!(warnings.contains(&SEGMENT_OVER_ASSIGNMENTS.to_owned()), warned, "{snapshot:?}");
        // … and so does the link's first sync; linking is discouraged, not refused.
        h.link.status = LinkStatus::Linking;
        h.store.put_link(&h.link).await.unwrap();
        assert!(matches!(h.run(Budget::default()).await, RunOutcome::Waiting(_)));
        h.answer_export(&snapshot).await;
        let first = h.run_to_end().await;
        assert_eq!(first.warnings == [SEGMENT_OVER_ASSIGNMENTS.to_owned()], warned);
        let links = h.store.links(&tenant()).await.unwrap();
        assert_eq!(links[0].status, LinkStatus::Linked);
    }
}

#[test]
fn a_dry_runs_lines_keep_their_wire_names() {
    use optisync_app::reconcile::{PreviewAction, PreviewLine};
    let names = [
        (PreviewAction::Create, "create"),
        (PreviewAction::Update, "update"),
        (PreviewAction::Deactivate, "deactivate"),
        (PreviewAction::Reactivate, "reactivate"),
        (PreviewAction::Queue, "queue"),
        (PreviewAction::End, "end"),
    ];
    for (action, name) in names {
        let line = PreviewLine { action, email: None, assignment: Some(AssignmentId::new("a-1")) };
        let json = serde_json::to_string(&line).unwrap();
        assert_eq!(json, format!(r#"{{"action":"{name}","assignment":"a-1"}}"#));
        assert_eq!(serde_json::from_str::<PreviewLine>(&json).unwrap(), line);
        assert_eq!(action.to_string(), name);
    }
}

/// R-E2 (B9): Erika is on the Brevo list "Rundbrief" while blacklisted and has no assignment; the link
/// never held her (she does not receive mail, so no listing made her a signup). The run takes her off the
/// list, so that a later removal from the blacklist revives no old list, and asks nothing of OPTIGEM; the
/// next run finds nothing to do.
#[tokio::test]
async fn r_e2_a_run_takes_a_contact_found_blacklisted_off_the_list_whether_or_not_it_has_an_assignment() {
    let h = harness(Provider::Brevo, berlin(2024, 9, 1, 12)).await;
    h.change(assignment("a1", "max@example.com", None, berlin(2024, 9, 1, 12))).await;
    h.esp.set_member(&h.link.esp, &h.link.list, "erika@example.com", true);
    h.esp.blacklist(&h.link.esp, "erika@example.com");
    let erika = Email::parse("erika@example.com").unwrap();
    assert!(h.esp.is_listed(&h.link, &erika).await.unwrap());

    h.clock.set(berlin(2024, 9, 25, 12));
    let finished = h.run_to_end().await;
    assert!(!h.esp.is_listed(&h.link, &erika).await.unwrap(), "taken off the list (R-E2)");
    assert_eq!(finished.counts.deactivated, 1);
    assert_eq!(finished.counts.deferred, 0, "no end: a blacklisted contact receives no mail (R-F8)");
    assert!(h.esp.contact(&h.link.esp, "erika@example.com").unwrap().blacklisted, "the blacklist stays");
    let feed = h.feed().await;
    assert!(
        feed.iter().all(|c| !matches!(c, OptigemCommand::EndAssignment { .. } | OptigemCommand::MatchPersons { .. }))
    );
    assert_eq!(h.receiving(), ["max@example.com"]);

    let (calls, audit) = (h.esp.mutating_calls(), h.audit_len().await);
    h.clock.set(berlin(2024, 9, 25, 18));
    let again = h.run_to_end().await;
    assert_eq!((again.counts.inputs, again.counts.esp_operations, again.counts.commands), (0, 0, 0));
    assert_eq!((h.esp.mutating_calls(), h.audit_len().await), (calls, audit), "once");
}

/// R-E7 (B15): Max Muster is taken off the Brevo list "Rundbrief" by hand, which sends no webhook and which
/// Brevo's `modifiedSince` listing does not show. The next scheduled run, six hours after a complete one,
/// finds him gone and ends his assignment: ESP → OPTIGEM within 6 hours, not only at the daily listing.
#[tokio::test]
async fn r_e7_a_member_taken_off_a_brevo_list_by_hand_is_found_by_the_next_run_within_6_hours() {
    let h = harness(Provider::Brevo, berlin(2024, 9, 25, 6)).await;
    h.change(assignment("a1", "max.muster@example.com", None, berlin(2024, 9, 1, 12))).await;
    h.change(assignment("a2", "erika@example.com", None, berlin(2024, 9, 1, 12))).await;
    let first = h.run_to_end().await;
    assert_eq!(first.counts.deferred, 0);

    h.clock.set(berlin(2024, 9, 25, 7));
    h.esp.remove_member(&h.link.esp, &h.link.list, "max.muster@example.com");
    h.clock.set(berlin(2024, 9, 25, 12));
    let next = h.run_to_end().await;
    assert!(next.complete, "every Brevo run lists the whole list");
    assert_eq!(Harness::ends_of(&h.feed().await), ["a1"], "ended by the run six hours after the last one");
    assert_eq!(h.receiving(), ["erika@example.com"]);
}

/// The ends of the run's "Rundbrief": (assignment, end month).
async fn ends_of(h: &Harness) -> Vec<(String, String)> {
    h.feed()
        .await
        .iter()
        .filter_map(|c| match c {
            OptigemCommand::EndAssignment { assignment, end, .. } => Some((assignment.to_string(), end.to_string())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn r_e2_a_batch_of_ends_where_the_esp_refuses_one_address_leaves_exactly_that_recipient_unapplied() {
    let h = harness(Provider::Brevo, berlin(2024, 9, 1, 12)).await;
    let readers = ["max.muster@example.com", "erika@example.com", "lena@example.com"];
    for (i, mail) in readers.iter().enumerate() {
        h.change(assignment(&format!("a{}", i + 1), mail, None, berlin(2024, 9, 1, 12))).await;
    }
    // All three unsubscribed in Brevo without a webhook; the ESP refuses Max Muster's removal once.
    for mail in readers {
        h.esp.blacklist(&h.link.esp, mail);
    }
    h.esp.fail_for("max.muster@example.com", EspError::Rejected("refused".into()));

    h.clock.set(berlin(2024, 9, 25, 12));
    let finished = h.run_to_end().await;
    assert_eq!(finished.counts.failed, 1, "recorded as today: {:?}", finished.failures);
    assert_eq!(finished.failures[0].recipient, Email::parse("max.muster@example.com").unwrap().masked());
    assert_eq!(ends_of(&h).await, [("a2".to_owned(), "2024-08".to_owned()), ("a3".into(), "2024-08".into())]);
    let on_list = |mail: &str| h.esp.member(&h.link.esp, &h.link.list, mail).is_some();
    assert!(on_list("max.muster@example.com"), "his removal was refused: nothing of it applied");
    assert!(!on_list("erika@example.com") && !on_list("lena@example.com"));

    // The next run ends him, once; the others are not ended again.
    h.clock.set(berlin(2024, 9, 25, 18));
    let again = h.run_to_end().await;
    assert_eq!((again.counts.failed, again.counts.ended), (0, 1));
    assert_eq!(ends_of(&h).await.len(), 3);
    assert!(!on_list("max.muster@example.com"));
}

#[tokio::test]
async fn r_e2_the_engine_applies_a_batch_of_inputs_and_answers_for_each_alone() {
    let h = harness(Provider::Brevo, berlin(2024, 9, 1, 12)).await;
    let readers = ["max.muster@example.com", "erika@example.com", "lena@example.com"];
    for (i, mail) in readers.iter().enumerate() {
        h.change(assignment(&format!("a{}", i + 1), mail, None, berlin(2024, 9, 1, 12))).await;
    }
    h.clock.set(berlin(2024, 9, 25, 12));
    let inputs: Vec<Input> = readers
        .iter()
        .map(|mail| {
            h.esp.blacklist(&h.link.esp, mail);
            Input::Esp(EspEvent {
                esp: h.link.esp.clone(),
                list: None,
                email: Email::parse(mail).unwrap(),
                at: berlin(2024, 9, 25, 10),
                what: EspEventKind::Blacklisted,
            })
        })
        .collect();
    h.esp.fail_for("erika@example.com", EspError::Rejected("refused".into()));
    let results = h.engine.process_batch(&tenant(), &inputs).await;
    assert_eq!(results.len(), 3);
    assert!(results[0].as_ref().is_ok_and(|o| o.ended == 1), "{:?}", results[0]);
    assert!(results[1].is_err(), "{:?}", results[1]);
    assert!(results[2].as_ref().is_ok_and(|o| o.ended == 1), "{:?}", results[2]);
    let ended: Vec<String> = ends_of(&h).await.into_iter().map(|(a, _)| a).collect();
    assert_eq!(ended, ["a1", "a3"], "Erika's input committed nothing and stays retryable");
    let retried = h.engine.process(&tenant(), &inputs[1]).await.unwrap();
    assert_eq!(retried.ended, 1);
}

/// H4, R-A9: a month-end with far more due assignments than one transaction holds (the in-memory
/// store refuses a commit over 100 items as DynamoDB does). 5,000 assignments "Ende April 2024" of the
/// "Rundbrief" all end on the run of 1 May, in pages, and the rest of the run (listing, sweep) runs.
#[tokio::test]
async fn h4_r_a9_a_month_end_with_5000_due_assignments_ends_every_one_in_pages() {
    let h = harness(Provider::Brevo, berlin(2024, 4, 10, 12)).await;
    for i in 0..5_000 {
        h.change(assignment(
            &format!("a{i:05}"),
            &format!("leser{i:05}@example.com"),
            Some("2024-04"),
            berlin(2024, 4, 10, 12),
        ))
        .await;
    }
    h.change(assignment("b1", "erika@example.com", None, berlin(2024, 4, 10, 12))).await;
    assert_eq!(h.receiving().len(), 5_001);

    h.clock.set(berlin(2024, 5, 1, 6));
    let finished = h.run_to_end().await;
    assert_eq!(h.receiving(), ["erika@example.com"], "every assignment ending April 2024 left the list (R-A2)");
    assert!(finished.counts.esp_operations >= 5_000, "{:?}", finished.counts);
    assert!(finished.error.is_none() && finished.complete, "the list was read and swept: {:?}", finished.error);
    let due = h.store.due(&h.link, "2024-05-01".parse().unwrap(), 1000).await.unwrap();
    assert!(due.is_empty(), "nothing is left due: {} entries", due.len());

    let again = h.run_to_end().await;
    assert_eq!((again.counts.esp_operations, again.counts.commands, again.counts.inputs), (0, 0, 0));
}

/// A listing whose pages take 90 seconds each on the test's clock, and that stops at page `pause_at` (counted
/// from 1) until the test lets it go on, or (`hang`) for ever at once, as an invocation killed there.
struct Slow {
    esp: Arc<MemoryEsp>,
    clock: Arc<optisync_testkit::memory::FixedClock>,
    pages: std::sync::atomic::AtomicU64,
    pause_at: u64,
    hang: bool,
    paused: Arc<tokio::sync::Notify>,
    resume: Arc<tokio::sync::Notify>,
}

impl Slow {
    fn new(h: &Harness, pause_at: u64, hang: bool) -> Arc<Self> {
        Arc::new(Self {
            esp: h.esp.clone(),
            clock: h.clock.clone(),
            pages: Default::default(),
            pause_at,
            hang,
            paused: Default::default(),
            resume: Default::default(),
        })
    }
}

#[async_trait::async_trait]
impl optisync_ports::EspLister for Slow {
    async fn list_page(
        &self,
        link: &Link,
        since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<optisync_ports::ListPage, EspError> {
        let n = self.pages.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if !(self.hang && n == self.pause_at) {
            self.clock.set(self.clock.now() + chrono::Duration::seconds(90));
        }
        if n == self.pause_at {
            self.paused.notify_one();
            if self.hang {
                std::future::pending::<()>().await;
            }
            self.resume.notified().await;
        }
        self.esp.list_page(link, since, cursor).await
    }

    async fn is_listed(&self, link: &Link, email: &Email) -> Result<bool, EspError> {
        self.esp.is_listed(link, email).await
    }

    async fn blocked_page(&self, link: &Link, cursor: Option<&str>) -> Result<optisync_ports::BlockedPage, EspError> {
        self.esp.blocked_page(link, cursor).await
    }
}

/// A reconciliation of 30 members, two a page, whose export is answered: the next invocation lists.
async fn listing_run() -> Harness {
    let h = harness(Provider::CleverReach, berlin(2024, 9, 1, 12)).await;
    for i in 0..30 {
        h.esp.set_member(&h.link.esp, &h.link.list, &format!("m{i:02}@example.com"), true);
    }
    h.esp.set_page_size(2);
    assert!(matches!(h.run_once(Budget::default()).await, RunOutcome::Waiting(_)));
    h.answer_with_optigem().await;
    h
}

#[tokio::test]
async fn m9_a_run_whose_invocation_died_is_taken_over_by_the_next_delivery_after_two_minutes() {
    let h = listing_run().await;
    // The invocation reads two list pages, checkpointing after each, and dies (Lambda's timeout) in the
    // middle of the third: its lease is never given back.
    let slow = Slow::new(&h, 3, true);
    let dying = Reconciler::new(h.store.clone(), h.esp.clone(), slow.clone(), h.store.clone(), h.clock.clone());
    let (t, l) = (tenant(), h.link.id.clone());
    let run = tokio::spawn(async move { dying.run(&t, &l, Budget::default()).await });
    slow.paused.notified().await;
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    let died = h.clock.now();
    let checkpoint = h.reconciler.state(&h.link.tenant, &h.link.id).await.unwrap().current.expect("a checkpoint");
    assert_eq!((checkpoint.phase, checkpoint.counts.pages, checkpoint.saved_at), (Phase::List, 2, Some(died)));

    // A delivery a minute on (Lambda's first retry): the dead invocation's lease, renewed at its last
    // checkpoint, still holds, and no delivery can tell a dead holder from a live one.
    h.clock.set(died + chrono::Duration::minutes(1));
    assert_eq!(h.run_once(Budget::default()).await, RunOutcome::Busy);
    // Its second retry, two minutes after the first: the lease ran out two minutes after the last checkpoint,
    // and the delivery continues the run from it.
    h.clock.set(died + chrono::Duration::minutes(3));
    let RunOutcome::Continue(p) = h.run_once(Budget { max_pages: Some(1), ..Default::default() }).await else {
        panic!("the checkpointed run is continued")
    };
    assert_eq!((p.counts.pages, p.stale_takeovers), (3, 1), "continued from page 2 and counted as StaleRun");
    let finished = h.run_to_end().await;
    assert_eq!((finished.counts.pages, finished.counts.members), (15, 30));
}

#[tokio::test]
async fn m9_a_live_run_keeps_its_lease_while_it_checkpoints() {
    let h = listing_run().await;
    // Every list page takes 90 seconds: twelve of them take the run beyond the 16 minutes a lease taken once
    // would hold, while it renews its 2-minute lease at every checkpoint.
    let started = h.clock.now();
    let slow = Slow::new(&h, 12, false);
    let live = Reconciler::new(h.store.clone(), h.esp.clone(), slow.clone(), h.store.clone(), h.clock.clone());
    let (t, l) = (tenant(), h.link.id.clone());
    let run = tokio::spawn(async move { live.run(&t, &l, Budget::default()).await });
    slow.paused.notified().await;
    assert_eq!(h.clock.now() - started, chrono::Duration::minutes(18));
    // Another delivery in the middle of page 12, 90 seconds after the last checkpoint: the run is alive.
    assert_eq!(h.run_once(Budget::default()).await, RunOutcome::Busy);
    slow.resume.notify_one();
    let RunOutcome::Finished(finished) = run.await.unwrap().unwrap() else { panic!("the live run finishes") };
    assert_eq!((finished.counts.pages, finished.counts.members, finished.invocations), (15, 30, 2));
    assert!(h.reconciler.state(&h.link.tenant, &h.link.id).await.unwrap().current.is_none());
}

/// A dry run of the harness's link (not linked yet) whose first sync is asked for: its shadow link.
async fn dry_run(h: &Harness) -> (TenantId, LinkId) {
    let mut draft = h.link.clone();
    draft.status = LinkStatus::NotLinked;
    h.store.put_link(&draft).await.unwrap();
    let (dry_tenant, shadow) = h.reconciler.start_preview(&draft).await.unwrap();
    let RunOutcome::Waiting(_) = h.reconciler.run(&dry_tenant, &shadow, Budget::default()).await.unwrap() else {
        panic!("the dry run waits for the export")
    };
    (dry_tenant, shadow)
}

/// Scheduler ticks six hours apart, each reconciliation announced run at once: the exports asked of the
/// tenant's connector since, and the links the last tick announced.
async fn ticks(h: &Harness, n: usize) -> (usize, usize) {
    let bus = optisync_testkit::memory::MemoryBus::default();
    let exports = || async {
        let all = h.store.commands(&tenant(), 0, 1000).await.unwrap();
        all.iter().filter(|(_, c)| matches!(c, OptigemCommand::ExportNewsletter { .. })).count()
    };
    let before = exports().await;
    let mut announced = 0;
    for _ in 0..n {
        h.clock.set(h.clock.now() + chrono::Duration::hours(6));
        let tick = optisync_app::schedule::tick(h.store.as_ref(), h.store.as_ref(), &bus, h.clock.now()).await.unwrap();
        announced = tick.reconciles;
        for event in bus.drain() {
            if let optisync_ports::BusEvent::ReconcileLink { tenant, link } = event {
                h.reconciler.run(&tenant, &link, Budget::default()).await.unwrap();
            }
        }
    }
    (exports().await - before, announced)
}

#[tokio::test]
async fn m9_a_failing_dry_run_stops_requesting_exports() {
    let h = harness(Provider::Brevo, berlin(2024, 9, 1, 12)).await;
    let (dry_tenant, shadow) = dry_run(&h).await;
    let export = h.store.commands(&tenant(), 0, 1000).await.unwrap().into_iter().find_map(|(_, c)| match c {
        OptigemCommand::ExportNewsletter { id, .. } => Some(id),
        _ => None,
    });
    let failed = CommandResult::Failed { reason: "export failed".into() };
    h.store.record_result(&tenant(), &export.unwrap(), &failed).await.unwrap();
    let RunOutcome::Finished(run) = h.reconciler.run(&dry_tenant, &shadow, Budget::default()).await.unwrap() else {
        panic!("the dry run finishes")
    };
    assert_eq!(run.error.as_deref(), Some("the connector could not export the newsletter"));

    // The abandoned dry run rests: no tick announces it, no new export is asked for.
    assert_eq!(ticks(&h, 4).await, (0, 0));
    let preview = h.reconciler.preview(&tenant(), &h.link.id, 10).await.unwrap().expect("the dry run");
    let last = preview.state.last.expect("its failed run");
    assert_eq!(last.error.as_deref(), Some("the connector could not export the newsletter"), "shown to the admin");
    // A new dry run asks again.
    dry_run(&h).await;
    assert_eq!(h.store.commands(&tenant(), 0, 1000).await.unwrap().len(), 2);
}

#[tokio::test]
async fn m9_a_dry_run_whose_export_never_comes_gives_up_after_the_export_wait() {
    let h = harness(Provider::Brevo, berlin(2024, 9, 1, 12)).await;
    dry_run(&h).await;
    // The connector never answers: the first tick (6 hours on, beyond the export wait) ends the dry run with
    // the problem; no tick announces it again.
    assert_eq!(ticks(&h, 1).await, (0, 1));
    let preview = h.reconciler.preview(&tenant(), &h.link.id, 10).await.unwrap().expect("the dry run");
    let last = preview.state.last.expect("its failed run");
    assert_eq!(last.error.as_deref(), Some("the connector did not answer the export in time"));
    assert_eq!(ticks(&h, 3).await, (0, 0));
}
