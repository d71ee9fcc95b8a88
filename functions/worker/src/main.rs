//! Lambda entry point: configuration and adapters once per process, then the handler per event.

use lambda_runtime::Error;
use optisync_app::Engine;
use optisync_dynamodb::DynamoStore;
use optisync_esp::{EspRouter, EspSettings};
use optisync_lambda::{env, telemetry};
use optisync_ports::{SecretStore, SystemClock};
use optisync_secrets::SecretsManagerStore;
use std::sync::Arc;
use worker::{Deps, handle};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let metrics = telemetry::init()?;
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let store = Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), env("TABLE_NAME")?));
    let secrets: Arc<dyn SecretStore> =
        Arc::new(SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&config), env("SECRETS_PREFIX")?));
    let settings = EspSettings::from_env(secrets.as_ref()).await?;
    let esp = Arc::new(EspRouter::new(secrets, settings));
    let deps =
        Deps { engine: Engine::new(store.clone(), esp.clone(), Arc::new(SystemClock)), inbox: store, reader: esp };
    telemetry::run(metrics, |event| {
        let deps = deps.clone();
        async move { handle(&deps, event).await }
    })
    .await
}
