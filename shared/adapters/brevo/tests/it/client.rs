//! The Brevo client against the fake Brevo server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use optisync_brevo::client::{ContactUpsert, MarketingEvent, UpsertOutcome};
use optisync_brevo::webhook::{self, WebhookEvent};
use optisync_brevo::{ApiKey, AttributeCategory, BrevoClient, BrevoConfig, BrevoError};
use optisync_fakes::brevo::{FAKE_API_KEY, FakeAttribute, FakeBrevo, FakeRateLimit};
use serde_json::{Map, Value, json};

fn config(fake: &FakeBrevo) -> BrevoConfig {
    let mut cfg = BrevoConfig::new(fake.base_url(), ApiKey::new(FAKE_API_KEY));
    cfg.backoff_base = Duration::from_millis(5);
    cfg.backoff_max = Duration::from_millis(20);
    cfg.request_timeout = Duration::from_secs(5);
    cfg.max_rate_limit_wait = Duration::from_secs(5);
    cfg
}

fn client(fake: &FakeBrevo) -> BrevoClient {
    BrevoClient::new(config(fake)).unwrap()
}

fn attrs(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[tokio::test]
async fn get_contact_finds_known_and_returns_none_for_unknown() {
    let fake = FakeBrevo::start().await;
    let list = fake.add_list("Newsletter");
    let id = fake.add_contact("anna+news@example.org", attrs(json!({"FIRSTNAME": "Anna"})), &[list]);
    let c = client(&fake);

    let got = c.get_contact("anna+news@example.org").await.unwrap().expect("known contact");
    assert_eq!(got.id, id);
    assert_eq!(got.email, "anna+news@example.org");
    assert_eq!(got.list_ids, vec![list]);
    assert!(!got.email_blacklisted);
    assert_eq!(got.attributes["FIRSTNAME"], "Anna");
    assert!(got.modified_at.is_some());
    // `+` must arrive encoded, else the fake would see a space and not find the contact.
    assert!(fake.request_log()[0].path.ends_with("/contacts/anna+news@example.org"));

    assert!(c.get_contact("nobody@example.org").await.unwrap().is_none());
    assert!(!format!("{got:?}").contains("anna"), "Debug of a contact masks the e-mail");
}

#[tokio::test]
async fn invalid_email_is_an_invalid_request_without_the_address_in_display() {
    let fake = FakeBrevo::start().await;
    let err = client(&fake).get_contact("not an email@").await.unwrap_err();
    assert!(matches!(err, BrevoError::InvalidRequest { status: 400, .. }), "{err:?}");
    assert!(!err.to_string().contains("not an email"));
}

#[tokio::test]
async fn upsert_creates_then_updates() {
    let fake = FakeBrevo::start().await;
    let list = fake.add_list("A");
    let c = client(&fake);

    let first = c.upsert_contact("new@example.org", attrs(json!({"FIRSTNAME": "N"})), &[list]).await.unwrap();
    let UpsertOutcome::Created { id } = first else { panic!("expected Created, got {first:?}") };
    let second = c.upsert_contact("new@example.org", attrs(json!({"LASTNAME": "L"})), &[]).await.unwrap();
    assert_eq!(second, UpsertOutcome::Updated);

    let stored = fake.contact("new@example.org").unwrap();
    assert_eq!(stored.id, id);
    assert_eq!(stored.attributes["FIRSTNAME"], "N");
    assert_eq!(stored.attributes["LASTNAME"], "L");
    assert!(stored.list_ids.contains(&list));
    assert_eq!(fake.mutating_calls(), 2);
}

#[tokio::test]
async fn upsert_never_sends_email_blacklisted_unless_asked() {
    let fake = FakeBrevo::start().await;
    let c = client(&fake);
    c.upsert_contact("x@example.org", Map::new(), &[]).await.unwrap();
    let body = fake.request_log()[0].body.clone().unwrap();
    assert_eq!(body["updateEnabled"], true);
    assert!(body.get("emailBlacklisted").is_none(), "{body}");

    let explicit = ContactUpsert { email_blacklisted: Some(true), ..Default::default() };
    c.upsert("x@example.org", &explicit).await.unwrap();
    assert_eq!(fake.request_log()[1].body.as_ref().unwrap()["emailBlacklisted"], true);
    assert!(fake.contact("x@example.org").unwrap().email_blacklisted);
}

#[tokio::test]
async fn an_attribute_update_does_not_unblacklist_a_blacklisted_contact() {
    let fake = FakeBrevo::start().await;
    let list = fake.add_list("A");
    fake.add_contact("blocked@example.org", Map::new(), &[list]);
    assert!(fake.blacklist("blocked@example.org"));
    let c = client(&fake);

    c.upsert_contact("blocked@example.org", attrs(json!({"FIRSTNAME": "B"})), &[list]).await.unwrap();

    let stored = fake.contact("blocked@example.org").unwrap();
    assert!(stored.email_blacklisted, "upsert must not clear the blacklist");
    assert_eq!(stored.attributes["FIRSTNAME"], "B");
    assert!(c.get_contact("blocked@example.org").await.unwrap().unwrap().email_blacklisted);
}

#[tokio::test]
async fn set_blacklisted_sets_and_clears_and_reports_unknown() {
    let fake = FakeBrevo::start().await;
    fake.add_contact("b@example.org", Map::new(), &[]);
    let c = client(&fake);
    c.set_blacklisted("b@example.org", true).await.unwrap();
    assert!(fake.contact("b@example.org").unwrap().email_blacklisted);
    c.set_blacklisted("b@example.org", false).await.unwrap();
    assert!(!fake.contact("b@example.org").unwrap().email_blacklisted);
    let err = c.set_blacklisted("ghost@example.org", true).await.unwrap_err();
    assert!(matches!(err, BrevoError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn delete_contact_is_true_once_then_false() {
    let fake = FakeBrevo::start().await;
    fake.add_contact("d@example.org", Map::new(), &[]);
    let c = client(&fake);
    assert!(c.delete_contact("d@example.org").await.unwrap());
    assert!(!c.delete_contact("d@example.org").await.unwrap());
    assert!(fake.contacts().is_empty());
}

#[tokio::test]
async fn creating_an_existing_contact_without_update_is_a_duplicate_in_the_fake() {
    let fake = FakeBrevo::start().await;
    fake.add_contact("dup@example.org", Map::new(), &[]);
    let resp = reqwest::Client::new()
        .post(format!("{}/contacts", fake.base_url()))
        .header("api-key", FAKE_API_KEY)
        .json(&json!({"email": "dup@example.org"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "duplicate_parameter");
    assert_eq!(body["metadata"]["duplicate_identifiers"], json!(["email"]));
}

#[tokio::test]
async fn add_to_list_sends_400_emails_in_3_requests_of_at_most_150() {
    let fake = FakeBrevo::start().await;
    let list = fake.add_list("Big");
    let emails: Vec<String> = (0..400).map(|i| format!("user{i}@example.org")).collect();
    for e in &emails {
        fake.add_contact(e, Map::new(), &[]);
    }
    let c = client(&fake);

    let outcome = c.add_to_list(list, &emails).await.unwrap();
    assert_eq!(outcome.success.len(), 400);
    assert!(outcome.failure.is_empty());
    assert_eq!(fake.calls("POST", "/contacts/add"), 3);
    let sizes: Vec<usize> =
        fake.request_log().iter().map(|r| r.body.as_ref().unwrap()["emails"].as_array().unwrap().len()).collect();
    assert_eq!(sizes, vec![150, 150, 100]);
    assert!(fake.contacts().iter().all(|c| c.list_ids.contains(&list)));
}

#[tokio::test]
async fn fake_rejects_more_than_150_emails() {
    let fake = FakeBrevo::start().await;
    let list = fake.add_list("L");
    let emails: Vec<String> = (0..151).map(|i| format!("u{i}@example.org")).collect();
    let resp = reqwest::Client::new()
        .post(format!("{}/contacts/lists/{list}/contacts/add", fake.base_url()))
        .header("api-key", FAKE_API_KEY)
        .json(&json!({"emails": emails}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn adding_members_already_in_the_list_reports_failures_not_an_error() {
    let fake = FakeBrevo::start().await;
    let list = fake.add_list("L");
    fake.add_contact("in@example.org", Map::new(), &[list]);
    let c = client(&fake);
    let outcome = c.add_to_list(list, &["in@example.org", "unknown@example.org"]).await.unwrap();
    assert!(outcome.success.is_empty());
    assert_eq!(outcome.failure.len(), 2);

    let err = c.add_to_list(999, &["in@example.org"]).await.unwrap_err();
    assert!(matches!(err, BrevoError::NotFound { .. }), "{err:?}");
    // Nothing to send: no request.
    let before = fake.request_log().len();
    c.add_to_list::<&str>(list, &[]).await.unwrap();
    assert_eq!(fake.request_log().len(), before);
}

#[tokio::test]
async fn remove_from_list_keeps_the_contact_and_its_blacklist() {
    let fake = FakeBrevo::start().await;
    let list = fake.add_list("L");
    fake.add_contact("r@example.org", Map::new(), &[list]);
    fake.add_contact("s@example.org", Map::new(), &[]);
    fake.blacklist("r@example.org");
    let c = client(&fake);
    let outcome = c.remove_from_list(list, &["r@example.org", "s@example.org"]).await.unwrap();
    assert_eq!(outcome.success, vec!["r@example.org".to_owned()]);
    assert_eq!(outcome.failure, vec!["s@example.org".to_owned()]);
    let r = fake.contact("r@example.org").unwrap();
    assert!(r.list_ids.is_empty());
    assert!(r.email_blacklisted);
}

#[tokio::test]
async fn list_contacts_pages_until_exhausted() {
    let fake = FakeBrevo::start().await;
    let list = fake.add_list("L");
    let other = fake.add_list("Other");
    for i in 0..1200 {
        fake.add_contact(&format!("m{i}@example.org"), Map::new(), &[list]);
    }
    fake.add_contact("elsewhere@example.org", Map::new(), &[other]);
    let c = client(&fake);

    let members = c.list_contacts(list, None).await.unwrap();
    assert_eq!(members.len(), 1200);
    assert_eq!(members[0].email, "m0@example.org", "ascending creation order");
    assert_eq!(fake.calls("GET", &format!("/lists/{list}/contacts")), 3);
    assert!(fake.request_log().iter().all(|r| r.query.as_deref().unwrap().contains("limit=500")));
}

#[tokio::test]
async fn list_contacts_with_modified_since_sends_an_encoded_rfc3339_offset() {
    let fake = FakeBrevo::start().await;
    let list = fake.add_list("L");
    let old = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let new = Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap();
    for i in 0..5 {
        let e = format!("c{i}@example.org");
        fake.add_contact(&e, Map::new(), &[list]);
        fake.set_modified_at(&e, if i % 2 == 0 { new } else { old });
    }
    let mut cfg = config(&fake);
    cfg.list_page_size = 2;
    let c = BrevoClient::new(cfg).unwrap();

    let since = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let changed = c.list_contacts(list, Some(since)).await.unwrap();
    let emails: Vec<&str> = changed.iter().map(|c| c.email.as_str()).collect();
    assert_eq!(emails, vec!["c0@example.org", "c2@example.org", "c4@example.org"]);
    let q = fake.request_log()[0].query.clone().unwrap();
    assert!(q.contains("modifiedSince=2025-01-01T00%3A00%3A00.000%2B00%3A00"), "{q}");
    assert_eq!(fake.request_log().len(), 2, "pages of 2: a full page then a short one");
}

#[tokio::test]
async fn account_contacts_pages_with_modified_since() {
    let fake = FakeBrevo::start().await;
    let old = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
    for i in 0..7 {
        fake.add_contact(&format!("a{i}@example.org"), Map::new(), &[]);
    }
    fake.set_modified_at("a3@example.org", old);
    let mut cfg = config(&fake);
    cfg.contacts_page_size = 3;
    let c = BrevoClient::new(cfg).unwrap();

    assert_eq!(c.account_contacts(None).await.unwrap().len(), 7);
    assert_eq!(fake.calls("GET", "/v3/contacts"), 3);
    let since = Utc.with_ymd_and_hms(2021, 1, 1, 0, 0, 0).unwrap();
    let recent = c.account_contacts(Some(since)).await.unwrap();
    assert_eq!(recent.len(), 6);
    assert!(recent.iter().all(|c| c.email != "a3@example.org"));
}

#[tokio::test]
async fn lists_and_attributes() {
    let fake = FakeBrevo::start().await;
    let ids: Vec<i64> = (0..55).map(|i| fake.add_list(&format!("List {i}"))).collect();
    fake.add_attribute(FakeAttribute {
        name: "ANREDE".into(),
        category: "category".into(),
        attribute_type: None,
        enumeration: vec![(1, "Herr".into()), (2, "Frau".into())],
    });
    fake.add_attribute(FakeAttribute {
        name: "LAST_OPEN".into(),
        category: "global".into(),
        attribute_type: Some("date".into()),
        enumeration: vec![],
    });
    let c = client(&fake);

    let lists = c.lists().await.unwrap();
    assert_eq!(lists.iter().map(|l| l.id).collect::<Vec<_>>(), ids);
    assert_eq!(lists[0].name, "List 0");
    assert_eq!(fake.calls("GET", "/contacts/lists"), 2, "55 lists in pages of 50");

    let attributes = c.attributes().await.unwrap();
    let first = attributes.iter().find(|a| a.name == "FIRSTNAME").unwrap();
    assert_eq!(first.category, AttributeCategory::Normal);
    assert_eq!(first.attribute_type.as_deref(), Some("text"));
    let anrede = attributes.iter().find(|a| a.name == "ANREDE").unwrap();
    assert_eq!(anrede.category, AttributeCategory::Category);
    assert_eq!(anrede.enum_value_for_label("frau"), Some(2));
    let global = attributes.iter().find(|a| a.name == "LAST_OPEN").unwrap();
    assert_eq!(global.category, AttributeCategory::Global);
    assert!(!global.category.is_contact_writable());
    assert!(anrede.category.is_contact_writable());
}

#[tokio::test]
async fn wrong_api_key_is_an_auth_error() {
    let fake = FakeBrevo::start().await;
    let mut cfg = config(&fake);
    cfg.api_key = ApiKey::new("xkeysib-wrong");
    let err = BrevoClient::new(cfg).unwrap().get_contact("a@example.org").await.unwrap_err();
    assert!(matches!(err, BrevoError::Auth { status: 401, .. }), "{err:?}");
    assert_eq!(fake.request_log()[0].status, 401);
    assert!(!format!("{err} {err:?}").contains("wrong"));
}

#[tokio::test]
async fn a_429_blocks_every_clone_until_the_announced_reset() {
    let fake = FakeBrevo::start().await;
    fake.add_contact("rl@example.org", Map::new(), &[]);
    let c = client(&fake);
    let clone = c.clone();
    fake.force_rate_limited(1, 1);

    let first = tokio::spawn(async move { c.get_contact("rl@example.org").await });
    // Let the first request receive its 429 before the clone starts.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = clone.get_contact("rl@example.org").await.unwrap();
    assert!(second.is_some());
    assert!(first.await.unwrap().unwrap().is_some());

    let log = fake.request_log();
    assert_eq!(log.len(), 3, "one 429, then the two successful requests");
    assert_eq!(log[0].status, 429);
    let reset_at = log[0].at + Duration::from_secs(1);
    for r in &log[1..] {
        assert_eq!(r.status, 200);
        assert!(r.at >= reset_at, "a request reached the fake {:?} before the reset", reset_at - r.at);
    }
}

#[tokio::test]
async fn persistent_429_ends_in_rate_limited() {
    let fake = FakeBrevo::start().await;
    let mut cfg = config(&fake);
    cfg.max_attempts = 2;
    fake.force_rate_limited(5, 1);
    let err = BrevoClient::new(cfg).unwrap().get_contact("a@example.org").await.unwrap_err();
    assert!(matches!(err, BrevoError::RateLimited { .. }), "{err:?}");
    assert_eq!(fake.request_log().len(), 2);
}

#[tokio::test]
async fn reset_longer_than_the_accepted_wait_fails_fast() {
    let fake = FakeBrevo::start().await;
    let mut cfg = config(&fake);
    cfg.max_rate_limit_wait = Duration::from_secs(1);
    fake.force_rate_limited(1, 3600);
    let err = BrevoClient::new(cfg).unwrap().get_contact("a@example.org").await.unwrap_err();
    let BrevoError::RateLimited { retry_after } = err else { panic!("{err:?}") };
    assert_eq!(retry_after, Duration::from_secs(3600));
    assert_eq!(fake.request_log().len(), 1);
}

#[tokio::test]
async fn client_pacing_stays_within_the_fakes_contact_budget() {
    let fake = FakeBrevo::start().await;
    // The server allows a little more than the client uses: the two one-second windows start at
    // slightly different instants, and the client must stay inside the server's budget regardless.
    // Unpaced, 8 requests in a burst would still draw 429s.
    fake.set_rate_limit(FakeRateLimit { contacts_per_second: Some(6), others_per_hour: None });
    let mut cfg = config(&fake);
    cfg.contacts_per_second = 5;
    let c = BrevoClient::new(cfg).unwrap();
    let start = std::time::Instant::now();
    for i in 0..8 {
        assert!(c.get_contact(&format!("p{i}@example.org")).await.unwrap().is_none());
    }
    assert!(start.elapsed() >= Duration::from_millis(900), "8 requests at 5/s take about a second");
    assert!(fake.request_log().iter().all(|r| r.status == 404), "no 429: the client paced itself");
}

#[tokio::test]
async fn fake_answers_429_with_rate_limit_headers_when_driven_too_fast() {
    let fake = FakeBrevo::start().await;
    let http = reqwest::Client::new();
    let mut limited = None;
    for _ in 0..15 {
        let resp =
            http.get(format!("{}/contacts", fake.base_url())).header("api-key", FAKE_API_KEY).send().await.unwrap();
        if resp.status() == 429 {
            limited = Some(resp);
            break;
        }
    }
    let resp = limited.expect("more than 10 requests in a second must be limited");
    assert_eq!(resp.headers()["x-sib-ratelimit-limit"], "10");
    assert_eq!(resp.headers()["x-sib-ratelimit-remaining"], "0");
    assert_eq!(resp.headers()["x-sib-ratelimit-reset"], "1");
}

#[tokio::test]
async fn server_errors_are_retried_for_idempotent_requests_only() {
    let fake = FakeBrevo::start().await;
    fake.add_contact("t@example.org", Map::new(), &[]);
    let c = client(&fake);

    fake.inject_failures(&[503, 502]);
    assert!(c.get_contact("t@example.org").await.unwrap().is_some());
    assert_eq!(fake.request_log().iter().map(|r| r.status).collect::<Vec<_>>(), vec![503, 502, 200]);

    fake.clear_request_log();
    fake.inject_failures(&[503]);
    let err = c.upsert_contact("t@example.org", Map::new(), &[]).await.unwrap_err();
    assert!(matches!(err, BrevoError::Transient { status: Some(503), .. }), "{err:?}");
    assert_eq!(fake.request_log().len(), 1, "POST /contacts is not retried");

    fake.clear_request_log();
    fake.inject_failures(&[500, 500, 500, 500]);
    let err = c.get_contact("t@example.org").await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(fake.request_log().len(), 4, "bounded attempts");
}

#[tokio::test]
async fn timeouts_count_as_transient() {
    // A listener that accepts but never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut open = vec![];
        while let Ok((sock, _)) = listener.accept().await {
            open.push(sock);
        }
    });
    let mut cfg = BrevoConfig::new(format!("http://{addr}/v3"), ApiKey::new("k"));
    cfg.request_timeout = Duration::from_millis(100);
    cfg.max_attempts = 2;
    cfg.backoff_base = Duration::from_millis(1);
    let err = BrevoClient::new(cfg).unwrap().get_contact("a@example.org").await.unwrap_err();
    assert!(matches!(err, BrevoError::Transient { status: None, .. }), "{err:?}");
    hold.abort();
}

#[tokio::test]
async fn create_webhook_and_receive_an_unsubscribe_from_the_fake() {
    let fake = FakeBrevo::start().await;
    let list = fake.add_list("L");
    fake.add_contact("u@example.org", Map::new(), &[list]);

    // A tiny receiver standing in for our webhook endpoint.
    type Seen = Arc<Mutex<Vec<(Option<String>, Vec<u8>)>>>;
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let seen = seen2.clone();
            async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
                seen.lock().unwrap().push((auth, body.to_vec()));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let c = client(&fake);
    let events = [MarketingEvent::Unsubscribed, MarketingEvent::ListAddition, MarketingEvent::ContactDeleted];
    let id = c.create_webhook(&url, &events, "tok-123", "optisync").await.unwrap();
    let hooks = c.marketing_webhooks().await.unwrap();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].id, id);
    assert_eq!(hooks[0].events, vec!["unsubscribed", "listAddition", "contactDeleted"]);

    assert_eq!(fake.emit_unsubscribe("u@example.org", 77).await, vec![204]);
    assert_eq!(fake.emit_list_addition("u@example.org", &[list]).await, vec![204]);
    assert_eq!(fake.emit_contact_deleted("u@example.org").await, vec![204]);

    let calls = seen.lock().unwrap().clone();
    assert_eq!(calls.len(), 3);
    for (auth, _) in &calls {
        assert!(webhook::authenticate(auth.as_deref(), "tok-123"));
        assert!(!webhook::authenticate(auth.as_deref(), "tok-124"));
    }
    let WebhookEvent::Unsubscribed(unsub) = webhook::parse_event(&calls[0].1).unwrap() else { panic!("unsubscribe") };
    assert_eq!(unsub.email, "u@example.org");
    assert_eq!(unsub.campaign_id, Some(77));
    assert_eq!(unsub.list_ids, vec![list]);
    assert!(matches!(webhook::parse_event(&calls[1].1).unwrap(), WebhookEvent::ListAddition(_)));
    assert!(matches!(webhook::parse_event(&calls[2].1).unwrap(), WebhookEvent::ContactDeleted(_)));
    assert!(fake.contact("u@example.org").is_none());

    // M3: after a token update, Brevo's calls carry the new token and the other settings stay.
    c.update_webhook_token(id, "tok-456").await.unwrap();
    assert_eq!(c.marketing_webhooks().await.unwrap(), hooks, "url, events and description unchanged");
    fake.add_contact("v@example.org", Map::new(), &[list]);
    assert_eq!(fake.emit_unsubscribe("v@example.org", 78).await, vec![204]);
    let (auth, _) = seen.lock().unwrap().last().cloned().expect("a call");
    assert!(webhook::authenticate(auth.as_deref(), "tok-456"));
    assert!(!webhook::authenticate(auth.as_deref(), "tok-123"));
    assert!(matches!(
        c.update_webhook_token(id + 1, "tok-789").await,
        Err(optisync_brevo::BrevoError::NotFound { .. })
    ));
    server.abort();
}

#[tokio::test]
async fn debug_of_client_and_config_hides_the_key() {
    let fake = FakeBrevo::start().await;
    let c = client(&fake);
    assert!(!format!("{c:?} {:?}", config(&fake)).contains(FAKE_API_KEY));
}
