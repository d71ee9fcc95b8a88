//! Contract check: every kind of request the client sends is validated against Brevo's official OpenAPI
//! file by a Prism proxy in front of the fake (started by `tests/run`). A request the spec does not allow
//! is answered 422 by the proxy, which fails the client call and so this test.

use optisync_brevo::client::MarketingEvent;
use optisync_brevo::{ApiKey, BrevoClient, BrevoConfig};
use optisync_fakes::brevo::{FAKE_API_KEY, FakeBrevo, FakeRateLimit};
use serde_json::{Map, json};
use std::time::Duration;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with `bash tests/run`, which starts the contract proxy")
    })
}

#[tokio::test]
async fn every_client_request_conforms_to_the_official_openapi_file_and_a_bad_one_is_refused() {
    let proxy = env("OPTISYNC_TEST_BREVO_PROXY");
    let port: u16 = env("OPTISYNC_TEST_BREVO_FAKE_PORT").parse().expect("port");
    let fake = FakeBrevo::start_on(port).await;
    // This test checks request shapes; rate limiting has its own tests (the spec declares no 429 here).
    fake.set_rate_limit(FakeRateLimit::off());
    let list = fake.add_list("Rundbrief");
    let mut cfg = BrevoConfig::new(proxy.clone(), ApiKey::new(FAKE_API_KEY));
    cfg.max_attempts = 1;
    cfg.request_timeout = Duration::from_secs(20);
    let client = BrevoClient::new(cfg).unwrap();

    let mut attributes = Map::new();
    attributes.insert("FIRSTNAME".into(), json!("Max"));
    client.upsert_contact("max@example.com", attributes.clone(), &[list]).await.expect("create with list");
    client.upsert_contact("max@example.com", attributes, &[]).await.expect("update");
    assert!(client.get_contact("max@example.com").await.expect("get").is_some());
    assert!(client.get_contact("nobody@example.com").await.expect("get unknown").is_none());
    client.set_blacklisted("max@example.com", true).await.expect("blacklist");
    client.set_blacklisted("max@example.com", false).await.expect("un-blacklist");
    let many: Vec<String> = (0..160).map(|n| format!("user{n}@example.com")).collect();
    for email in &many {
        fake.add_contact(email, Map::new(), &[]);
    }
    client.add_to_list(list, &many).await.expect("add in batches");
    client.remove_from_list(list, &many[..10]).await.expect("remove");
    let since = chrono::Utc::now() - chrono::Duration::days(1);
    assert!(!client.list_contacts(list, Some(since)).await.expect("list contacts").is_empty());
    assert!(!client.account_contacts(Some(since)).await.expect("account contacts").is_empty());
    client.lists().await.expect("lists");
    client.attributes().await.expect("attributes");
    client
        .create_webhook(
            "https://hooks.example.org/brevo/acc",
            &[MarketingEvent::Unsubscribed, MarketingEvent::ListAddition, MarketingEvent::ContactDeleted],
            "token-123",
            "optisync",
        )
        .await
        .expect("create webhook");
    let hook = fake.webhooks().last().expect("the webhook").id;
    client.update_webhook_token(hook, "token-456").await.expect("update webhook token (M3)");
    assert_eq!(fake.webhooks().last().unwrap().bearer_token.as_deref(), Some("token-456"));
    assert!(client.delete_contact("max@example.com").await.expect("delete"));

    // The proxy really checks: a body the spec does not allow is refused before it reaches the fake.
    let bad = reqwest::Client::new()
        .post(format!("{proxy}/contacts/lists/{list}/contacts/add"))
        .header("api-key", FAKE_API_KEY)
        .json(&json!({"emailz": 5}))
        .send()
        .await
        .expect("proxy answers");
    assert_eq!(bad.status().as_u16(), 422, "{:?}", bad.text().await);
}
