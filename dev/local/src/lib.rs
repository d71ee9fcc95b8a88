//! optisync in one process, for the local runner and the end-to-end tests: the Lambda handlers behind
//! one HTTP server with the same routes as the HTTP API, and an in-process bus in place of EventBridge
//! that hands `inbox.ready` events to the worker's handler. The handlers are the Lambda functions' own,
//! called with the same request and event types Lambda gives them.

use async_trait::async_trait;
use axum::Router;
use axum::body::Body as AxumBody;
use axum::extract::Request as AxumRequest;
use axum::response::Response as AxumResponse;
use lambda_http::Body as LambdaBody;
use optisync_ports::{BusEvent, Clock, EventPublisher, Inbox, SecretStore, StateStore, StoreError};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// The largest request body the local server reads (the HTTP API's own limit is larger than any hook's).
pub const MAX_BODY: usize = 10 * 1024 * 1024;

/// The handlers of the HTTP functions, each with what it needs.
#[derive(Clone)]
pub struct HttpFunctions {
    /// hook-optigem.
    pub hook_optigem: hook_optigem::Deps,
    /// connector-api.
    pub connector_api: connector_api::Deps,
    /// hook-brevo.
    pub hook_brevo: hook_brevo::Deps,
    /// hook-cleverreach.
    pub hook_cleverreach: hook_cleverreach::Deps,
    /// admin-api.
    pub admin_api: admin_api::Deps,
}

impl HttpFunctions {
    /// Every HTTP function over one store (state and inbox), one secret store, one bus and one clock, as
    /// the deployed functions share the table, Secrets Manager and EventBridge; the admin API as given.
    pub fn over<S: StateStore + Inbox + 'static>(
        store: Arc<S>,
        secrets: Arc<dyn SecretStore>,
        publisher: Arc<dyn EventPublisher>,
        clock: Arc<dyn Clock>,
        admin_api: admin_api::Deps,
    ) -> Self {
        Self {
            hook_optigem: hook_optigem::Deps::new(secrets.clone(), store.clone(), publisher.clone(), clock.clone()),
            connector_api: connector_api::Deps::new(
                secrets.clone(),
                store.clone(),
                store.clone(),
                publisher.clone(),
                clock.clone(),
            ),
            hook_brevo: hook_brevo::Deps::new(
                secrets.clone(),
                store.clone(),
                store.clone(),
                publisher.clone(),
                clock.clone(),
            ),
            hook_cleverreach: hook_cleverreach::Deps::new(secrets, store.clone(), store, publisher, clock),
            admin_api,
        }
    }
}

/// The local HTTP API: every route of the deployed HTTP API, served by the functions' handlers.
pub fn router(functions: HttpFunctions) -> Router {
    Router::new().fallback(move |req: AxumRequest| {
        let functions = functions.clone();
        async move { dispatch(&functions, req).await }
    })
}

async fn dispatch(functions: &HttpFunctions, req: AxumRequest) -> AxumResponse {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let request = match to_lambda(req).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let response = match segments.as_slice() {
        ["connector", _, "events"] => hook_optigem::handle(&functions.hook_optigem, request).await,
        ["connector", _, ..] => connector_api::handle(&functions.connector_api, request).await,
        ["hooks", "brevo", ..] => hook_brevo::handle(&functions.hook_brevo, request).await,
        ["hooks", "cleverreach", ..] => hook_cleverreach::handle(&functions.hook_cleverreach, request).await,
        ["admin", ..] | ["oauth", ..] | [""] | ["console", ..] => {
            admin_api::handle(&functions.admin_api, request).await
        }
        _ => {
            return AxumResponse::builder()
                .status(404)
                .header("content-type", "application/json")
                .body(AxumBody::from(r#"{"error":{"problem":"no such route"}}"#))
                .expect("static response");
        }
    };
    from_lambda(response)
}

/// An HTTP request as Lambda's HTTP API integration hands it to a function.
async fn to_lambda(req: AxumRequest) -> Result<lambda_http::Request, AxumResponse> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        AxumResponse::builder().status(413).body(AxumBody::from("request body too large")).expect("static response")
    })?;
    let body = if bytes.is_empty() { LambdaBody::Empty } else { LambdaBody::Binary(bytes.to_vec()) };
    Ok(lambda_http::Request::from_parts(parts, body))
}

fn from_lambda(response: lambda_http::Response<LambdaBody>) -> AxumResponse {
    let (parts, body) = response.into_parts();
    let body = match body {
        LambdaBody::Empty => AxumBody::empty(),
        LambdaBody::Text(text) => AxumBody::from(text),
        LambdaBody::Binary(bytes) => AxumBody::from(bytes),
        _ => AxumBody::empty(),
    };
    AxumResponse::from_parts(parts, body)
}

/// The event bus in process: events wait in order until [`LocalBus::deliver`] hands them to the worker
/// (the local runner does so continuously; tests choose when, how often and in which order).
#[derive(Default)]
pub struct LocalBus {
    queue: Mutex<VecDeque<BusEvent>>,
    notify: tokio::sync::Notify,
}

impl LocalBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes every waiting event.
    pub fn take(&self) -> Vec<BusEvent> {
        self.queue.lock().expect("bus lock").drain(..).collect()
    }

    /// How many events wait.
    pub fn waiting(&self) -> usize {
        self.queue.lock().expect("bus lock").len()
    }

    /// Waits until an event is published.
    pub async fn published(&self) {
        self.notify.notified().await;
    }
}

#[async_trait]
impl EventPublisher for LocalBus {
    async fn publish(&self, events: &[BusEvent]) -> Result<(), StoreError> {
        self.queue.lock().expect("bus lock").extend(events.iter().cloned());
        self.notify.notify_one();
        Ok(())
    }
}

/// The worker as EventBridge invokes it: the event is encoded exactly as the EventBridge adapter puts it
/// on the bus, then handed to the worker's handler. Returns the inputs applied.
pub async fn invoke_worker(deps: &worker::Deps, event: &BusEvent) -> Result<usize, lambda_runtime::Error> {
    worker::handle(deps, lambda_event(event)?).await
}

/// An event as EventBridge hands it to a function.
pub fn lambda_event(
    event: &BusEvent,
) -> Result<
    lambda_runtime::LambdaEvent<aws_lambda_events::eventbridge::EventBridgeEvent<serde_json::Value>>,
    lambda_runtime::Error,
> {
    let (detail_type, detail) = optisync_eventbridge::encode(event);
    let payload = serde_json::json!({
        "version": "0",
        "id": "00000000-0000-0000-0000-000000000000",
        "detail-type": detail_type,
        "source": optisync_eventbridge::SOURCE,
        "account": "000000000000",
        "time": "1970-01-01T00:00:00Z",
        "region": "local",
        "resources": [],
        "detail": detail,
    });
    let event = serde_json::from_value(payload).map_err(|e| format!("not an EventBridge event: {e}"))?;
    Ok(lambda_runtime::LambdaEvent::new(event, lambda_runtime::Context::default()))
}

/// Shares a bus as the publisher port.
pub fn publisher(bus: &Arc<LocalBus>) -> Arc<dyn EventPublisher> {
    bus.clone()
}

/// The scheduler's tick as EventBridge Scheduler hands it to the function.
pub fn scheduled_event() -> Result<
    lambda_runtime::LambdaEvent<aws_lambda_events::eventbridge::EventBridgeEvent<serde_json::Value>>,
    lambda_runtime::Error,
> {
    let payload = serde_json::json!({
        "version": "0",
        "id": "00000000-0000-0000-0000-000000000000",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": "1970-01-01T00:00:00Z",
        "region": "local",
        "resources": [],
        "detail": {},
    });
    let event = serde_json::from_value(payload).map_err(|e| format!("not an EventBridge event: {e}"))?;
    Ok(lambda_runtime::LambdaEvent::new(event, lambda_runtime::Context::default()))
}

/// The daily due tick's event (R-A11), as the schedule in `template.yaml` gives it to the reconciler. The
/// runner sends it when the Berlin date of its tick changes (and once at start).
pub fn due_event() -> Result<
    lambda_runtime::LambdaEvent<aws_lambda_events::eventbridge::EventBridgeEvent<serde_json::Value>>,
    lambda_runtime::Error,
> {
    let payload =
        serde_json::json!({"detail-type": reconciler::DUE_DETAIL_TYPE, "source": "optisync.schedule", "detail": {}});
    let event = serde_json::from_value(payload).map_err(|e| format!("not an EventBridge event: {e}"))?;
    Ok(lambda_runtime::LambdaEvent::new(event, lambda_runtime::Context::default()))
}

/// A clock that runs `speed` times faster than the system's from the moment it is made: the local
/// runner dates the embedded store's expiries by it when `OPTISYNC_RETENTION_SPEED` is set, so that a
/// run of minutes shows what retention (R-J6) does over weeks. Dev only.
pub struct FastClock {
    start: chrono::DateTime<chrono::Utc>,
    real: std::time::Instant,
    speed: f64,
}

impl FastClock {
    /// A clock at the system's time now, running `speed` times as fast.
    pub fn new(speed: f64) -> Self {
        Self { start: chrono::Utc::now(), real: std::time::Instant::now(), speed }
    }
}

impl Clock for FastClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let elapsed = self.real.elapsed().as_secs_f64() * self.speed;
        self.start + chrono::Duration::milliseconds((elapsed * 1000.0) as i64)
    }
}

/// The local runner's deletion report notifier (R-J2): there is no mail here, so it only counts what it
/// accepts; the reports themselves stay readable through `GET /admin/tenants/{t}/erasure-reports`.
#[derive(Debug, Default)]
pub struct CountingNotifier {
    published: std::sync::atomic::AtomicU64,
}

impl CountingNotifier {
    /// How many reports it accepted.
    pub fn published(&self) -> u64 {
        self.published.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[async_trait]
impl optisync_ports::ReportNotifier for CountingNotifier {
    async fn publish(
        &self,
        _tenant: &optisync_domain::TenantId,
        _report: &optisync_ports::ErasureReportRecord,
    ) -> Result<(), optisync_ports::NotifyError> {
        let n = self.published.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        // R-J5: a count only, never the report.
        tracing::info!(published = n, "deletion report kept for the admin API");
        Ok(())
    }
}
