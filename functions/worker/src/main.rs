//! Lambda entry point: configuration and adapters once per process (`Config`, `Aws`, `Deps::new`),
//! then the handler per event.

use lambda_runtime::Error;
use optisync_lambda::{Aws, Config, telemetry};
use optisync_ports::SystemClock;
use std::sync::Arc;
use worker::{Deps, handle};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let metrics = telemetry::init()?;
    let aws = Aws::load(Config::from_env()?).await;
    let store = aws.store();
    let esp = aws.esp(aws.secrets()).await?;
    let deps = Deps::new(store.clone(), store, esp.clone(), esp, Arc::new(SystemClock)).with_notifier(aws.reports()?);
    telemetry::run(metrics, |event| {
        let deps = deps.clone();
        async move { handle(&deps, event).await }
    })
    .await
}
