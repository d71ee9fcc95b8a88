//! 1,000 distinct ESP webhooks — 600 signups of new addresses and 400 unsubscribes of subscribers — each
//! delivered one to five times, in random order, give exactly 1,000 logical effects: 600 approval entries
//! with one `match_persons` each, and 400 `end_assignment` commands; no entry twice.

use optisync_domain::*;
use optisync_e2e::{Stack, email};
use optisync_optigem_sim::{AssignmentDraft, PersonDraft};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_webhooks_delivered_one_to_five_times_shuffled_have_a_thousand_effects() {
    let stack = Stack::start().await;
    let link = stack
        .link_brevo(
            "NL-1",
            LinkSettings {
                mapping: FieldMapping { first_name: Some(AttributeName::new("FIRSTNAME")), ..Default::default() },
                ..Default::default()
            },
        )
        .await;
    let list: i64 = link.list.as_str().parse().unwrap();
    // The subscribers' assignments exist before their unsubscribes of 2024-09-25: an unsubscribe dated
    // before the assignment's start ends nothing (R-D1, R-J3; the rule-fidelity findings B2 and B16).
    stack.optigem.set_now("2024-09-01T10:00:00Z".parse().unwrap());
    for n in 0..400 {
        let p = stack.optigem.add_person(PersonDraft {
            first_name: Some(format!("Vorname{n}")),
            emails: vec![(format!("abonnent{n}@example.com"), 1)],
            ..Default::default()
        });
        stack.optigem.add_assignment(&p, &NewsletterId::new("NL-1"), AssignmentDraft::default());
    }
    stack.sync().await;
    let before = stack.commands().await.len();

    let base = 1_727_255_737_i64; // 2024-09-25
    let mut webhooks: Vec<serde_json::Value> = (0..400)
        .map(|n| {
            json!({"id": 1, "camp_id": 12, "email": format!("abonnent{n}@example.com"), "event": "unsubscribed",
                "list_id": [list], "ts_event": base + n, "ts": base + n + 60})
        })
        .chain((0..600).map(|n| {
            json!({"id": 1, "email": format!("neu{n}@example.com"), "event": "list_addition", "key": "k",
                "list_id": [list], "date": "2024-09-25 12:00:00", "ts": base + 1000 + n})
        }))
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1000);
    let mut deliveries: Vec<&serde_json::Value> = Vec::new();
    for webhook in &webhooks {
        for _ in 0..rand::Rng::random_range(&mut rng, 1..=5) {
            deliveries.push(webhook);
        }
    }
    deliveries.shuffle(&mut rng);
    let total = deliveries.len();
    for (n, body) in deliveries.into_iter().enumerate() {
        assert_eq!(stack.brevo_webhook(body).await, 200);
        if n % 97 == 0 {
            stack.deliver().await; // the worker runs while webhooks keep coming
        }
    }
    stack.deliver().await;

    let commands = stack.commands().await;
    let new: Vec<&OptigemCommand> = commands[before..].iter().collect();
    let ends = new.iter().filter(|c| matches!(c, OptigemCommand::EndAssignment { .. })).count();
    let matches = new.iter().filter(|c| matches!(c, OptigemCommand::MatchPersons { .. })).count();
    assert_eq!((ends, matches, new.len()), (400, 600, 1000), "{total} deliveries");
    let mut pending = 0;
    for n in 0..600 {
        let entry = stack.approval(&link, &email(&format!("neu{n}@example.com"))).await.expect("queued");
        assert_eq!(entry.signups, 1, "a repeated delivery is not a second signup");
        pending += usize::from(entry.status == ApprovalStatus::Pending);
    }
    assert_eq!(pending, 600);
    webhooks.clear();
    println!("{total} deliveries of 1000 webhooks → {} commands", new.len());
}
