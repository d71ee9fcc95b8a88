//! The Secrets Manager store against moto (started by `tests/run`).

use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use optisync_ports::SecretStore;
use optisync_secrets::SecretsManagerStore;

fn store(prefix: &str) -> SecretsManagerStore {
    let endpoint = std::env::var("OPTISYNC_TEST_DYNAMODB_ENDPOINT")
        .expect("OPTISYNC_TEST_DYNAMODB_ENDPOINT is not set: run the tests with `bash tests/run`");
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("eu-central-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .build();
    SecretsManagerStore::new(aws_sdk_secretsmanager::Client::from_conf(config), prefix)
}

#[tokio::test]
async fn secrets_are_created_replaced_and_read_back_and_a_missing_one_is_none() {
    let prefix = format!("optisync/test-{}/", std::process::id());
    let s = store(&prefix);
    assert_eq!(s.get("cleverreach/acc-1").await.unwrap(), None);
    s.put("cleverreach/acc-1", r#"{"refresh_token":"r1"}"#).await.unwrap();
    assert_eq!(s.get("cleverreach/acc-1").await.unwrap().as_deref(), Some(r#"{"refresh_token":"r1"}"#));
    s.put("cleverreach/acc-1", r#"{"refresh_token":"r2"}"#).await.unwrap();
    assert_eq!(s.get("cleverreach/acc-1").await.unwrap().as_deref(), Some(r#"{"refresh_token":"r2"}"#));
    assert_eq!(
        store("optisync/other/").get("cleverreach/acc-1").await.unwrap(),
        None,
        "prefixes keep deployments apart"
    );
}
