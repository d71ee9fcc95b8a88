//! Events published on a bus reach a rule's target (an SQS queue) with the envelope the worker reads,
//! against moto (started by `tests/run`).

use aws_sdk_eventbridge::config::{BehaviorVersion, Credentials, Region};
use optisync_domain::{LinkId, TenantId};
use optisync_eventbridge::{Detail, EventBridgePublisher};
use optisync_ports::{BusEvent, EventPublisher};

#[tokio::test]
async fn published_events_reach_the_rules_target_with_ids_only() {
    let endpoint = std::env::var("OPTISYNC_TEST_DYNAMODB_ENDPOINT").expect("run the tests with `bash tests/run`");
    let creds = Credentials::new("test", "test", None, None, "tests");
    let eb = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&endpoint)
            .region(Region::new("eu-central-1"))
            .credentials_provider(creds.clone())
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .endpoint_url(&endpoint)
            .region(aws_sdk_sqs::config::Region::new("eu-central-1"))
            .credentials_provider(creds)
            .build(),
    );
    let bus = format!("optisync-test-{}", std::process::id());
    eb.create_event_bus().name(&bus).send().await.unwrap();
    let queue = sqs.create_queue().queue_name(format!("{bus}-worker")).send().await.unwrap().queue_url.unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    eb.put_rule()
        .name("worker")
        .event_bus_name(&bus)
        .event_pattern(r#"{"source":["optisync"],"detail-type":["inbox.ready"]}"#)
        .send()
        .await
        .unwrap();
    eb.put_targets()
        .rule("worker")
        .event_bus_name(&bus)
        .targets(aws_sdk_eventbridge::types::Target::builder().id("q").arn(arn).build().unwrap())
        .send()
        .await
        .unwrap();

    let publisher = EventBridgePublisher::new(eb, &bus);
    let mut events: Vec<BusEvent> = (0..12)
        .map(|n| BusEvent::InboxReady { tenant: TenantId::new("t1"), key: format!("optigem:msg_{n}") })
        .collect();
    events.push(BusEvent::ReconcileLink { tenant: TenantId::new("t1"), link: LinkId::new("l1") });
    publisher.publish(&events).await.unwrap();

    let mut details = Vec::new();
    for _ in 0..10 {
        let got = sqs.receive_message().queue_url(&queue).max_number_of_messages(10).send().await.unwrap();
        for m in got.messages.unwrap_or_default() {
            let envelope: serde_json::Value = serde_json::from_str(m.body.as_deref().unwrap()).unwrap();
            assert_eq!(envelope["detail-type"], "inbox.ready", "only the routed type arrives");
            details.push(serde_json::from_value::<Detail>(envelope["detail"].clone()).unwrap());
        }
        if details.len() >= 12 {
            break;
        }
    }
    assert_eq!(details.len(), 12, "12 inbox events in two PutEvents calls; the reconcile event is not routed here");
    assert!(details.contains(&Detail::InboxReady { tenant: "t1".into(), key: "optigem:msg_11".into() }));
}
