//! At-least-once delivery with exactly-once effects: the same change event delivered five times, and a
//! hundred events delivered shuffled and repeated, leave the ESPs exactly as one ordered delivery does —
//! counted as mutating calls at the fakes.

use optisync_domain::*;
use optisync_e2e::Stack;
use optisync_optigem_sim::{AssignmentDraft, PersonDraft};
use optisync_ports::BusEvent;
use optisync_ports::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde_json::Value;
use std::collections::BTreeMap;

fn settings(attribute: &str) -> LinkSettings {
    LinkSettings {
        mapping: FieldMapping { first_name: Some(AttributeName::new(attribute)), ..Default::default() },
        ..Default::default()
    }
}

/// Who receives mail, with which name: per address, whether it is on the Brevo list and not blacklisted,
/// and active in the CleverReach group, with the first name each holds for a recipient that receives.
/// (An inactive recipient's fields are not written, R-D3, and a recipient that was created and taken off
/// again by intermediate versions need not exist when only the last version arrives.)
fn receiving(stack: &Stack, cr_group: &str, emails: &[String]) -> BTreeMap<String, Value> {
    emails
        .iter()
        .map(|e| {
            let brevo = stack
                .brevo
                .contact(e)
                .filter(|c| !c.list_ids.is_empty() && !c.email_blacklisted)
                .map(|c| serde_json::json!({"lists": c.list_ids, "first": c.attributes.get("FIRSTNAME")}));
            let cr = stack
                .cleverreach
                .receiver(cr_group, e)
                .filter(|r| r.active)
                .map(|r| serde_json::json!({"first": r.global_attributes.get("firstname")}));
            (e.clone(), serde_json::json!({"brevo": brevo, "cleverreach": cr}))
        })
        .collect()
}

/// What both ESPs hold for the given addresses: Brevo (lists, blacklist, first name) and CleverReach
/// (active, first name) per address.
fn esp_state(stack: &Stack, cr_group: &str, emails: &[String]) -> BTreeMap<String, Value> {
    emails
        .iter()
        .map(|e| {
            let brevo = stack.brevo.contact(e).map(|c| {
                serde_json::json!({
                    "lists": c.list_ids, "blacklisted": c.email_blacklisted, "first": c.attributes.get("FIRSTNAME"),
                })
            });
            let cr = stack
                .cleverreach
                .receiver(cr_group, e)
                .map(|r| serde_json::json!({"active": r.active, "first": r.global_attributes.get("firstname")}));
            (e.clone(), serde_json::json!({"brevo": brevo, "cleverreach": cr}))
        })
        .collect()
}

async fn linked() -> (Stack, String) {
    let stack = Stack::start().await;
    stack.link_brevo("NL-1", settings("FIRSTNAME")).await;
    let cr = stack.link_cleverreach("NL-1", settings("firstname")).await;
    (stack, cr.list.as_str().to_owned())
}

#[tokio::test]
async fn one_event_delivered_five_times_has_the_effects_of_one_delivery() {
    let mails = vec!["max.muster@example.com".to_owned()];
    let make = |stack: &Stack| {
        let p = stack.optigem.add_person(PersonDraft {
            first_name: Some("Max".into()),
            emails: vec![(mails[0].clone(), 1)],
            ..Default::default()
        });
        stack.optigem.add_assignment(&p, &NewsletterId::new("NL-1"), AssignmentDraft::default());
    };

    let (once, once_group) = linked().await;
    make(&once);
    once.sync().await;

    let (five, five_group) = linked().await;
    make(&five);
    let events = five.optigem.take_events();
    for _ in 0..5 {
        // The connector retries the same message, and also sends the same change as new messages.
        assert_eq!(five.connector.send_events(&events, "msg-1").await.unwrap().as_u16(), 202);
    }
    for n in 0..4 {
        five.connector.send_events(&events, &format!("msg-again-{n}")).await.unwrap();
    }
    let ready = five.bus.take();
    assert_eq!(ready.len(), 5, "one inbox entry per message id");
    for event in ready.iter().cycle().take(25) {
        optisync_local::invoke_worker(&five.worker, event).await.unwrap();
    }
    assert_eq!(five.esp_mutations(), once.esp_mutations(), "the same mutating calls as one delivery");
    assert_eq!(esp_state(&five, &five_group, &mails), esp_state(&once, &once_group, &mails));
    // One audit entry per link, as after one delivery: the redeliveries changed nothing and left no trace.
    for stack in [&once, &five] {
        for link in stack.store.links(&stack.tenant).await.unwrap() {
            let trail = stack.store.audit(&link.tenant, &link.id, chrono::Utc::now(), 10).await.unwrap();
            assert_eq!(trail.len(), 1, "{trail:?}");
            assert_eq!(trail[0].input, "assignment.changed");
            let ops: Vec<&str> = trail[0].esp.iter().map(|o| o.op.as_str()).collect();
            assert_eq!(ops, ["upsert", "add_to_list"]);
            assert_eq!(trail[0].esp[0].recipient, "m***@e***.com", "masked (R-J5)");
        }
    }
}

/// 100 events: 40 assignments created, 30 of them renamed, 20 of them ended (count 0), 10 of them
/// reactivated. Delivered in order once, versus shuffled with every message sent 1–3 times and every
/// worker invocation repeated 1–3 times.
#[tokio::test]
async fn a_hundred_events_shuffled_and_repeated_end_where_one_ordered_delivery_ends() {
    let mails: Vec<String> = (0..40).map(|n| format!("person{n}@example.com")).collect();
    let make = |stack: &Stack| {
        let mut ids = Vec::new();
        for (n, mail) in mails.iter().enumerate() {
            let p = stack.optigem.add_person(PersonDraft {
                first_name: Some(format!("Vorname{n}")),
                emails: vec![(mail.clone(), 1)],
                ..Default::default()
            });
            ids.push((
                p.clone(),
                stack.optigem.add_assignment(&p, &NewsletterId::new("NL-1"), AssignmentDraft::default()),
            ));
        }
        for (p, _) in &ids[..30] {
            stack.optigem.update_person(p, |p| p.first_name = Some(PersonalText::new("Neu")));
        }
        for (_, a) in &ids[..20] {
            stack.optigem.update_assignment(a, |f| f.count = 0);
        }
        for (_, a) in &ids[..10] {
            stack.optigem.update_assignment(a, |f| f.count = 1);
        }
        let events = stack.optigem.take_events();
        assert_eq!(events.len(), 100);
        events
    };

    let (ordered, ordered_group) = linked().await;
    for (n, event) in make(&ordered).into_iter().enumerate() {
        ordered.connector.send_events(&[event], &format!("m{n}")).await.unwrap();
        ordered.deliver().await;
    }

    let (shuffled, shuffled_group) = linked().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut messages: Vec<(usize, ChangeEventOf)> = make(&shuffled).into_iter().enumerate().collect();
    messages.shuffle(&mut rng);
    for (n, event) in &messages {
        for _ in 0..rand::Rng::random_range(&mut rng, 1..=3) {
            shuffled.connector.send_events(std::slice::from_ref(event), &format!("m{n}")).await.unwrap();
        }
    }
    let mut ready = shuffled.bus.take();
    assert_eq!(ready.len(), 100, "each message stored once");
    ready.shuffle(&mut rng);
    for event in &ready {
        for _ in 0..rand::Rng::random_range(&mut rng, 1..=3) {
            optisync_local::invoke_worker(&shuffled.worker, event).await.unwrap();
        }
    }

    assert_eq!(
        receiving(&shuffled, &shuffled_group, &mails),
        receiving(&ordered, &ordered_group, &mails),
        "the same recipients receive mail, with the same names"
    );
    let receivers = receiving(&ordered, &ordered_group, &mails);
    let on_list = receivers.values().filter(|v| !v["brevo"].is_null()).count();
    assert_eq!(on_list, 30, "40 created, 20 ended, 10 of them back");
    // Out of order, a newer version can arrive first: the older one then changes nothing, so a shuffled
    // delivery makes at most the calls of the ordered one, never a duplicate.
    assert!(
        shuffled.esp_mutations() <= ordered.esp_mutations(),
        "{} > {}",
        shuffled.esp_mutations(),
        ordered.esp_mutations()
    );
    assert_eq!(shuffled.commands().await.len(), ordered.commands().await.len());
}

type ChangeEventOf = optisync_connector::wire::ChangeEvent;

/// A worker invocation that fails (here: Brevo refuses the API key) changes nothing and leaves the inbox
/// entry pending. Lambda's retries and the dead-letter queue do not lose it: the scheduler's tick announces
/// it again once it is five minutes old, and the worker then applies it — once.
#[tokio::test]
async fn a_failed_worker_invocation_leaves_the_entry_pending_until_the_scheduler_redrives_it() {
    let stack = Stack::start().await;
    let link = stack.link_brevo("NL-1", settings("FIRSTNAME")).await;
    let p = stack.optigem.add_person(PersonDraft {
        first_name: Some("Max".into()),
        emails: vec![("max.muster@example.com".into(), 1)],
        ..Default::default()
    });
    stack.optigem.add_assignment(&p, &NewsletterId::new("NL-1"), AssignmentDraft::default());
    stack.connector.push_events(&stack.optigem).await.unwrap();
    let ready = stack.bus.take();
    assert_eq!(ready.len(), 1);

    stack.brevo.inject_failures(&[401]);
    let failed = optisync_local::invoke_worker(&stack.worker, &ready[0]).await;
    assert!(failed.is_err(), "the error goes back to Lambda, which retries and then dead-letters");
    let list: i64 = link.list.as_str().parse().unwrap();
    let listed = || stack.brevo.contact("max.muster@example.com").is_some_and(|c| c.list_ids.contains(&list));
    assert!(!listed());

    let store: &dyn StateStore = stack.store.as_ref();
    let young = optisync_app::schedule::tick(store, stack.store.as_ref(), stack.bus.as_ref(), chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(young.redriven, 0, "an entry younger than five minutes may still be in flight");
    let later = chrono::Utc::now() + chrono::Duration::minutes(6);
    let tick = optisync_app::schedule::tick(store, stack.store.as_ref(), stack.bus.as_ref(), later).await.unwrap();
    assert_eq!((tick.redriven, tick.reconciles), (1, 1));
    let redriven: Vec<BusEvent> =
        stack.bus.take().into_iter().filter(|e| matches!(e, BusEvent::InboxReady { .. })).collect();
    assert_eq!(redriven, ready, "the same entry, announced again");
    for event in &redriven {
        optisync_local::invoke_worker(&stack.worker, event).await.unwrap();
    }
    assert!(listed());
    let again = optisync_app::schedule::tick(store, stack.store.as_ref(), stack.bus.as_ref(), later).await.unwrap();
    assert_eq!(again.redriven, 0, "done entries are not re-driven");
}
