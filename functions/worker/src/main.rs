//! Lambda entry point: configuration and adapters once per process, then the handler per event.

use lambda_runtime::{Error, run, service_fn};
use optisync_app::Engine;
use optisync_cleverreach::{ClientConfig, Secret};
use optisync_dynamodb::DynamoStore;
use optisync_esp::{EspRouter, EspSettings};
use optisync_lambda::{env, env_or};
use optisync_ports::{SecretStore, SystemClock};
use optisync_secrets::SecretsManagerStore;
use std::sync::Arc;
use worker::{Deps, handle};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let store = Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), env("TABLE_NAME")?));
    let secrets: Arc<dyn SecretStore> =
        Arc::new(SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&config), env("SECRETS_PREFIX")?));
    let client_secret = secrets.get("cleverreach/app/client-secret").await?.unwrap_or_default();
    let cleverreach = ClientConfig::new(
        env_or("CLEVERREACH_CLIENT_ID", ""),
        Secret::new(client_secret),
        env_or("CLEVERREACH_REDIRECT_URI", ""),
    )
    .with_base_url(&env_or("CLEVERREACH_BASE_URL", "https://rest.cleverreach.com"));
    let settings = EspSettings { brevo_base_url: env_or("BREVO_BASE_URL", "https://api.brevo.com/v3"), cleverreach };
    let esp = Arc::new(EspRouter::new(secrets, settings));
    let deps =
        Deps { engine: Engine::new(store.clone(), esp.clone(), Arc::new(SystemClock)), inbox: store, reader: esp };
    run(service_fn(|event| {
        let deps = deps.clone();
        async move { handle(&deps, event).await }
    }))
    .await
}
