//! Property tests of the planner: plans are idempotent, and state-carrying events converge whatever
//! their order and duplication.

use crate::common;
use common::*;
use optisync_domain::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

const NOW: &str = "2024-06-03";
const POOL: [&str; 3] = ["a@example.com", "b@example.com", "c@example.com"];

fn links() -> Vec<Link> {
    vec![cleverreach("nl"), brevo("nl"), brevo("nl2")]
}

/// One version of an assignment, as a small description turned into a snapshot.
#[derive(Debug, Clone)]
struct Version {
    email: usize,
    first_name: usize,
    end_passed: bool,
    count_zero: bool,
}

fn snapshot(id: usize, nl: &str, version: u64, v: &Version, email_pool: &[String]) -> Assignment {
    let mut a = assignment(&format!("a{id}"), nl, &email_pool[v.email]);
    a.created_at = noon("2024-01-01") + chrono::Duration::hours(id as i64);
    a.version = version;
    a.changed_at = noon("2024-02-01") + chrono::Duration::hours(version as i64);
    a.person.first_name = Some(PersonalText::new(["Max", "Erika", "Jo"][v.first_name]));
    if v.end_passed {
        a.end = Some(ym("2024-05"));
    }
    if v.count_zero {
        a.count = 0;
    }
    a
}

fn version() -> impl Strategy<Value = Version> {
    (0..3usize, 0..3usize, any::<bool>(), any::<bool>())
        .prop_map(|(email, first_name, end_passed, count_zero)| Version { email, first_name, end_passed, count_zero })
}

fn any_input() -> impl Strategy<Value = Input> {
    let change = (0..4usize, 1..4u64, version(), prop::bool::ANY).prop_map(|(id, version, v, second)| {
        let pool: Vec<String> = POOL.iter().map(|s| s.to_string()).collect();
        changed(&snapshot(id, if second { "nl2" } else { "nl" }, version, &v, &pool))
    });
    let deletion = (0..4usize, 1..5u64).prop_map(|(id, version)| Input::AssignmentDeleted {
        id: AssignmentId::new(format!("a{id}")),
        newsletter: NewsletterId::new("nl"),
        version,
    });
    // Some reports are dated before any assignment existed (a receiver deactivated long ago, R-D1).
    let esp = (0..3usize, 0..3usize, 0..6usize, 0..28u32).prop_map(|(link, mail, what, dayno)| {
        let l = &links()[link];
        let what = match what {
            0 => EspEventKind::Unsubscribed,
            1 => EspEventKind::Deactivated,
            2 => EspEventKind::Deleted,
            3 => EspEventKind::Blacklisted,
            4 => EspEventKind::Signup { signup: Signup::default() },
            _ => EspEventKind::FieldsChanged,
        };
        let account_wide =
            l.esp.provider == Provider::Brevo && matches!(what, EspEventKind::Blacklisted | EspEventKind::Deleted);
        let when = if dayno == 0 { "2023-02-10".to_owned() } else { format!("2024-06-{dayno:02}") };
        esp_event(l, !account_wide, POOL[mail], &when, what)
    });
    let today = (1..28u32).prop_map(|d| Input::Today { date: day(&format!("2024-06-{d:02}")) });
    prop_oneof![4 => change, 1 => deletion, 2 => esp, 1 => today]
}

/// Recipients the ESP holds deactivated (CleverReach) or blacklisted (Brevo) that optisync never saw
/// (R-D1): per link, which e-mails of the pool.
fn pre_existing() -> impl Strategy<Value = Vec<Vec<bool>>> {
    prop::collection::vec(prop::collection::vec(any::<bool>(), POOL.len()), 3)
}

fn known_with(deactivated: &[Vec<bool>]) -> Known {
    let mut k = known(links());
    for (view, emails) in k.links.iter_mut().zip(deactivated) {
        for (mail, off) in POOL.iter().zip(emails) {
            if *off {
                view.observed
                    .insert(email(mail), optisync_domain::Observed { active: false, since: Some(noon("2023-02-10")) });
            }
        }
    }
    k
}

/// What the ESP reports back of a plan's own writes a moment after they were applied (R-C6): a
/// CleverReach deactivation as a deactivation of the receiver, a list addition or activation as a
/// signup (Brevo's list-addition webhook, CleverReach's re-read of an active receiver).
fn echoes(plan: &Plan) -> Vec<Input> {
    plan.esp
        .iter()
        .filter_map(|a| {
            let what = match a.op {
                EspOp::Deactivate => EspEventKind::Deactivated,
                EspOp::AddToList | EspOp::Activate => EspEventKind::Signup { signup: Signup::default() },
                _ => return None,
            };
            Some(Input::Esp(EspEvent {
                esp: a.esp.clone(),
                list: Some(a.list.clone()),
                email: a.email.clone(),
                at: noon(NOW) + chrono::Duration::seconds(1),
                what,
            }))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Applying a plan and planning the same input again yields an empty plan, from any reachable state,
    /// with recipients the ESP held deactivated before optisync saw them and with the ESP's echoes of
    /// optisync's own writes in the history.
    #[test]
    fn applying_a_plan_then_planning_the_same_input_again_plans_nothing(
        deactivated in pre_existing(),
        history in prop::collection::vec((any_input(), any::<bool>()), 0..25),
        last in any_input(),
    ) {
        let mut k = known_with(&deactivated);
        for (input, echoed) in history {
            let p = step(&mut k, input, NOW);
            if echoed {
                for echo in echoes(&p) {
                    step(&mut k, echo, NOW);
                }
            }
        }
        let first = step(&mut k, last.clone(), NOW);
        let again = plan(&k, &last, noon(NOW));
        prop_assert!(again.is_empty(), "first: {first:?}\nagain: {again:?}");
    }

    /// R-C6: the ESP reporting back what a plan wrote changes nothing, from any reachable state.
    #[test]
    fn the_esp_reporting_back_a_plans_own_writes_plans_nothing(
        deactivated in pre_existing(),
        history in prop::collection::vec(any_input(), 0..25),
        last in any_input(),
    ) {
        let mut k = known_with(&deactivated);
        for input in history {
            step(&mut k, input, NOW);
        }
        let first = step(&mut k, last, NOW);
        for echo in echoes(&first) {
            let p = step(&mut k, echo.clone(), NOW);
            prop_assert!(p.is_empty(), "first: {first:?}\necho: {echo:?}\nplanned: {p:?}");
        }
    }

    /// Any order and any duplication of the same set of assignment snapshots reaches the same final state:
    /// the same mirror versions and the same recipients receiving mail with the same fields.
    ///
    /// Assignments that share an e-mail stay active in every version here: ending one of several
    /// duplicates ends the others (R-C4, documented behaviour), which depends on the order in which
    /// OPTIGEM made the changes and is covered by `r_c4_*` tests instead.
    #[test]
    fn any_order_and_duplication_of_snapshots_converges(
        shared in prop::collection::vec(prop::collection::vec((0..3usize, 0..3usize), 1..4), 0..4),
        solo in prop::collection::vec(prop::collection::vec(version(), 1..4), 0..4),
        deleted in prop::collection::vec(any::<bool>(), 4),
        order in prop::collection::vec(any::<u32>(), 64),
        repeats in prop::collection::vec(0..3usize, 64),
    ) {
        let mut pool: Vec<String> = POOL.iter().map(|s| s.to_string()).collect();
        let mut events = Vec::new();
        for (i, versions) in shared.iter().enumerate() {
            for (n, (email, first_name)) in versions.iter().enumerate() {
                let v = Version { email: *email, first_name: *first_name, end_passed: false, count_zero: false };
                events.push(changed(&snapshot(i, "nl", n as u64 + 1, &v, &pool)));
            }
        }
        for (j, versions) in solo.iter().enumerate() {
            let id = 10 + j;
            pool = vec![format!("solo{id}@example.com")];
            for (n, v) in versions.iter().enumerate() {
                let v = Version { email: 0, ..v.clone() };
                events.push(changed(&snapshot(id, "nl", n as u64 + 1, &v, &pool)));
            }
            if deleted[j] {
                let id = AssignmentId::new(format!("a{id}"));
                events.push(Input::AssignmentDeleted { id, newsletter: NewsletterId::new("nl"), version: versions.len() as u64 + 1 });
            }
        }

        let ordered = {
            let mut k = known(links());
            for e in &events { step(&mut k, e.clone(), NOW); }
            k
        };
        let shuffled = {
            let mut delivered: Vec<(u32, Input)> = Vec::new();
            for (i, e) in events.iter().enumerate() {
                for r in 0..=repeats[i % repeats.len()] {
                    delivered.push((order[(i * 3 + r) % order.len()].wrapping_add(r as u32), e.clone()));
                }
            }
            delivered.sort_by_key(|(key, _)| *key);
            let mut k = known(links());
            for (_, e) in delivered { step(&mut k, e, NOW); }
            k
        };
        prop_assert_eq!(observable(&ordered), observable(&shuffled));
    }
}

/// Per link: mirror versions, and who receives mail with which fields.
type Observed = (LinkId, BTreeMap<AssignmentId, u64>, BTreeMap<String, String>);

/// What the outside world sees: mirror versions, and per link who receives mail with which fields.
fn observable(k: &Known) -> Vec<Observed> {
    k.links
        .iter()
        .map(|v| {
            let versions = v.mirror.iter().map(|(id, e)| (id.clone(), e.version)).collect();
            let receiving = v
                .recipients
                .iter()
                .filter(|(_, r)| r.listed && r.active)
                .map(|(e, r)| {
                    (
                        e.key().to_owned(),
                        format!(
                            "{:?}",
                            r.synced_fields.as_ref().map(|f| f
                                .0
                                .values()
                                .map(|x| x.expose().to_owned())
                                .collect::<Vec<_>>())
                        ),
                    )
                })
                .collect();
            (v.link.id.clone(), versions, receiving)
        })
        .collect()
}
