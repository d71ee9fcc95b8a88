//! The DynamoDB store passes the conformance suite against a DynamoDB-compatible server (moto, started
//! by `tests/run`), a fresh table per test, with small query pages so that paging is exercised.

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use optisync_dynamodb::DynamoStore;
use optisync_ports::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

static TABLES: AtomicU32 = AtomicU32::new(0);

async fn fresh() -> Arc<dyn StateStore> {
    Arc::new(fresh_store().await)
}

async fn fresh_store() -> DynamoStore {
    fresh_table().await.0
}

async fn fresh_table() -> (DynamoStore, aws_sdk_dynamodb::Client, String) {
    let endpoint = std::env::var("OPTISYNC_TEST_DYNAMODB_ENDPOINT").expect(
        "OPTISYNC_TEST_DYNAMODB_ENDPOINT is not set: run the tests with `bash tests/run`, which starts a DynamoDB-compatible server",
    );
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("eu-central-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let table = format!("conformance-{}-{}", std::process::id(), TABLES.fetch_add(1, Ordering::SeqCst));
    let store = DynamoStore::new(client.clone(), table.clone()).with_page_size(7);
    store.create_table().await.expect("create table");
    (store, client, table)
}

optisync_testkit::conformance_tests!(fresh);

async fn fresh_inbox() -> Arc<dyn optisync_ports::Inbox> {
    Arc::new(fresh_store().await)
}

optisync_testkit::inbox_conformance_tests!(fresh_inbox);

/// A decided approval entry carries the table's TTL attribute, a retention period after its decision; a
/// pending one has none (it waits as long as it takes).
#[tokio::test]
async fn decided_approval_entries_expire_after_the_retention_period() {
    use chrono::TimeZone;
    use optisync_domain::*;
    use optisync_ports::Commit;
    let (store, client, table) = fresh_table().await;
    let decided_at = chrono::Utc.with_ymd_and_hms(2024, 6, 10, 12, 0, 0).unwrap();
    let entry = |mail: &str, decision: Option<Decision>| ApprovalEntry {
        link: LinkId::new("l1"),
        email: Email::parse(mail).unwrap(),
        signup: Signup::default(),
        first_seen: decided_at,
        last_seen: decided_at,
        signups: 1,
        status: if decision.is_some() { ApprovalStatus::Rejected } else { ApprovalStatus::Pending },
        match_command: CommandId::new("m"),
        decision,
        created: None,
    };
    let writes = vec![
        (StateWrite::Approval { entry: entry("a@example.org", Some(Decision::Reject { at: decided_at })) }, None),
        (StateWrite::Approval { entry: entry("b@example.org", None) }, None),
    ];
    store.commit(&TenantId::new("t"), Commit { writes, ..Commit::default() }).await.unwrap();
    let expiry = |key: &str| {
        let (client, table) = (client.clone(), table.clone());
        let sk = format!("APPROVAL#{key}");
        async move {
            let item = client.get_item().table_name(table).key("pk", s("LINK#t#l1")).key("sk", s(&sk)).send().await;
            item.unwrap().item.unwrap().get("expires_at").map(|v| v.as_n().unwrap().parse::<i64>().unwrap())
        }
    };
    let retention = chrono::Duration::days(APPROVAL_RETENTION_DAYS);
    assert_eq!(expiry("a@example.org").await, Some((decided_at + retention).timestamp()));
    assert_eq!(expiry("b@example.org").await, None);
}

fn s(v: &str) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::S(v.to_owned())
}
