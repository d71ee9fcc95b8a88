//! Lambda entry point: configuration and adapters once per process (`Config`, `Aws`, `Deps::new`),
//! then the handler per event.

use lambda_runtime::Error;
use optisync_app::reconcile::Guard;
use optisync_lambda::{Aws, Config, telemetry};
use optisync_ports::SystemClock;
use reconciler::{Deps, handle};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let metrics = telemetry::init()?;
    let aws = Aws::load(Config::from_env()?).await;
    let (store, esp) = (aws.store(), aws.esp(aws.secrets()).await?);
    let guard = Guard { share: aws.config().guard_share, min: aws.config().guard_min };
    let deps = Deps::new(store.clone(), store, esp.clone(), esp, aws.publisher(), Arc::new(SystemClock), guard);
    telemetry::run(metrics, |event| {
        let deps = deps.clone();
        async move { handle(&deps, event).await }
    })
    .await
}
