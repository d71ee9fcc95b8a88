//! Lambda entry point: configuration and adapters once per process, then the handler per event.

use lambda_runtime::Error;
use optisync_dynamodb::DynamoStore;
use optisync_eventbridge::EventBridgePublisher;
use optisync_lambda::{env, telemetry};
use optisync_ports::SystemClock;
use scheduler::{Deps, handle};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let metrics = telemetry::init()?;
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let store = Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), env("TABLE_NAME")?));
    let publisher =
        Arc::new(EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&config), env("EVENT_BUS_NAME")?));
    let deps = Deps { store: store.clone(), inbox: store, publisher, clock: Arc::new(SystemClock) };
    telemetry::run(metrics, |event| {
        let deps = deps.clone();
        async move { handle(&deps, event).await }
    })
    .await
}
