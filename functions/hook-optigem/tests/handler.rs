//! The handler from a real API Gateway HTTP API event: 202 after the inbox write and a nudge to the
//! worker; 401/400/429 with nothing stored and nothing published.

use chrono::{DateTime, TimeZone, Utc};
use hook_optigem::{Deps, handle};
use optisync_connector::signature::{SigningSecret, sign};
use optisync_domain::TenantId;
use optisync_ports::names::secret;
use optisync_ports::{BusEvent, Inbox, SecretStore, StoreError};
use optisync_testkit::memory::{FixedClock, MemoryBus, MemorySecrets, MemoryStore};
use std::sync::Arc;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BODY: &str = r#"{"events":[{"type":"assignment.deleted","id":"A-1","newsletter":"NL-7","version":3}]}"#;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 9, 3, 10, 0, 0).unwrap()
}

/// The fixture with a body signed (or not) as given.
fn request(id: &str, body: &str, secret: &str, at: DateTime<Utc>) -> lambda_http::Request {
    let signature = sign(&SigningSecret::parse(secret).unwrap(), id, at.timestamp(), body.as_bytes());
    let fixture = include_str!("fixtures/apigw-v2-post-events.json")
        .replace("__ID__", id)
        .replace("__TS__", &at.timestamp().to_string())
        .replace("__SIG__", &signature)
        .replace("\"__BODY__\"", &serde_json::to_string(body).unwrap());
    lambda_http::request::from_str(&fixture).expect("an API Gateway v2 event")
}

async fn deps(inbox: Arc<dyn Inbox>) -> (Deps, Arc<MemoryBus>) {
    let secrets = Arc::new(MemorySecrets::default());
    secrets
        .put(&secret::signing_secrets(&TenantId::new("t1")), &serde_json::to_string(&[SECRET]).unwrap())
        .await
        .unwrap();
    let bus = Arc::new(MemoryBus::default());
    let deps = Deps::new(secrets, inbox, bus.clone(), Arc::new(FixedClock::new(now())));
    (deps, bus)
}

async fn waiting(store: &MemoryStore) -> usize {
    store.pending(now() + chrono::Duration::days(1), 10).await.unwrap().len()
}

#[tokio::test]
async fn accepted_events_are_stored_then_the_worker_is_told_and_a_retry_is_harmless() {
    let store = Arc::new(MemoryStore::new());
    let (deps, bus) = deps(store.clone()).await;
    let response = handle(&deps, request("msg_1", BODY, SECRET, now())).await;
    assert_eq!(response.status(), 202);
    assert_eq!(waiting(&store).await, 1);
    assert_eq!(bus.drain(), vec![BusEvent::InboxReady { tenant: TenantId::new("t1"), key: "optigem:msg_1".into() }]);
    let again = handle(&deps, request("msg_1", BODY, SECRET, now())).await;
    assert_eq!(again.status(), 202);
    assert!(bus.drain().is_empty(), "a duplicate is not handed to the worker again");
}

#[tokio::test]
async fn refused_requests_store_nothing_and_publish_nothing() {
    let store = Arc::new(MemoryStore::new());
    let (deps, bus) = deps(store.clone()).await;
    let wrong = "whsec_dGhpcyBpcyBhbm90aGVyIGtleSEhIQ==";
    let cases = [
        (request("m1", BODY, wrong, now()), 401),
        (request("m2", BODY, SECRET, now() - chrono::Duration::minutes(10)), 401),
        (request("m3", r#"{"events":[{"type":"assignment.deleted","id":"A-1"}]}"#, SECRET, now()), 400),
    ];
    for (req, status) in cases {
        let response = handle(&deps, req).await;
        assert_eq!(response.status(), status);
        if status == 400 {
            let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
            assert_eq!(body["error"]["path"], "events[0]", "{body}");
        }
    }
    assert_eq!(waiting(&store).await, 0);
    assert!(bus.drain().is_empty());
}

#[tokio::test]
async fn a_transient_fault_answers_429_with_retry_after() {
    let store = Arc::new(MemoryStore::new());
    store.fail_next_inbox_put(StoreError::Transient("throttled".into()));
    let (deps, bus) = deps(store).await;
    let response = handle(&deps, request("msg_1", BODY, SECRET, now())).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "5");
    assert!(bus.drain().is_empty());
}

/// The fixture's request with another tenant in its path and path parameter.
fn for_tenant(tenant: &str, id: &str) -> lambda_http::Request {
    let signature = sign(&SigningSecret::parse(SECRET).unwrap(), id, now().timestamp(), BODY.as_bytes());
    let fixture = include_str!("fixtures/apigw-v2-post-events.json")
        .replace("t1", tenant)
        .replace("__ID__", id)
        .replace("__TS__", &now().timestamp().to_string())
        .replace("__SIG__", &signature)
        .replace("\"__BODY__\"", &serde_json::to_string(BODY).unwrap());
    lambda_http::request::from_str(&fixture).expect("an API Gateway v2 event")
}

#[tokio::test]
async fn r_k2_a_tenant_no_key_can_hold_is_not_found_before_any_secret_is_read() {
    let store = Arc::new(MemoryStore::new());
    let (deps, bus) = deps(store.clone()).await;
    let long = "a".repeat(300);
    // `a#b` and `a/b` as API Gateway passes them on (decoded), a 300-character tenant, a dry run's scope.
    for tenant in ["a#b", "a%2Fb", long.as_str(), "t1~preview", ".."] {
        let response = handle(&deps, for_tenant(tenant, "msg_9")).await;
        assert_eq!(response.status(), 404, "tenant of {} characters", tenant.len());
    }
    assert_eq!(handle(&deps, for_tenant("t1", "msg_9")).await.status(), 202, "the same request for t1 passes");
    assert_eq!(waiting(&store).await, 1);
    assert_eq!(bus.drain().len(), 1);
}

#[tokio::test]
async fn r_k2_a_webhook_id_no_key_can_hold_is_400_and_stores_nothing() {
    let store = Arc::new(MemoryStore::new());
    let (deps, bus) = deps(store.clone()).await;
    let long = "m".repeat(3000);
    for id in [long.as_str(), "msg#1", "msg 1", "-msg"] {
        let response = handle(&deps, request(id, BODY, SECRET, now())).await;
        assert_eq!(response.status(), 400, "webhook-id of {} characters", id.len());
        let body = String::from_utf8_lossy(response.body().as_ref()).into_owned();
        assert!(body.contains("webhook-id"), "{body}");
        assert!(!body.contains("mmmm"), "the id is not echoed: {body}");
    }
    let longest = "m".repeat(128);
    assert_eq!(handle(&deps, request(&longest, BODY, SECRET, now())).await.status(), 202);
    assert_eq!(waiting(&store).await, 1);
    assert_eq!(bus.drain().len(), 1);
}
