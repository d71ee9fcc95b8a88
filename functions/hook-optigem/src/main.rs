//! Lambda entry point: configuration and adapters once per process, then the handler per request.

use hook_optigem::{Deps, handle};
use lambda_http::Error;
use optisync_dynamodb::DynamoStore;
use optisync_eventbridge::EventBridgePublisher;
use optisync_lambda::{env, telemetry};
use optisync_ports::SystemClock;
use optisync_secrets::SecretsManagerStore;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let metrics = telemetry::init()?;
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let store = Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), env("TABLE_NAME")?));
    let secrets =
        Arc::new(SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&config), env("SECRETS_PREFIX")?));
    let publisher =
        Arc::new(EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&config), env("EVENT_BUS_NAME")?));
    let deps = Deps::new(secrets, store, publisher, Arc::new(SystemClock));
    telemetry::run_http(metrics, |req| {
        let deps = deps.clone();
        async move { Ok::<_, Error>(handle(&deps, req).await) }
    })
    .await
}
