//! Deletion reports published on a topic reach a subscription filtered on their tenant, with the
//! report's fields and no address in the subject; the admin's e-mail subscription is made once and
//! moved on an address change; against moto (started by `tests/with-moto`).

use aws_sdk_sns::config::{BehaviorVersion, Credentials, Region};
use chrono::TimeZone;
use optisync_domain::*;
use optisync_ports::{ErasureReportRecord, ReportNotifier, ReportSubscriptions};
use optisync_sns::SnsReports;

fn endpoint() -> String {
    std::env::var("OPTISYNC_TEST_DYNAMODB_ENDPOINT").expect("run the tests with `bash tests/with-moto`")
}

fn clients() -> (aws_sdk_sns::Client, aws_sdk_sqs::Client) {
    let creds = Credentials::new("test", "test", None, None, "tests");
    let sns = aws_sdk_sns::Client::from_conf(
        aws_sdk_sns::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(endpoint())
            .region(Region::new("eu-central-1"))
            .credentials_provider(creds.clone())
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .endpoint_url(endpoint())
            .region(aws_sdk_sqs::config::Region::new("eu-central-1"))
            .credentials_provider(creds)
            .build(),
    );
    (sns, sqs)
}

const MAX: &str = "max.muster@example.com";

fn report(tenant: &str) -> ErasureReportRecord {
    ErasureReportRecord {
        tenant: TenantId::new(tenant),
        id: CommandId::new("erasure-1"),
        link: LinkId::new("rundbrief"),
        newsletter: NewsletterId::new("NL-1"),
        email: Email::parse(MAX).unwrap(),
        ended: CommandId::new("end-1"),
        deleted: vec![ErasedItem { system: "cleverreach".into(), item: "receiver".into() }],
        kept: vec![KeptItem { system: "optisync".into(), item: "keyed_hash".into(), reason: "R-J3".into() }],
        at: chrono::Utc.with_ymd_and_hms(2024, 5, 15, 10, 0, 0).unwrap(),
        delivered_at: None,
    }
}

#[tokio::test]
async fn r_j2_a_published_report_reaches_only_its_tenants_subscription_without_the_address_in_the_subject() {
    let (sns, sqs) = clients();
    let name = format!("optisync-reports-{}-publish", std::process::id());
    let topic = sns.create_topic().name(&name).send().await.unwrap().topic_arn.unwrap();
    let queue = sqs.create_queue().queue_name(&name).send().await.unwrap().queue_url.unwrap();
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
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(arn)
        .attributes("FilterPolicy", optisync_sns::policy(&["gemeinde-1".into()]))
        .send()
        .await
        .unwrap();

    let reports = SnsReports::new(sns, &topic);
    reports.publish(&TenantId::new("gemeinde-2"), &report("gemeinde-2")).await.unwrap();
    reports.publish(&TenantId::new("gemeinde-1"), &report("gemeinde-1")).await.unwrap();

    let got = sqs.receive_message().queue_url(&queue).max_number_of_messages(10).send().await.unwrap();
    let messages = got.messages();
    assert_eq!(messages.len(), 1, "only the tenant's own report passes its filter");
    let envelope: serde_json::Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    let subject = envelope["Subject"].as_str().unwrap();
    assert!(!subject.contains(MAX) && !subject.contains('@'), "{subject}");
    assert!(subject.contains("gemeinde-1") && subject.contains("2024-05-15"), "{subject}");
    assert_eq!(envelope["MessageAttributes"]["tenant"]["Value"], "gemeinde-1");
    let message: serde_json::Value = serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
    assert_eq!(message["tenant"], "gemeinde-1");
    assert_eq!(message["link"], "rundbrief");
    assert_eq!(message["email"], MAX);
    assert_eq!(message["deleted"][0], serde_json::json!({"system": "cleverreach", "item": "receiver"}));
    assert_eq!(message["kept"][0]["item"], "keyed_hash");
    assert_eq!(message["at"], "2024-05-15T10:00:00Z");
}

#[tokio::test]
async fn r_j2_the_tenants_address_is_subscribed_once_filtered_on_the_tenant_and_moved_on_a_change() {
    let (sns, _) = clients();
    let name = format!("optisync-reports-{}-subscribe", std::process::id());
    let topic = sns.create_topic().name(&name).send().await.unwrap().topic_arn.unwrap();
    let reports = SnsReports::new(sns.clone(), &topic);
    let (t, dsb, new) = (
        TenantId::new("gemeinde-1"),
        Email::parse("datenschutz@gemeinde.example").unwrap(),
        Email::parse("dsb@gemeinde.example").unwrap(),
    );
    reports.subscribe(&t, &dsb, None).await.unwrap();
    reports.subscribe(&t, &dsb, None).await.unwrap();
    let subs = sns.list_subscriptions_by_topic().topic_arn(&topic).send().await.unwrap();
    let emails: Vec<_> = subs.subscriptions().iter().filter(|s| s.protocol() == Some("email")).collect();
    assert_eq!(emails.len(), 1, "subscribed once");
    assert_eq!(emails[0].endpoint(), Some("datenschutz@gemeinde.example"));
    let arn = emails[0].subscription_arn().unwrap();
    if arn.starts_with("arn:") {
        let attributes = sns.get_subscription_attributes().subscription_arn(arn).send().await.unwrap();
        let policy: serde_json::Value =
            serde_json::from_str(&attributes.attributes().unwrap()["FilterPolicy"]).unwrap();
        assert_eq!(policy, serde_json::json!({"tenant": ["gemeinde-1"]}));
    }

    reports.subscribe(&t, &new, Some(&dsb)).await.unwrap();
    let subs = sns.list_subscriptions_by_topic().topic_arn(&topic).send().await.unwrap();
    let endpoints: Vec<_> =
        subs.subscriptions().iter().filter(|s| s.protocol() == Some("email")).filter_map(|s| s.endpoint()).collect();
    assert_eq!(endpoints, ["dsb@gemeinde.example"], "the confirmed old address is unsubscribed");
}
