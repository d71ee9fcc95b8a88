//! Properties of the scheduled run over generated states of both sides: reconciling twice in a row plans
//! nothing the second time (R-F6), also after settings changes that re-plan the linked assignments
//! (R-A10), with recipients the ESP held deactivated before OPTIGEM's
//! assignment existed (R-D1) and with the ESP's echoes of optisync's own writes (R-C6); and a large list runs across many short invocations with every page
//! read and committed once, a kill in the middle of a page repeating no effect.

use chrono::Duration;
use optisync_app::reconcile::{Budget, Guard, Phase, RunKind, RunOutcome};
use optisync_domain::*;
use optisync_ports::Clock;
use optisync_ports::prelude::*;
use proptest::prelude::*;

use crate::common;
use common::*;

/// How OPTIGEM holds one person's assignment.
#[derive(Debug, Clone, Copy)]
enum Optigem {
    /// Open-ended.
    Open,
    /// Ends with August 2024: due at the run of 25 September (R-A9).
    EndsAugust,
    /// Ends with December 2024: still running.
    EndsDecember,
    /// Ended in January, before the link existed.
    EndedJanuary,
    /// Created in OPTIGEM, but the change event never arrived (only the run's export shows it).
    Lost,
}

/// What happened to the recipient in the ESP since the sync last saw it, without a webhook.
#[derive(Debug, Clone, Copy)]
enum Drift {
    None,
    /// Taken off the list / deleted in the ESP (R-E1).
    Removed,
    /// Deactivated in the group; in Brevo: blacklisted (R-E1, R-E2).
    Deactivated,
    /// A second e-mail of the person was put on the list by someone in the ESP.
    Stranger,
}

/// What the ESP held of the recipient before OPTIGEM's assignment reached optisync.
#[derive(Debug, Clone, Copy)]
enum Before {
    Nothing,
    /// Deactivated before optisync saw it (R-D1, B2): CleverReach: a receiver of the group inactive
    /// since 2023; Brevo: a contact blacklisted from a list that is not linked.
    Held,
}

/// What the admin does to the link's settings after OPTIGEM's changes and before the run (R-A10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settings {
    Unchanged,
    /// Ticks the privacy category "E-Mail" as relevant.
    TickEmail,
    /// Ticks it, and unticks it again before the run.
    TickAndUntick,
}

#[derive(Debug, Clone)]
struct World {
    /// Per person: whether its privacy category "E-Mail" is blocked.
    blocked: Vec<bool>,
    settings: Settings,
    provider: Provider,
    persons: Vec<(Optigem, Drift, Before)>,
    /// Whether the ESP reports optisync's own writes back (a CleverReach receiver webhook, Brevo's
    /// list-addition webhook) a second after each of them (R-C6).
    echoes: bool,
    /// Members only the ESP knows: (receives mail).
    strangers: Vec<bool>,
    page_size: usize,
}

fn world() -> impl Strategy<Value = World> {
    let optigem = prop_oneof![
        4 => Just(Optigem::Open),
        1 => Just(Optigem::EndsAugust),
        1 => Just(Optigem::EndsDecember),
        1 => Just(Optigem::EndedJanuary),
        1 => Just(Optigem::Lost),
    ];
    let drift = prop_oneof![4 => Just(Drift::None), 1 => Just(Drift::Removed), 1 => Just(Drift::Deactivated), 1 => Just(Drift::Stranger)];
    let before = prop_oneof![3 => Just(Before::Nothing), 1 => Just(Before::Held)];
    (
        prop_oneof![Just(Provider::Brevo), Just(Provider::CleverReach)],
        prop::collection::vec((optigem, drift, before), 0..12),
        any::<bool>(),
        prop::collection::vec(any::<bool>(), 0..4),
        1usize..6,
        prop::collection::vec(any::<bool>(), 12),
        prop_oneof![2 => Just(Settings::Unchanged), 1 => Just(Settings::TickEmail), 1 => Just(Settings::TickAndUntick)],
    )
        .prop_map(|(provider, persons, echoes, strangers, page_size, blocked, settings)| World {
            provider,
            persons,
            echoes,
            strangers,
            page_size,
            blocked,
            settings,
        })
}

/// What the ESP reports back after optisync's writes since `from` (its index into the write log):
/// CleverReach's receiver webhook, re-read, shows the receiver as it is now (active: a signup; inactive: a
/// deactivation, dated by its stamp); Brevo's list-addition webhook reports a contact optisync put on the
/// list. Dated when the writes were made (the test clock stands still while optisync writes) unless the
/// ESP shows an older stamp. A report of just what optisync wrote changes nothing (R-C6); one that shows
/// something else (a receiver inactive since 2023 that an upsert left inactive) is news the link acts on.
async fn deliver_echoes(h: &Harness, from: usize) -> Result<usize, TestCaseError> {
    let applied = h.esp.applied();
    let mut written: Vec<&EspAction> = applied[from..]
        .iter()
        .filter(|a| matches!(a.op, EspOp::AddToList | EspOp::Activate | EspOp::Deactivate))
        .collect();
    written.dedup_by(|a, b| a.list == b.list && a.email == b.email);
    for a in written {
        let Some((active, stamp)) = h.esp.member(&a.esp, &a.list, a.email.key()) else { continue };
        let what = match (a.esp.provider, active) {
            (_, true) => EspEventKind::Signup { signup: Signup::default() },
            (Provider::CleverReach, false) => EspEventKind::Deactivated,
            (Provider::Brevo, false) => continue,
        };
        let own = active != (a.op == EspOp::Deactivate);
        let at = stamp.unwrap_or_else(|| h.clock.now());
        let echo = EspEvent { esp: a.esp.clone(), list: Some(a.list.clone()), email: a.email.clone(), at, what };
        let (calls, feed) = (h.esp.mutating_calls(), h.feed().await.len());
        h.engine.process(&tenant(), &Input::Esp(echo.clone())).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
        if own {
            prop_assert_eq!(h.esp.mutating_calls(), calls, "an echo makes no ESP call: {:?}", echo);
            prop_assert_eq!(h.feed().await.len(), feed, "an echo makes no OPTIGEM command: {:?}", echo);
        }
    }
    Ok(applied.len())
}

async fn reconcile_twice(world: World) -> Result<(), TestCaseError> {
    let t0 = berlin(2024, 9, 1, 12);
    let mut h = harness(world.provider, t0).await;
    h.reconciler = h.reconciler.clone().with_guard(Guard { share: 1.0, min: u64::MAX });
    h.esp.set_page_size(world.page_size);
    let (esp, list) = (h.link.esp.clone(), h.link.list.clone());
    let mut echoed = 0;
    for (i, (optigem, drift, before)) in world.persons.iter().enumerate() {
        let mail = format!("p{i:02}@example.com");
        match (before, world.provider) {
            (Before::Nothing, _) => {}
            (Before::Held, Provider::CleverReach) => {
                h.esp.set_member_at(&esp, &list, &mail, false, berlin(2023, 2, 10, 9))
            }
            (Before::Held, Provider::Brevo) => h.esp.blacklist_at(&esp, &mail, berlin(2023, 2, 10, 9)),
        }
        let end = match optigem {
            Optigem::EndsAugust => Some("2024-08"),
            Optigem::EndsDecember => Some("2024-12"),
            Optigem::EndedJanuary => Some("2024-01"),
            Optigem::Open | Optigem::Lost => None,
        };
        let mut a = assignment(&format!("a{i:02}"), &mail, end, t0);
        let privacy = if world.blocked[i] { PrivacyStatus::Blocked } else { PrivacyStatus::Allowed };
        a.person.privacy.insert(PrivacyCategory::new("E-Mail"), privacy);
        if matches!(optigem, Optigem::Lost) {
            h.optigem.lock().unwrap().insert(a.id.as_str().to_owned(), a);
        } else {
            h.change(a).await;
        }
        if world.echoes {
            echoed = deliver_echoes(&h, echoed).await?;
        }
        match drift {
            Drift::None => {}
            Drift::Removed => h.esp.remove_member(&esp, &list, &mail),
            Drift::Deactivated if world.provider == Provider::Brevo => h.esp.blacklist(&esp, &mail),
            Drift::Deactivated => h.esp.set_member(&esp, &list, &mail, false),
            Drift::Stranger => h.esp.set_member(&esp, &list, &format!("p{i:02}.private@example.com"), true),
        }
    }
    for (i, receiving) in world.strangers.iter().enumerate() {
        h.esp.set_member(&esp, &list, &format!("s{i:02}@example.com"), *receiving);
    }

    // R-A10: the admin changes the link's settings; each save asks for a re-plan of the linked assignments.
    let ticks: &[bool] = match world.settings {
        Settings::Unchanged => &[],
        Settings::TickEmail => &[true],
        Settings::TickAndUntick => &[true, false],
    };
    for tick in ticks {
        let mut link = h.link.clone();
        link.settings.relevant_privacy =
            if *tick { [PrivacyCategory::new("E-Mail")].into() } else { Default::default() };
        h.store.put_link(&link).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
        h.reconciler
            .request_replan(&tenant(), &link.id, "settings")
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    let email_relevant = world.settings == Settings::TickEmail;

    h.clock.set(berlin(2024, 9, 25, 12));
    // The settings run comes first where one was asked for; the reconciliation follows it.
    let mut first = h.run_to_end().await;
    for _ in 0..ticks.len() {
        prop_assert!(first.error.is_none() && first.failures.is_empty(), "{first:?}");
        if first.kind == RunKind::Sync {
            break;
        }
        first = h.run_to_end().await;
    }
    prop_assert_eq!(first.kind, RunKind::Sync);
    prop_assert!(first.error.is_none() && first.failures.is_empty(), "{first:?}");
    if world.echoes {
        deliver_echoes(&h, echoed).await?;
    }

    // The second run, six hours later, finds both sides in step.
    let (calls, feed, audit) = (h.esp.mutating_calls(), h.feed().await.len(), h.audit_len().await);
    h.clock.set(h.clock.now() + Duration::hours(6));
    let second = h.run_to_end().await;
    let c = second.counts;
    prop_assert_eq!((c.inputs, c.deferred, c.esp_operations, c.commands), (0, 0, 0, 0), "{:?}", second);
    prop_assert_eq!(h.esp.mutating_calls(), calls, "no ESP call");
    prop_assert_eq!(h.feed().await.len(), feed, "no OPTIGEM command");
    prop_assert_eq!(h.audit_len().await, audit, "no audit entry: nothing was changed");

    // And the first run left the list as the rules want it: every open assignment whose recipient the
    // ESP did not deactivate, remove or blacklist receives mail; nobody ended or expired does.
    let receiving = h.receiving();
    for (i, (optigem, drift, before)) in world.persons.iter().enumerate() {
        let mail = format!("p{i:02}@example.com");
        // The change's read of the recipient (R-D1) activated it at once; a lost assignment's recipient is
        // still inactive since 2023 when the ESP's admin "deactivates" it again, which changes nothing
        // (CleverReach's stamp, Brevo's statistics stay 2023): the run activates it as R-D1 wants.
        let activated_before_drift = !matches!(optigem, Optigem::Lost);
        let drift = match (drift, before) {
            (Drift::Deactivated, Before::Held) if !activated_before_drift => &Drift::None,
            _ => drift,
        };
        // (A lost assignment's recipient was never on the list: nothing could remove it.)
        let removed = matches!(drift, Drift::Removed) && !matches!(optigem, Optigem::Lost);
        let ticked_away = email_relevant && world.blocked[i];
        let should = matches!(optigem, Optigem::Open | Optigem::EndsDecember | Optigem::Lost)
            && !ticked_away
            && !removed
            && !matches!(drift, Drift::Deactivated);
        prop_assert_eq!(receiving.contains(&mail), should, "{} ({:?}, {:?})", mail, optigem, drift);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn r_f6_reconciling_twice_in_a_row_plans_nothing_the_second_time(world in world()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(reconcile_twice(world))?;
    }
}

/// 50,000 recipients, 1 % changed in Brevo without a webhook (500 blacklisted), 500 strangers on the list
/// (every list page holds five of each).
#[tokio::test]
async fn fifty_thousand_recipients_run_across_short_invocations_each_page_once_and_a_kill_mid_page_repeats_nothing() {
    let n = 50_000;
    let t0 = berlin(2024, 9, 1, 12);
    let h = harness(Provider::Brevo, t0).await;
    let mail = |i: usize| format!("m{i:05}@example.com");
    for i in 0..n {
        h.change(assignment(&format!("a{i:05}"), &mail(i), None, t0)).await;
    }
    for i in (0..n).step_by(100) {
        h.esp.blacklist(&h.link.esp, &mail(i));
        h.esp.set_member(&h.link.esp, &h.link.list, &format!("m{i:05}.neu@example.com"), true);
    }
    h.esp.set_page_size(500);
    h.clock.set(berlin(2024, 9, 25, 12));
    let calls = h.esp.mutating_calls();

    // The export (OPTIGEM answers with the 50,000 assignments, 500 a page), then invocations with a
    // budget of 30 ms each; one of them is killed in the middle of a list page (its third commit fails).
    assert!(matches!(h.run_once(Budget::default()).await, RunOutcome::Waiting(_)));
    h.answer_with_optigem().await;
    let (mut invocations, mut killed, mut listing_pages_done) = (1, 0, 0);
    let finished = loop {
        invocations += 1;
        let budget = Budget {
            deadline: Some(std::time::Instant::now() + std::time::Duration::from_millis(30)),
            ..Default::default()
        };
        match h.reconciler.run(&tenant(), &h.link.id, budget).await {
            Ok(RunOutcome::Finished(f)) => break f,
            Ok(RunOutcome::Continue(p)) => {
                assert_progress(&p, &mut listing_pages_done);
                if killed == 0 && p.phase == Phase::List && p.counts.pages > 150 {
                    h.store.fail_commit_after(2);
                    killed = 1;
                }
            }
            Ok(other) => panic!("{other:?}"),
            Err(e) => {
                assert_eq!(killed, 1, "only the injected failure: {e}");
                killed = 2;
            }
        }
        assert!(invocations < 100_000, "the run makes progress");
    };
    assert_eq!(killed, 2, "the kill happened in the middle of a list page");
    assert!(invocations > 5, "several continuations: {invocations}");

    // Every page committed once: 250 snapshot pages (200 a page, M8) and 101 list pages; the killed page was read again.
    let c = finished.counts;
    assert_eq!((c.pages, c.members, c.imported), (250 + 101, (n + n / 100) as u64, n as u64));
    assert_eq!(h.esp.list_reads(), 101 + 1);
    // Every effect exactly once despite the kill.
    let feed = h.feed().await;
    let ends = feed.iter().filter(|c| matches!(c, OptigemCommand::EndAssignment { .. })).count();
    let queued = feed.iter().filter(|c| matches!(c, OptigemCommand::MatchPersons { .. })).count();
    assert_eq!((ends, queued), (n / 100, n / 100));
    assert_eq!(h.esp.mutating_calls() - calls, (n / 100) as u64, "one removal per blacklisted member");
    assert_eq!(h.receiving().len(), n - n / 100 + n / 100, "everybody else and the strangers still on the list");
}

/// A continuation moved on: the checkpoint never goes back.
fn assert_progress(p: &optisync_app::reconcile::Progress, pages: &mut u64) {
    assert!(p.counts.pages >= *pages, "a checkpoint went back");
    *pages = p.counts.pages;
}
