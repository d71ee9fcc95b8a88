//! Lambda entry point: configuration and adapters once per process, then the handler per event.

use lambda_runtime::Error;
use optisync_app::reconcile::{Guard, Reconciler};
use optisync_dynamodb::DynamoStore;
use optisync_esp::{EspRouter, EspSettings};
use optisync_eventbridge::EventBridgePublisher;
use optisync_lambda::{env, env_or, telemetry};
use optisync_ports::{SecretStore, SystemClock};
use optisync_secrets::SecretsManagerStore;
use reconciler::{Deps, handle};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let metrics = telemetry::init()?;
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let store = Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), env("TABLE_NAME")?));
    let secrets: Arc<dyn SecretStore> =
        Arc::new(SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&config), env("SECRETS_PREFIX")?));
    let settings = EspSettings::from_env(secrets.as_ref()).await?;
    let esp = Arc::new(EspRouter::new(secrets, settings));
    let guard = Guard {
        share: env_or("GUARD_SHARE", "0.1").parse().map_err(|_| "GUARD_SHARE must be a number from 0 to 1")?,
        min: env_or("GUARD_MIN", "10").parse().map_err(|_| "GUARD_MIN must be a whole number")?,
    };
    let reconciler = Reconciler::new(store.clone(), esp.clone(), esp, store, Arc::new(SystemClock)).with_guard(guard);
    let publisher =
        Arc::new(EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&config), env("EVENT_BUS_NAME")?));
    let deps = Deps { reconciler, publisher, max_pages: None };
    telemetry::run(metrics, |event| {
        let deps = deps.clone();
        async move { handle(&deps, event).await }
    })
    .await
}
