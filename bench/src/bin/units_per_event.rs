//! Benchmark: DynamoDB read and write units per processed event, for the main event kinds, through the
//! real engine on the DynamoDB store. Run: `bash bench/dynamodb-units`.

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use chrono::{TimeZone, Utc};
use optisync_app::Engine;
use optisync_domain::*;
use optisync_dynamodb::DynamoStore;
use optisync_ports::prelude::*;
use optisync_testkit::build;
use optisync_testkit::memory::{FixedClock, MemoryEsp};
use std::sync::Arc;

const ROUNDS: u32 = 20;

/// Makes the n-th event of one kind.
type MakeInput = Box<dyn Fn(u32) -> Input>;

fn snapshot(n: u32, version: u64, first: &str) -> Assignment {
    let created = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let mut a =
        build::at_version(build::assignment(&format!("a{n}"), "nl", &format!("user{n}@example.org"), created), version);
    a.end = Some("2030-12".parse().unwrap());
    a.person.first_name = Some(PersonalText::new(first));
    a.person.last_name = Some(PersonalText::new("Muster"));
    a.person.letter_salutation = Some(PersonalText::new("Lieber Herr Muster"));
    a
}

#[tokio::main]
async fn main() {
    let endpoint = std::env::var("OPTISYNC_TEST_DYNAMODB_ENDPOINT").expect("run through bench/dynamodb-units");
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("eu-central-1"))
        .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
        .build();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), "units-bench");
    store.create_table().await.expect("table");
    let tenant = TenantId::new("t1");
    let link = Link {
        id: LinkId::new("l1"),
        tenant: tenant.clone(),
        newsletter: NewsletterId::new("nl"),
        esp: EspAccount { provider: Provider::CleverReach, account: AccountId::new("acc") },
        list: ListId::new("g1"),
        segment: None,
        settings: LinkSettings {
            mapping: FieldMapping { first_name: Some(AttributeName::new("firstname")), ..Default::default() },
            ..Default::default()
        },
        status: LinkStatus::Linked,
    };
    store.put_link(&link).await.unwrap();
    let store = Arc::new(store);
    let clock = Arc::new(FixedClock::new(Utc.with_ymd_and_hms(2024, 9, 25, 10, 0, 0).unwrap()));
    let engine = Engine::new(store.clone(), Arc::new(MemoryEsp::new()), clock);
    store.take_usage();

    let kinds: Vec<(&str, MakeInput)> = vec![
        ("assignment.changed (new)", Box::new(|n| Input::AssignmentChanged { assignment: snapshot(n, 1, "Max") })),
        (
            "assignment.changed (mapped name)",
            Box::new(|n| Input::AssignmentChanged { assignment: snapshot(n, 2, "Maxi") }),
        ),
        (
            "assignment.changed (duplicate delivery)",
            Box::new(|n| Input::AssignmentChanged { assignment: snapshot(n, 2, "Maxi") }),
        ),
        (
            "esp unsubscribed",
            Box::new(move |n| {
                Input::Esp(EspEvent {
                    esp: EspAccount { provider: Provider::CleverReach, account: AccountId::new("acc") },
                    list: Some(ListId::new("g1")),
                    email: Email::parse(&format!("user{n}@example.org")).unwrap(),
                    at: Utc.with_ymd_and_hms(2024, 9, 25, 8, 0, 0).unwrap(),
                    what: EspEventKind::Unsubscribed,
                })
            }),
        ),
        (
            "esp signup (approval queue)",
            Box::new(move |n| {
                Input::Esp(EspEvent {
                    esp: EspAccount { provider: Provider::CleverReach, account: AccountId::new("acc") },
                    list: Some(ListId::new("g1")),
                    email: Email::parse(&format!("new{n}@example.org")).unwrap(),
                    at: Utc.with_ymd_and_hms(2024, 9, 25, 8, 0, 0).unwrap(),
                    what: EspEventKind::Signup { signup: Signup::default() },
                })
            }),
        ),
        (
            "assignment.deleted",
            Box::new(|n| Input::AssignmentDeleted {
                id: AssignmentId::new(format!("a{n}")),
                newsletter: NewsletterId::new("nl"),
                version: 9,
            }),
        ),
    ];

    println!("DynamoDB capacity per processed event ({ROUNDS} events each, engine on the DynamoDB store)");
    println!("{:<42} {:>10} {:>10} {:>10}", "event", "RCU/event", "WCU/event", "requests");
    for (name, make) in &kinds {
        for n in 0..ROUNDS {
            engine.process(&tenant, &make(n)).await.expect("processed");
        }
        let usage = store.take_usage();
        let per = |x: f64| x / ROUNDS as f64;
        println!(
            "{name:<42} {:>10.2} {:>10.2} {:>10.1}",
            per(usage.read_units),
            per(usage.write_units),
            usage.requests as f64 / ROUNDS as f64
        );
    }
}
