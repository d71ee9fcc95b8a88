//! The handler from a real API Gateway HTTP API event: a Brevo webhook is stored once and announced once
//! however often it comes; refusals store nothing; a store fault is a 429, never a 5xx.

use chrono::{DateTime, TimeZone, Utc};
use hook_brevo::{Deps, handle};
use optisync_domain::*;
use optisync_ports::names::secret;
use optisync_ports::{BusEvent, Inbox, InboxItem, SecretStore, StoreError, Tenants};
use optisync_testkit::memory::{FixedClock, MemoryBus, MemorySecrets, MemoryStore};
use std::sync::Arc;

const TOKEN: &str = "brevo-hook-token-7f3a";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 9, 25, 12, 0, 0).unwrap()
}

/// Brevo's unsubscribe payload as the reference documents it, for 2024-09-25 09:15:37 UTC.
fn unsubscribed(ts: i64) -> String {
    serde_json::json!({
        "id": 501, "camp_id": 12, "email": "max.muster@example.com", "campaign name": "Rundbrief September",
        "date_sent": "2024-09-25 09:00:00", "date_event": "2024-09-25 11:15:37", "event": "unsubscribed",
        "tag": "", "sending_ip": "192.0.2.1", "list_id": [7], "ts_sent": 1727254800, "ts_event": 1727255737,
        "ts": ts
    })
    .to_string()
}

fn request(body: &str, auth: &str) -> lambda_http::Request {
    request_to("t1", "brevo-main", body, auth)
}

/// The request to `/hooks/brevo/{tenant}/{account}`.
fn request_to(tenant: &str, account: &str, body: &str, auth: &str) -> lambda_http::Request {
    let fixture = include_str!("fixtures/apigw-v2-post-webhook.json")
        .replace("/hooks/brevo/t1/brevo-main", &format!("/hooks/brevo/{tenant}/{account}"))
        .replace("\"tenant\": \"t1\"", &format!("\"tenant\": \"{tenant}\""))
        .replace("\"account\": \"brevo-main\"", &format!("\"account\": \"{account}\""))
        .replace("__AUTH__", auth)
        .replace("\"__BODY__\"", &serde_json::to_string(body).unwrap());
    lambda_http::request::from_str(&fixture).expect("an API Gateway v2 event")
}

async fn setup() -> (Deps, Arc<MemoryStore>, Arc<MemoryBus>) {
    setup_with(TOKEN, Arc::new(FixedClock::new(now()))).await
}

/// The handler with this value of the webhook-token secret, at this clock.
async fn setup_with(token_secret: &str, clock: Arc<FixedClock>) -> (Deps, Arc<MemoryStore>, Arc<MemoryBus>) {
    let secrets = Arc::new(MemorySecrets::default());
    let account = AccountId::new("brevo-main");
    secrets.put(&secret::brevo_webhook_token(&account), token_secret).await.unwrap();
    secrets.put(&secret::brevo_api_key_name(&account), "optisync").await.unwrap();
    let store = Arc::new(MemoryStore::new());
    let record = AccountRecord {
        tenant: TenantId::new("t1"),
        esp: EspAccount { provider: Provider::Brevo, account: account.clone() },
        status: AccountStatus::Connected,
        changed_at: now(),
    };
    store.put_account(&record).await.unwrap();
    let bus = Arc::new(MemoryBus::default());
    let deps = Deps::new(secrets, store.clone(), store.clone(), bus.clone(), clock);
    (deps, store, bus)
}

async fn stored(store: &MemoryStore) -> usize {
    store.pending(now() + chrono::Duration::days(1), 100).await.unwrap().len()
}

#[tokio::test]
async fn r_e2_r_j4_an_unsubscribe_is_stored_once_as_the_recipients_account_wide_revocation_at_its_own_time() {
    let (deps, store, bus) = setup().await;
    // Brevo retries, and a retry carries another emission time `ts`.
    for ts in [1727255800, 1727255800, 1727256400] {
        let response = handle(&deps, request(&unsubscribed(ts), &format!("Bearer {TOKEN}"))).await;
        assert_eq!(response.status(), 200);
    }
    assert_eq!(stored(&store).await, 1);
    let events = bus.drain();
    assert_eq!(events.len(), 1, "announced once");
    let BusEvent::InboxReady { key, .. } = &events[0] else { panic!() };
    assert!(!key.contains("max"), "no address in the key");
    let entry = store.get(&TenantId::new("t1"), key).await.unwrap().unwrap();
    let [InboxItem::Input { input }] = &entry.items[..] else { panic!("{:?}", entry.items) };
    let Input::Esp(event) = &**input else { panic!() };
    assert_eq!(event.what, EspEventKind::Unsubscribed, "the recipient's own revocation (R-J4)");
    assert_eq!(event.list, None, "account-wide (R-E2)");
    assert_eq!(event.at, Utc.with_ymd_and_hms(2024, 9, 25, 9, 15, 37).unwrap(), "the event's own time");
    assert_eq!(event.email.as_str(), "max.muster@example.com");
}

#[tokio::test]
async fn wrong_tokens_and_malformed_bodies_store_nothing_and_echo_no_address() {
    let (deps, store, bus) = setup().await;
    for auth in ["Bearer wrong", "", "Basic YnJldm8="] {
        assert_eq!(handle(&deps, request(&unsubscribed(1), auth)).await.status(), 401, "{auth}");
    }
    let malformed = handle(&deps, request(r#"{"email":"max.muster@example.com""#, &format!("Bearer {TOKEN}"))).await;
    assert_eq!(malformed.status(), 400);
    let text = String::from_utf8_lossy(malformed.body().as_ref()).into_owned();
    assert!(!text.contains("max.muster"), "{text}");
    let no_event = handle(&deps, request(r#"{"email":"max.muster@example.com"}"#, &format!("Bearer {TOKEN}"))).await;
    assert_eq!(no_event.status(), 400);
    assert_eq!(stored(&store).await, 0);
    assert!(bus.drain().is_empty());
}

#[tokio::test]
async fn opens_and_our_own_list_additions_are_acknowledged_and_not_stored() {
    let (deps, store, _) = setup().await;
    let opened = r#"{"event":"opened","email":"max.muster@example.com","id":1,"ts":1727255800}"#;
    let echo = r#"{"event":"list_addition","email":"max.muster@example.com","list_id":[7],"api_key_name":"optisync","ts":1727255800}"#;
    for body in [opened, echo] {
        let response = handle(&deps, request(body, &format!("Bearer {TOKEN}"))).await;
        assert_eq!(response.status(), 200);
        let json: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        assert_eq!(json["ignored"], true);
    }
    let signup =
        r#"{"event":"list_addition","email":"erika@example.com","list_id":[7],"api_key_name":"","ts":1727255800}"#;
    assert_eq!(handle(&deps, request(signup, &format!("Bearer {TOKEN}"))).await.status(), 200);
    assert_eq!(stored(&store).await, 1, "a signup through a form is stored (R-E3)");
}

#[tokio::test]
async fn a_store_fault_is_a_429_with_retry_after_never_a_5xx() {
    for fault in [StoreError::Transient("throttled".into()), StoreError::Permanent("broken".into())] {
        let (deps, store, bus) = setup().await;
        store.fail_next_inbox_put(fault);
        let response = handle(&deps, request(&unsubscribed(1), &format!("Bearer {TOKEN}"))).await;
        assert_eq!(response.status(), 429);
        assert!(response.headers().contains_key("retry-after"));
        assert!(bus.drain().is_empty());
        // Brevo retries: now it is stored.
        assert_eq!(handle(&deps, request(&unsubscribed(1), &format!("Bearer {TOKEN}"))).await.status(), 200);
        assert_eq!(stored(&store).await, 1);
    }
}

/// The fixture changed as `edit` says (method, path, path parameters), with the token and `body`.
fn edited(body: &str, edit: impl FnOnce(&mut serde_json::Value)) -> lambda_http::Request {
    let fixture = include_str!("fixtures/apigw-v2-post-webhook.json")
        .replace("__AUTH__", &format!("Bearer {TOKEN}"))
        .replace("\"__BODY__\"", &serde_json::to_string(body).unwrap());
    let mut event: serde_json::Value = serde_json::from_str(&fixture).unwrap();
    edit(&mut event);
    lambda_http::request::from_str(&event.to_string()).expect("an API Gateway v2 event")
}

#[tokio::test]
async fn other_methods_paths_and_oversized_bodies_are_refused_before_anything_is_read() {
    let (deps, store, bus) = setup().await;
    let get = edited("", |e| e["requestContext"]["http"]["method"] = "GET".into());
    assert_eq!(handle(&deps, get).await.status(), 405);
    let elsewhere = edited(&unsubscribed(1), |e| {
        e.as_object_mut().unwrap().remove("pathParameters");
        e["rawPath"] = "/hooks/brevo/t1".into();
        e["requestContext"]["http"]["path"] = "/hooks/brevo/t1".into();
    });
    assert_eq!(handle(&deps, elsewhere).await.status(), 404);
    let big = format!("[{}]", vec![unsubscribed(1); 2_000].join(","));
    assert!(big.len() > hook_brevo::MAX_BODY_BYTES);
    assert_eq!(handle(&deps, request(&big, &format!("Bearer {TOKEN}"))).await.status(), 413);
    assert_eq!(stored(&store).await, 0);
    assert!(bus.drain().is_empty());
}

#[tokio::test]
async fn without_path_parameters_tenant_and_account_come_from_the_path() {
    let (deps, store, _) = setup().await;
    let request = edited(&unsubscribed(1), |e| {
        e.as_object_mut().unwrap().remove("pathParameters");
    });
    assert_eq!(handle(&deps, request).await.status(), 200);
    let waiting = store.pending(now() + chrono::Duration::days(1), 10).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].0, TenantId::new("t1"));
    assert!(waiting[0].1.starts_with("brevo:brevo-main:"), "{}", waiting[0].1);
}

#[tokio::test]
async fn an_account_without_a_webhook_token_is_refused_like_a_wrong_token() {
    let (deps, store, _) = setup().await;
    let esp = EspAccount { provider: Provider::Brevo, account: AccountId::new("brevo-other") };
    let record =
        AccountRecord { tenant: TenantId::new("t1"), esp, status: AccountStatus::Connected, changed_at: now() };
    store.put_account(&record).await.unwrap();
    let other = edited(&unsubscribed(1), |e| e["pathParameters"]["account"] = "brevo-other".into());
    assert_eq!(handle(&deps, other).await.status(), 401);
    assert_eq!(stored(&store).await, 0);
}

#[tokio::test]
async fn a_batch_is_one_entry_with_what_it_holds_for_the_sync() {
    let (deps, store, bus) = setup().await;
    let opened = r#"{"event":"opened","email":"max.muster@example.com","id":1,"ts":1727255800}"#;
    let bounce =
        r#"{"event":"hard_bounce","email":"erika@example.com","camp_id":12,"ts_event":1727255000,"ts":1727255900}"#;
    let batch = format!("[{},{opened},{bounce}]", unsubscribed(1727255800));
    let response = handle(&deps, request(&batch, &format!("Bearer {TOKEN}"))).await;
    assert_eq!(response.status(), 200);
    let json: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert_eq!(json["accepted"], 2);
    assert_eq!(stored(&store).await, 1);
    let [BusEvent::InboxReady { tenant, key }] = &bus.drain()[..] else { panic!() };
    let entry = store.get(tenant, key).await.unwrap().unwrap();
    let kinds: Vec<EspEventKind> = entry
        .items
        .iter()
        .map(|item| match item {
            InboxItem::Input { input } => match &**input {
                Input::Esp(event) => event.what.clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, vec![EspEventKind::Unsubscribed, EspEventKind::Deactivated], "R-E2, R-J4, R-E6");
}

/// A bus that is down.
struct DownBus;

// Written out as `#[async_trait]` expands it, so the tests need no extra dependency.
impl optisync_ports::EventPublisher for DownBus {
    fn publish<'a, 'b, 'c>(
        &'a self,
        _: &'b [BusEvent],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send + 'c>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        Box::pin(async { Err(StoreError::Transient("bus unreachable".into())) })
    }
}

#[tokio::test]
async fn a_failed_nudge_still_answers_200_and_the_entry_waits_for_the_sweep() {
    let (mut deps, store, _) = setup().await;
    deps.publisher = Arc::new(DownBus);
    let response = handle(&deps, request(&unsubscribed(1), &format!("Bearer {TOKEN}"))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(stored(&store).await, 1, "pending, so the inbox sweep re-drives it");
}

#[tokio::test]
async fn m2_a_webhook_is_accepted_only_under_the_tenant_that_owns_the_account() {
    let (deps, store, bus) = setup().await;
    let auth = format!("Bearer {TOKEN}");
    // Another tenant's URL with t1's account and token, a dry run's tenant (T06, T07), an account no
    // tenant holds: the same 404, so the answer tells nobody which accounts exist (L3).
    for (tenant, account) in [("t2", "brevo-main"), ("t1~preview", "brevo-main"), ("t1", "brevo-other")] {
        let response = handle(&deps, request_to(tenant, account, &unsubscribed(1), &auth)).await;
        assert_eq!(response.status(), 404, "{tenant}/{account}");
    }
    assert_eq!(stored(&store).await, 0, "nothing stored");
    assert!(bus.drain().is_empty(), "nothing announced");
    // The owner's URL still works.
    assert_eq!(handle(&deps, request(&unsubscribed(1), &auth)).await.status(), 200);
}

#[tokio::test]
async fn m3_during_a_rotation_old_and_new_token_are_accepted_and_after_it_only_the_new() {
    let until = now() + chrono::Duration::hours(24);
    let rotated = optisync_ports::tokens::BrevoHookTokens {
        current: "new-token-1".into(),
        previous: Some(TOKEN.into()),
        previous_until: Some(until),
    };
    let clock = Arc::new(FixedClock::new(now()));
    let (deps, store, _) = setup_with(&rotated.to_secret(), clock.clone()).await;
    let old = handle(&deps, request(&unsubscribed(1727255800), &format!("Bearer {TOKEN}"))).await;
    assert_eq!(old.status(), 200, "the old token during the overlap");
    let new = handle(&deps, request(&unsubscribe_of("erika@example.com"), "Bearer new-token-1")).await;
    assert_eq!(new.status(), 200, "the new token");
    assert_eq!(handle(&deps, request(&unsubscribed(1727256000), "Bearer other")).await.status(), 401);
    assert_eq!(stored(&store).await, 2);
    clock.set(until);
    let late = unsubscribe_of("lena@example.com");
    assert_eq!(handle(&deps, request(&late, &format!("Bearer {TOKEN}"))).await.status(), 401, "the overlap is over");
    assert_eq!(stored(&store).await, 2, "nothing stored");
    assert_eq!(handle(&deps, request(&late, "Bearer new-token-1")).await.status(), 200);
}

/// Another person's unsubscribe (another event, not a retry).
fn unsubscribe_of(email: &str) -> String {
    serde_json::json!({"event": "unsubscribed", "email": email, "camp_id": 12, "ts_event": 1727255737}).to_string()
}

/// The fixture's request, from this source address.
fn from_ip(body: &str, ip: &str) -> lambda_http::Request {
    edited(body, |e| e["requestContext"]["http"]["sourceIp"] = ip.into())
}

#[tokio::test]
async fn m3_with_brevos_ranges_only_calls_from_inside_them_pass() {
    let ranges = hook_brevo::SourceRanges::parse("1.179.112.0/20, 172.246.240.0/20").unwrap();
    let (deps, store, bus) = setup().await;
    let deps = deps.with_sources(ranges);
    let outside = handle(&deps, from_ip(&unsubscribed(1727255800), "198.51.100.7")).await;
    assert_eq!(outside.status(), 403);
    let text = String::from_utf8_lossy(outside.body().as_ref()).into_owned();
    assert!(!text.contains("198.51") && !text.contains("max.muster"), "{text}");
    let no_context = edited(&unsubscribed(1727255800), |e| {
        e["requestContext"]["http"].as_object_mut().unwrap().remove("sourceIp");
    });
    assert_eq!(handle(&deps, no_context).await.status(), 403, "an unknown source is outside");
    assert_eq!(stored(&store).await, 0);
    assert!(bus.drain().is_empty());
    let inside = handle(&deps, from_ip(&unsubscribed(1727255800), "1.179.120.4")).await;
    assert_eq!(inside.status(), 200);
    assert_eq!(handle(&deps, from_ip(&unsubscribe_of("erika@example.com"), "172.246.255.254")).await.status(), 200);
    assert_eq!(stored(&store).await, 2);
}

#[tokio::test]
async fn m3_without_ranges_any_source_passes() {
    let (deps, store, _) = setup().await;
    assert!(!deps.sources.is_on());
    assert_eq!(handle(&deps, from_ip(&unsubscribed(1727255800), "198.51.100.7")).await.status(), 200);
    assert_eq!(stored(&store).await, 1);
}

#[tokio::test]
async fn m3_t23_too_many_events_or_lists_are_a_400_that_stores_nothing() {
    let (deps, store, bus) = setup().await;
    let opened = r#"{"event":"opened","email":"max.muster@example.com"}"#;
    let flood = format!("[{}]", vec![opened; optisync_brevo::webhook::MAX_EVENTS_PER_REQUEST + 1].join(","));
    let ids: Vec<String> = (1..=5000).map(|i| i.to_string()).collect();
    let fan_out = serde_json::json!({"event": "list_addition", "email": "max.muster@example.com",
        "list_id": ids.join(","), "ts": 1727255800})
    .to_string();
    for body in [flood, fan_out] {
        let response = handle(&deps, request(&body, &format!("Bearer {TOKEN}"))).await;
        assert_eq!(response.status(), 400);
        let text = String::from_utf8_lossy(response.body().as_ref()).into_owned();
        assert!(text.contains("more than") && !text.contains("max.muster"), "{text}");
    }
    assert_eq!(stored(&store).await, 0);
    assert!(bus.drain().is_empty());
}
