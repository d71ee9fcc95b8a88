//! Lambda entry point: configuration and adapters once per process (`Config`, `Aws`, `Deps::new`),
//! then the handler per request.

use hook_brevo::{Deps, SourceRanges, handle};
use lambda_http::Error;
use optisync_lambda::{Aws, Config, telemetry};
use optisync_ports::SystemClock;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let metrics = telemetry::init()?;
    let aws = Aws::load(Config::from_env()?).await;
    let store = aws.store();
    // M3: a bad range stops the start (the deployment says what it wants), rather than admitting all.
    let sources = SourceRanges::from_env()?;
    let deps =
        Deps::new(aws.secrets(), store.clone(), store, aws.publisher(), Arc::new(SystemClock)).with_sources(sources);
    telemetry::run_http(metrics, |req| {
        let deps = deps.clone();
        async move { Ok::<_, Error>(handle(&deps, req).await) }
    })
    .await
}
