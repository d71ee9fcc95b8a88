//! The DynamoDB store passes the conformance suite against a DynamoDB-compatible server (moto, started
//! by `tests/run`), a fresh table per test, with small query pages so that paging is exercised.

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use optisync_dynamodb::DynamoStore;
use optisync_ports::StateStore;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

static TABLES: AtomicU32 = AtomicU32::new(0);

async fn fresh() -> Arc<dyn StateStore> {
    Arc::new(fresh_store().await)
}

async fn fresh_idempotency() -> Arc<dyn optisync_ports::IdempotencyStore> {
    Arc::new(fresh_store().await)
}

async fn fresh_store() -> DynamoStore {
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
    let store = DynamoStore::new(client, table).with_page_size(7);
    store.create_table().await.expect("create table");
    store
}

optisync_ports::conformance_tests!(fresh);
optisync_ports::idempotency_conformance_tests!(fresh_idempotency);

async fn fresh_inbox() -> Arc<dyn optisync_ports::Inbox> {
    Arc::new(fresh_store().await)
}

optisync_ports::inbox_conformance_tests!(fresh_inbox);
