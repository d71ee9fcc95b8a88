//! Lambda entry point: configuration and adapters once per process, then the handler per request.

use admin_api::{Auth, Deps, handle};
use lambda_http::Error;
use optisync_app::admin::{Admin, AdminConfig};
use optisync_app::reconcile::Reconciler;
use optisync_dynamodb::DynamoStore;
use optisync_esp::{EspRouter, EspSettings};
use optisync_eventbridge::EventBridgePublisher;
use optisync_lambda::{env, env_or, telemetry};
use optisync_ports::{SecretStore, SystemClock};
use optisync_secrets::SecretsManagerStore;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let metrics = telemetry::init()?;
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let store = Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), env("TABLE_NAME")?));
    let secrets: Arc<dyn SecretStore> =
        Arc::new(SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&config), env("SECRETS_PREFIX")?));
    let settings = EspSettings::from_env(secrets.as_ref()).await?;
    let esp = Arc::new(EspRouter::new(secrets.clone(), settings));
    let clock = Arc::new(SystemClock);
    let reconciler = Reconciler::new(store.clone(), esp.clone(), esp.clone(), store.clone(), clock.clone());
    let publisher =
        Arc::new(EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&config), env("EVENT_BUS_NAME")?));
    let admin = Admin::new(
        store,
        secrets,
        esp,
        publisher,
        reconciler,
        clock,
        AdminConfig { public_base_url: env_or("PUBLIC_BASE_URL", "") },
    );
    // API Gateway checks the IAM signature of every /admin route; the handler checks it was there.
    let deps = Deps { admin, auth: Auth::Iam };
    telemetry::run_http(metrics, |req| {
        let deps = deps.clone();
        async move { Ok::<_, Error>(handle(&deps, req).await) }
    })
    .await
}
