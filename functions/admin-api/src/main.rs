//! Lambda entry point: configuration and adapters once per process (`Config`, `Aws`, `Deps::new`),
//! then the handler per request.

use admin_api::{Auth, Deps, handle};
use lambda_http::Error;
use optisync_app::admin::AdminConfig;
use optisync_lambda::{Aws, Config, telemetry};
use optisync_ports::{SecretStore, SystemClock};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let metrics = telemetry::init()?;
    let aws = Aws::load(Config::from_env()?).await;
    let (store, secrets): (_, Arc<dyn SecretStore>) = (aws.store(), aws.secrets());
    let esp = aws.esp(secrets.clone()).await?;
    let config = AdminConfig { public_base_url: aws.config().public_base_url.clone() };
    // API Gateway checks the IAM signature of every /admin route; the handler checks it was there.
    let mut deps =
        Deps::new(store.clone(), store, secrets, esp, aws.publisher(), Arc::new(SystemClock), config, Auth::Iam);
    // R-J2: a tenant's deletion_report_email is subscribed to the deployment's report topic.
    deps.admin = deps.admin.with_report_subscriptions(aws.reports()?);
    // The console signs in through Cognito's hosted pages; without the template's console it is a 404.
    if let Some(console) = admin_api::console::Console::from_env(&aws.config().public_base_url)? {
        deps = deps.with_console(console);
    }
    telemetry::run_http(metrics, |req| {
        let deps = deps.clone();
        async move { Ok::<_, Error>(handle(&deps, req).await) }
    })
    .await
}
