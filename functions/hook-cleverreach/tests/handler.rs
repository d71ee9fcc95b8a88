//! The handler from real API Gateway HTTP API events: the verification handshake, receiver events stored
//! as re-reads once however often they come, refusals that store nothing, 429 (never 5xx) on a fault.

use chrono::{DateTime, TimeZone, Utc};
use hook_cleverreach::{Deps, handle};
use optisync_domain::*;
use optisync_ports::names::secret;
use optisync_ports::{Inbox, InboxItem, SecretStore, StoreError, Tenants};
use optisync_testkit::memory::{FixedClock, MemoryBus, MemorySecrets, MemoryStore};
use std::sync::Arc;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 9, 25, 12, 0, 0).unwrap()
}

fn post(body: &str, token: &str) -> lambda_http::Request {
    let fixture = include_str!("fixtures/apigw-v2-post-event.json")
        .replace("__TOKEN__", token)
        .replace("\"__BODY__\"", &serde_json::to_string(body).unwrap());
    lambda_http::request::from_str(&fixture).expect("an API Gateway v2 event")
}

/// The account's webhook tokens, with the handshake open until `registering_until` (L4).
fn tokens(registering_until: Option<DateTime<Utc>>) -> String {
    let mut tokens = serde_json::json!({"verify_token": "verify-123", "call_token": "call-456"});
    if let Some(until) = registering_until {
        tokens["registering_until"] = until.timestamp().into();
    }
    tokens.to_string()
}

async fn setup() -> (Deps, Arc<MemoryStore>, Arc<MemoryBus>) {
    setup_with(&tokens(Some(now() + chrono::Duration::minutes(5)))).await
}

async fn setup_with(tokens: &str) -> (Deps, Arc<MemoryStore>, Arc<MemoryBus>) {
    let secrets = Arc::new(MemorySecrets::default());
    secrets.put(&secret::cleverreach_webhook(&AccountId::new("cr-main")), tokens).await.unwrap();
    let store = Arc::new(MemoryStore::new());
    let record = AccountRecord {
        tenant: TenantId::new("t1"),
        esp: EspAccount { provider: Provider::CleverReach, account: AccountId::new("cr-main") },
        status: AccountStatus::Connected,
        changed_at: now(),
    };
    store.put_account(&record).await.unwrap();
    let bus = Arc::new(MemoryBus::default());
    let deps = Deps::new(secrets, store.clone(), store.clone(), bus.clone(), Arc::new(FixedClock::new(now())));
    (deps, store, bus)
}

async fn stored(store: &MemoryStore) -> Vec<(TenantId, String)> {
    store.pending(now() + chrono::Duration::days(1), 100).await.unwrap()
}

const UNSUBSCRIBED: &str = r#"{"event":"receiver.unsubscribed","condition":"1939","payload":{"pool_id":"4285"}}"#;

#[tokio::test]
async fn the_handshake_answers_verify_token_and_secret_as_plain_text() {
    let (deps, _, _) = setup().await;
    let fixture = include_str!("fixtures/apigw-v2-get-handshake.json").replace("__SECRET__", "abc987");
    let response = handle(&deps, lambda_http::request::from_str(&fixture).unwrap()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.body().as_ref(), b"verify-123 abc987");
    assert_eq!(response.headers()["content-type"], "text/plain");
}

#[tokio::test]
async fn l4_the_handshake_is_answered_only_while_a_registration_is_under_way() {
    let fixture = include_str!("fixtures/apigw-v2-get-handshake.json").replace("__SECRET__", "abc987");
    for (what, until) in
        [("no registration", None), ("a registration that ended", Some(now() - chrono::Duration::seconds(1)))]
    {
        let (deps, _, _) = setup_with(&tokens(until)).await;
        let response = handle(&deps, lambda_http::request::from_str(&fixture).unwrap()).await;
        assert_eq!(response.status(), 404, "{what}");
        assert!(!String::from_utf8_lossy(response.body().as_ref()).contains("verify-123"), "{what}");
        // The events keep coming in meanwhile: the call token does not depend on the window.
        assert_eq!(handle(&deps, post(UNSUBSCRIBED, "call-456")).await.status(), 200, "{what}");
    }
}

#[tokio::test]
async fn a_receiver_event_becomes_one_reread_however_often_it_comes() {
    let (deps, store, bus) = setup().await;
    for _ in 0..3 {
        assert_eq!(handle(&deps, post(UNSUBSCRIBED, "call-456")).await.status(), 200);
    }
    let waiting = stored(&store).await;
    assert_eq!(waiting.len(), 1);
    assert_eq!(bus.drain().len(), 1);
    let entry = store.get(&waiting[0].0, &waiting[0].1).await.unwrap().unwrap();
    let [InboxItem::Reread { reread }] = &entry.items[..] else { panic!() };
    assert_eq!(
        (reread.list.as_str(), reread.receiver.as_str(), reread.event.as_str()),
        ("1939", "4285", "receiver.unsubscribed")
    );
    assert_eq!(reread.esp, EspAccount { provider: Provider::CleverReach, account: AccountId::new("cr-main") });
}

#[tokio::test]
async fn refusals_store_nothing_and_other_events_are_acknowledged() {
    let (deps, store, bus) = setup().await;
    assert_eq!(handle(&deps, post(UNSUBSCRIBED, "wrong")).await.status(), 401);
    assert_eq!(handle(&deps, post("not json", "call-456")).await.status(), 400);
    let group = r#"{"event":"group.updated","condition":"1939","payload":{"group_id":"1939"}}"#;
    assert_eq!(handle(&deps, post(group, "call-456")).await.status(), 200);
    let deleted = r#"{"event":"receiver.deleted","condition":"1939","payload":{"email":"3nCrYpT3d"}}"#;
    assert_eq!(handle(&deps, post(deleted, "call-456")).await.status(), 200, "left to the reconciliation");
    assert!(stored(&store).await.is_empty());
    assert!(bus.drain().is_empty());
}

#[tokio::test]
async fn a_store_fault_is_a_429_never_a_5xx() {
    for fault in [StoreError::Transient("throttled".into()), StoreError::Permanent("broken".into())] {
        let (deps, store, _) = setup().await;
        store.fail_next_inbox_put(fault);
        let response = handle(&deps, post(UNSUBSCRIBED, "call-456")).await;
        assert_eq!(response.status(), 429);
        assert!(response.headers().contains_key("retry-after"));
        assert_eq!(handle(&deps, post(UNSUBSCRIBED, "call-456")).await.status(), 200);
        assert_eq!(stored(&store).await.len(), 1);
    }
}

/// The POST fixture changed as `edit` says, with the right call token and `body`.
fn edited(body: &str, edit: impl FnOnce(&mut serde_json::Value)) -> lambda_http::Request {
    let fixture = include_str!("fixtures/apigw-v2-post-event.json")
        .replace("__TOKEN__", "call-456")
        .replace("\"__BODY__\"", &serde_json::to_string(body).unwrap());
    let mut event: serde_json::Value = serde_json::from_str(&fixture).unwrap();
    edit(&mut event);
    lambda_http::request::from_str(&event.to_string()).expect("an API Gateway v2 event")
}

fn handshake(query: &str, account: &str) -> lambda_http::Request {
    let mut event: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/apigw-v2-get-handshake.json")).unwrap();
    event["rawQueryString"] = query.into();
    event["pathParameters"]["account"] = account.into();
    let params: serde_json::Map<String, serde_json::Value> =
        url_pairs(query).into_iter().map(|(k, v)| (k, v.into())).collect();
    event["queryStringParameters"] = params.into();
    lambda_http::request::from_str(&event.to_string()).expect("an API Gateway v2 event")
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    query.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

#[tokio::test]
async fn a_handshake_without_secret_is_400_and_for_an_unknown_account_404() {
    let (deps, _, _) = setup().await;
    assert_eq!(handle(&deps, handshake("", "cr-main")).await.status(), 400);
    assert_eq!(handle(&deps, handshake("other=1", "cr-main")).await.status(), 400);
    assert_eq!(handle(&deps, handshake("secret=abc987", "cr-other")).await.status(), 404, "L3, T18");
    let answer = handle(&deps, handshake("secret=1029384756&x=y", "cr-main")).await;
    assert_eq!(answer.body().as_ref(), b"verify-123 1029384756");
}

#[tokio::test]
async fn unknown_accounts_methods_paths_and_oversized_bodies_store_nothing() {
    let (deps, store, bus) = setup().await;
    let unknown = edited(UNSUBSCRIBED, |e| e["pathParameters"]["account"] = "cr-other".into());
    assert_eq!(handle(&deps, unknown).await.status(), 404, "L3");
    let put = edited(UNSUBSCRIBED, |e| e["requestContext"]["http"]["method"] = "PUT".into());
    assert_eq!(handle(&deps, put).await.status(), 405);
    let elsewhere = edited(UNSUBSCRIBED, |e| {
        e.as_object_mut().unwrap().remove("pathParameters");
        e["rawPath"] = "/hooks/cleverreach/t1".into();
        e["requestContext"]["http"]["path"] = "/hooks/cleverreach/t1".into();
    });
    assert_eq!(handle(&deps, elsewhere).await.status(), 404);
    let big = format!(
        r#"{{"event":"receiver.updated","condition":"1939","payload":{{"pool_id":"4285","pad":"{}"}}}}"#,
        "x".repeat(hook_cleverreach::MAX_BODY_BYTES)
    );
    assert_eq!(handle(&deps, post(&big, "call-456")).await.status(), 413);
    assert!(stored(&store).await.is_empty());
    assert!(bus.drain().is_empty());
}

#[tokio::test]
async fn without_path_parameters_tenant_and_account_come_from_the_path() {
    let (deps, store, _) = setup().await;
    let request = edited(UNSUBSCRIBED, |e| {
        e.as_object_mut().unwrap().remove("pathParameters");
    });
    assert_eq!(handle(&deps, request).await.status(), 200);
    let waiting = stored(&store).await;
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].0, TenantId::new("t1"));
    assert!(waiting[0].1.starts_with("cleverreach:cr-main:"), "{}", waiting[0].1);
}

#[tokio::test]
async fn a_malformed_body_names_no_value_of_it() {
    let (deps, store, _) = setup().await;
    let bodies = [
        r#"{"event":"receiver.updated","payload":{"email":"max.muster@example.com"}}"#,
        r#"{"event":"receiver.updated","condition":"1939","payload":{"note":"max.muster@example.com"}}"#,
        r#"{"payload":{"email":"max.muster@example.com"}}"#,
        r#"["max.muster@example.com"]"#,
        r#"{"event":"max.muster@example.com""#,
    ];
    for body in bodies {
        let response = handle(&deps, post(body, "call-456")).await;
        assert_eq!(response.status(), 400, "{body}");
        let text = String::from_utf8_lossy(response.body().as_ref()).into_owned();
        assert!(!text.contains("max.muster") && !text.contains("example.com"), "{text}");
    }
    assert!(stored(&store).await.is_empty());
}

#[tokio::test]
async fn the_same_body_ten_minutes_later_is_a_new_reread() {
    let (mut deps, store, bus) = setup().await;
    let clock = Arc::new(optisync_testkit::memory::FixedClock::new(now()));
    deps.clock = clock.clone();
    assert_eq!(handle(&deps, post(UNSUBSCRIBED, "call-456")).await.status(), 200);
    clock.set(now() + chrono::Duration::minutes(9));
    assert_eq!(handle(&deps, post(UNSUBSCRIBED, "call-456")).await.status(), 200);
    assert_eq!(stored(&store).await.len(), 1, "a retry inside the window");
    clock.set(now() + chrono::Duration::minutes(10));
    assert_eq!(handle(&deps, post(UNSUBSCRIBED, "call-456")).await.status(), 200);
    assert_eq!(stored(&store).await.len(), 2, "a later change of the same receiver is read again");
    assert_eq!(bus.drain().len(), 2);
}

#[tokio::test]
async fn m2_events_and_the_handshake_answer_only_under_the_tenant_that_owns_the_account() {
    let (deps, store, bus) = setup().await;
    for tenant in ["t2", "t1~preview"] {
        let to = |fixture: &str| fixture.replace("/hooks/cleverreach/t1/", &format!("/hooks/cleverreach/{tenant}/"));
        let fixture = to(include_str!("fixtures/apigw-v2-post-event.json"))
            .replace("\"tenant\": \"t1\"", &format!("\"tenant\": \"{tenant}\""))
            .replace("__TOKEN__", "call-456")
            .replace("\"__BODY__\"", &serde_json::to_string(UNSUBSCRIBED).unwrap());
        let response = handle(&deps, lambda_http::request::from_str(&fixture).unwrap()).await;
        assert_eq!(response.status(), 404, "POST under {tenant}");
        let fixture = to(include_str!("fixtures/apigw-v2-get-handshake.json"))
            .replace("\"tenant\": \"t1\"", &format!("\"tenant\": \"{tenant}\""));
        let response = handle(&deps, lambda_http::request::from_str(&fixture).unwrap()).await;
        assert_eq!(response.status(), 404, "GET under {tenant}");
    }
    assert!(stored(&store).await.is_empty(), "nothing stored");
    assert!(bus.drain().is_empty(), "nothing announced");
}
