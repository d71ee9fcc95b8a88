//! The client against the fake server, one test per operation and behaviour.

use std::sync::Arc;
use std::time::{Duration, Instant};

use optisync_cleverreach::{
    CleverReachClient, ClientConfig, Error, FilterRule, MemoryTokenStore, ReceiverType, ReceiverUpsert, StateChange,
    TokenSet, UpsertOutcome,
};
use optisync_fakes::cleverreach::FakeCleverReach;

struct Setup {
    fake: FakeCleverReach,
    client: CleverReachClient,
    store: MemoryTokenStore,
    group: String,
}

async fn setup_with(tweak: impl FnOnce(&mut ClientConfig)) -> Setup {
    let fake = FakeCleverReach::start().await;
    let mut cfg = fake.client_config();
    tweak(&mut cfg);
    let store = MemoryTokenStore::new();
    let client = CleverReachClient::new(cfg, Arc::new(store.clone()));
    client.set_tokens(fake.issue_tokens()).await;
    let group = fake.add_group("Newsletter");
    Setup { fake, client, store, group }
}

async fn setup() -> Setup {
    setup_with(|_| {}).await
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn authorization_code_flow_issues_and_persists_tokens() {
    let fake = FakeCleverReach::start().await;
    let store = MemoryTokenStore::new();
    let client = CleverReachClient::new(fake.client_config(), Arc::new(store.clone()));
    let url = client.authorize_url("st4te").unwrap();
    assert!(url.contains("grant=basic"), "{url}");
    assert!(url.contains("response_type=code"));
    assert!(url.contains("state=st4te"));

    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let params: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(params["state"], "st4te");

    let tokens = client.exchange_code(&params["code"]).await.unwrap();
    assert!(tokens.refresh_token.is_some());
    assert_eq!(store.saved().len(), 1);
    assert_eq!(store.latest().unwrap().refresh_token, fake.current_refresh_token());
    fake.add_group("A");
    assert_eq!(client.list_groups().await.unwrap().len(), 1);

    // A code is single-use.
    let err = client.exchange_code(&params["code"]).await.unwrap_err();
    assert!(matches!(err, Error::OAuth { status: 400, .. }), "{err:?}");
}

#[tokio::test]
async fn refresh_on_401_retries_once_and_persists_rotated_refresh_token() {
    let s = setup().await;
    let before = s.client.tokens().await.unwrap();
    s.fake.expire_access_tokens();
    s.client.list_groups().await.unwrap();
    assert_eq!(s.fake.refresh_count(), 1);
    let saved = s.store.saved();
    assert_eq!(saved.len(), 1);
    let new_refresh = saved[0].refresh_token.clone().unwrap();
    assert_ne!(Some(new_refresh.clone()), before.refresh_token);
    assert_eq!(Some(new_refresh), s.fake.current_refresh_token());
    let statuses: Vec<u16> = s.fake.requests().iter().filter(|r| r.path.starts_with("/v3")).map(|r| r.status).collect();
    assert_eq!(statuses, vec![401, 200]);
    // The rotated pair keeps working.
    s.client.list_groups().await.unwrap();
    assert_eq!(s.fake.refresh_count(), 1);
}

#[tokio::test]
async fn refreshes_proactively_before_expiry() {
    let s = setup().await;
    let mut old: TokenSet = s.client.tokens().await.unwrap();
    old.obtained_at = now() - 3590; // lifetime 3600, skew 300 -> due
    s.client.set_tokens(old).await;
    s.client.list_groups().await.unwrap();
    assert_eq!(s.fake.refresh_count(), 1);
    assert!(s.fake.requests().iter().all(|r| r.status != 401));
    assert_eq!(s.store.saved().len(), 1);
}

#[tokio::test]
async fn failed_refresh_is_a_typed_reauthorization_error() {
    let s = setup().await;
    s.fake.expire_access_tokens();
    s.fake.revoke_refresh_token();
    let err = s.client.list_groups().await.unwrap_err();
    assert!(err.needs_reauthorization(), "{err:?}");
    let text = format!("{err} {err:?}");
    let tokens = s.client.tokens().await.unwrap();
    assert!(!text.contains(tokens.refresh_token.unwrap().expose()));
    assert!(!text.contains(tokens.access_token.expose()));
}

#[tokio::test]
async fn client_without_tokens_needs_authorization() {
    let fake = FakeCleverReach::start().await;
    let client = CleverReachClient::new(fake.client_config(), Arc::new(MemoryTokenStore::new()));
    assert!(client.list_groups().await.unwrap_err().needs_reauthorization());
}

#[tokio::test]
async fn get_receiver_by_email_and_id_and_missing() {
    let s = setup().await;
    let id = s.fake.add_receiver(&s.group, "max+news@example.com", now() - 100, 0, &[("firstname", "Max")]);
    let r = s.client.get_receiver(&s.group, "max+news@example.com").await.unwrap().unwrap();
    assert_eq!(r.id, id);
    assert_eq!(r.group_id, s.group);
    assert!(r.active);
    assert_eq!(r.global_attributes["firstname"], "Max");
    let by_id = s.client.get_receiver(&s.group, &id).await.unwrap().unwrap();
    assert_eq!(by_id.email, "max+news@example.com");
    assert!(s.client.get_receiver(&s.group, "nobody@example.com").await.unwrap().is_none());
    // Debug output masks the address.
    assert!(!format!("{r:?}").contains("max+news@example.com"));
}

#[tokio::test]
async fn upsert_new_receiver_without_state_becomes_active_with_fields() {
    let s = setup().await;
    let out = s
        .client
        .upsert_receivers(&s.group, &[ReceiverUpsert::new("new@example.com").global_attribute("firstname", "Nina")])
        .await
        .unwrap();
    assert!(matches!(&out[0], UpsertOutcome::Ok { status, .. } if status == "upsert success"));
    let r = s.client.get_receiver(&s.group, "new@example.com").await.unwrap().unwrap();
    assert!(r.active && r.activated > 0 && r.deactivated == 0);
    assert_eq!(r.global_attributes["firstname"], "Nina");
    assert_eq!(s.fake.mutating_calls(), 1);
}

#[tokio::test]
async fn upsert_create_inactive_and_explicit_state_changes() {
    let s = setup().await;
    let t = now();
    s.client
        .upsert_receivers(&s.group, &[ReceiverUpsert::new("doi@example.com").with_state(StateChange::CreateInactive)])
        .await
        .unwrap();
    assert!(!s.fake.receiver(&s.group, "doi@example.com").unwrap().active);

    s.fake.add_receiver(&s.group, "gone@example.com", t - 1000, t - 10, &[]);
    s.client
        .upsert_receivers(
            &s.group,
            &[ReceiverUpsert::new("gone@example.com").with_state(StateChange::Activate { at: t })],
        )
        .await
        .unwrap();
    let r = s.fake.receiver(&s.group, "gone@example.com").unwrap();
    assert!(r.active && r.deactivated == 0);

    s.client
        .upsert_receivers(
            &s.group,
            &[ReceiverUpsert::new("gone@example.com").with_state(StateChange::Deactivate { at: t })],
        )
        .await
        .unwrap();
    let r = s.fake.receiver(&s.group, "gone@example.com").unwrap();
    assert!(!r.active && r.deactivated == t);
}

#[tokio::test]
async fn field_update_never_changes_active_state() {
    let s = setup().await;
    let t = now();
    s.fake.add_receiver(&s.group, "active@example.com", t - 1000, 0, &[("firstname", "A")]);
    s.fake.add_receiver(&s.group, "inactive@example.com", t - 1000, t - 500, &[("firstname", "I")]);
    s.fake.add_receiver(&s.group, "unsub@example.com", t - 1000, 0, &[]);
    s.fake.unsubscribe_via_link(&s.group, "unsub@example.com");
    let pending = s.fake.add_receiver(&s.group, "pending@example.com", 0, 0, &[]);

    let updates: Vec<ReceiverUpsert> =
        ["active@example.com", "inactive@example.com", "unsub@example.com", "pending@example.com"]
            .iter()
            .map(|e| ReceiverUpsert::new(*e).global_attribute("firstname", "Changed"))
            .collect();
    let out = s.client.upsert_receivers(&s.group, &updates).await.unwrap();
    assert!(out.iter().all(UpsertOutcome::is_ok));

    let a = s.fake.receiver(&s.group, "active@example.com").unwrap();
    assert!(a.active);
    assert_eq!((a.activated, a.deactivated), (t - 1000, 0));
    assert_eq!(a.global_attributes["firstname"], "Changed");

    let i = s.fake.receiver(&s.group, "inactive@example.com").unwrap();
    assert!(!i.active);
    assert_eq!((i.activated, i.deactivated), (t - 1000, t - 500));
    assert_eq!(i.global_attributes["firstname"], "Changed");

    let u = s.fake.receiver(&s.group, "unsub@example.com").unwrap();
    assert!(!u.active && u.deactivated > 0);
    assert!(u.events.iter().any(|e| e.kind == "user_unsubscribe"));

    let p = s.fake.receiver(&s.group, &pending).unwrap();
    assert!(!p.active && p.activated == 0);
}

#[tokio::test]
async fn upsert_halves_batches_on_413() {
    let s = setup().await;
    s.fake.set_max_batch_size(100);
    let items: Vec<ReceiverUpsert> = (0..300).map(|i| ReceiverUpsert::new(format!("b{i}@example.com"))).collect();
    let out = s.client.upsert_receivers(&s.group, &items).await.unwrap();
    assert_eq!(out.len(), 300);
    assert!(out.iter().all(UpsertOutcome::is_ok));
    let upserts: Vec<(u16, usize)> =
        s.fake.requests().iter().filter(|r| r.path.ends_with("/upsert")).map(|r| (r.status, r.items)).collect();
    // 250 -> 413, 125 -> 413, then batches of 63.
    assert_eq!(upserts[0], (413, 250));
    assert_eq!(upserts[1], (413, 125));
    assert!(upserts[2..].iter().all(|(status, n)| *status == 200 && *n <= 100), "{upserts:?}");
    assert_eq!(upserts[2..].iter().map(|(_, n)| n).sum::<usize>(), 300);
    assert_eq!(s.client.all_receivers(&s.group, ReceiverType::All).await.unwrap().len(), 300);
}

#[tokio::test]
async fn upsert_batch_of_one_too_large_is_an_error() {
    let s = setup().await;
    s.fake.set_max_batch_size(0);
    let err = s.client.upsert_receivers(&s.group, &[ReceiverUpsert::new("x@example.com")]).await.unwrap_err();
    assert!(matches!(err, Error::BatchTooLarge { size: 1, .. }), "{err:?}");
}

#[tokio::test]
async fn upsert_reports_bare_string_rejections_without_leaking_addresses() {
    let s = setup().await;
    let out = s
        .client
        .upsert_receivers(&s.group, &[ReceiverUpsert::new("ok@example.com"), ReceiverUpsert::new("broken-address")])
        .await
        .unwrap();
    assert!(out[0].is_ok());
    match &out[1] {
        UpsertOutcome::Rejected { email, message } => {
            assert_eq!(email, "broken-address");
            assert!(message.starts_with("invalid address"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn set_active_and_inactive_per_group() {
    let s = setup().await;
    let other = s.fake.add_group("Other");
    let t = now();
    s.fake.add_receiver(&s.group, "x@example.com", t - 10, 0, &[]);
    s.fake.add_receiver(&other, "x@example.com", t - 10, 0, &[]);
    s.client.set_inactive(&s.group, "x@example.com").await.unwrap();
    assert!(!s.fake.receiver(&s.group, "x@example.com").unwrap().active);
    assert!(s.fake.receiver(&other, "x@example.com").unwrap().active, "other group untouched");
    s.client.set_active(&s.group, "x@example.com").await.unwrap();
    assert!(s.fake.receiver(&s.group, "x@example.com").unwrap().active);
    let err = s.client.set_active(&s.group, "missing@example.com").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
    assert!(!err.to_string().contains("missing@example.com"));
}

#[tokio::test]
async fn pages_past_5000_receivers_until_a_short_page() {
    let s = setup().await;
    s.fake.seed_receivers(&s.group, 5003);
    let all = s.client.all_receivers(&s.group, ReceiverType::All).await.unwrap();
    assert_eq!(all.len(), 5003);
    let mut ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5003, "no duplicates across pages");
    let pages: Vec<String> =
        s.fake.requests().iter().filter(|r| r.path.ends_with("/receivers")).map(|r| r.query.clone()).collect();
    assert_eq!(pages.len(), 2);
    assert!(pages[0].contains("page=0") && pages[0].contains("pagesize=5000"));
    assert!(pages[1].contains("page=1"));

    let inactive = s.client.all_receivers(&s.group, ReceiverType::Inactive).await.unwrap();
    assert_eq!(inactive.len(), 500);
    assert!(inactive.iter().all(|r| !r.active && r.deactivated > 0));
    let active = s.client.all_receivers(&s.group, ReceiverType::Active).await.unwrap();
    assert_eq!(active.len(), 4503);
}

#[tokio::test]
async fn paging_with_exact_multiple_stops_on_empty_page() {
    let s = setup_with(|c| c.page_size = 3).await;
    s.fake.seed_receivers(&s.group, 6);
    assert_eq!(s.client.all_receivers(&s.group, ReceiverType::All).await.unwrap().len(), 6);
    assert_eq!(s.fake.requests().iter().filter(|r| r.path.ends_with("/receivers")).count(), 3);
    let page = s.client.receivers_page(&s.group, ReceiverType::All, 1, 4).await.unwrap();
    assert_eq!(page.len(), 2);
}

#[tokio::test]
async fn r_g1_groups_attributes_filters_as_segments_and_a_segments_receivers() {
    let s = setup_with(|c| c.page_size = 2).await;
    s.fake.add_global_attribute("Firstname", "text");
    s.fake.add_global_attribute("region", "text");
    let t = now();
    for (i, region) in ["north", "south", "north", "north", "north"].iter().enumerate() {
        let deactivated = if i == 4 { t } else { 0 };
        s.fake.add_receiver(&s.group, &format!("r{i}@example.com"), t - 10, deactivated, &[("region", region)]);
    }
    let fid = s.fake.add_filter(
        &s.group,
        "North",
        "AND",
        vec![FilterRule {
            operator: "AND".into(),
            field: "region".into(),
            logic: "eq".into(),
            condition: "north".into(),
        }],
    );

    let groups = s.client.list_groups().await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].id, s.group);
    assert_eq!(groups[0].name, "Newsletter");

    let attrs = s.client.list_global_attributes().await.unwrap();
    let names: Vec<&str> = attrs.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["firstname", "region"]);
    assert_eq!(attrs[0].groups_id, 0);

    let filters = s.client.list_filters(&s.group).await.unwrap();
    assert_eq!(filters.len(), 1);
    assert_eq!(filters[0].id, fid);
    assert_eq!(filters[0].rules[0].condition, "north");

    let all = s.client.all_filter_receivers(&s.group, &fid, ReceiverType::All).await.unwrap();
    assert_eq!(all.len(), 4);
    let active = s.client.all_filter_receivers(&s.group, &fid, ReceiverType::Active).await.unwrap();
    assert_eq!(active.len(), 3);
    assert!(active.iter().all(|r| r.global_attributes["region"] == "north"));
    assert!(matches!(
        s.client.filter_receivers_page(&s.group, "999999", ReceiverType::All, 0, 10).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn delete_from_group_and_everywhere() {
    let s = setup().await;
    let other = s.fake.add_group("Other");
    let t = now();
    s.fake.add_receiver(&s.group, "d@example.com", t, 0, &[]);
    s.fake.add_receiver(&other, "d@example.com", t, 0, &[]);
    assert!(s.client.remove_from_group(&s.group, "d@example.com").await.unwrap());
    assert!(s.fake.receiver(&s.group, "d@example.com").is_none());
    assert!(s.fake.receiver(&other, "d@example.com").is_some());
    assert!(!s.client.remove_from_group(&s.group, "d@example.com").await.unwrap());
    assert!(s.client.delete_receiver("d@example.com").await.unwrap());
    assert!(s.fake.receiver(&other, "d@example.com").is_none());
    assert!(!s.client.delete_receiver("d@example.com").await.unwrap());
}

#[tokio::test]
async fn honours_429_retry_after() {
    let s = setup().await;
    s.fake.inject_failures(429, Some(1), 1);
    let started = Instant::now();
    s.client.list_groups().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(950), "{:?}", started.elapsed());
    let statuses: Vec<u16> = s.fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 200]);
}

#[tokio::test]
async fn persistent_429_gives_rate_limited_after_bounded_attempts() {
    let s = setup_with(|c| c.max_attempts = 3).await;
    s.fake.inject_failures(429, Some(0), 10);
    let err = s.client.list_groups().await.unwrap_err();
    assert!(matches!(err, Error::RateLimited { .. }), "{err:?}");
    assert_eq!(s.fake.requests().len(), 3);
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_for_idempotent_calls_only() {
    let s = setup_with(|c| c.max_attempts = 3).await;
    s.fake.inject_failures(503, None, 2);
    assert!(s.client.list_groups().await.unwrap().len() == 1);
    assert_eq!(s.fake.requests().len(), 3);

    s.fake.clear_log();
    s.fake.inject_failures(502, None, 3);
    let err = s.client.list_groups().await.unwrap_err();
    assert!(matches!(err, Error::Api { status: 502, .. }), "{err:?}");
    assert_eq!(s.fake.requests().len(), 3, "bounded attempts");

    // Webhook registration is not idempotent: a 500 is not retried.
    s.fake.clear_log();
    s.fake.inject_failures(500, None, 5);
    let verify = optisync_cleverreach::Secret::new("verify-token-123");
    let err = s.client.register_webhook("http://127.0.0.1:9/x", "receiver", &s.group, &verify).await.unwrap_err();
    assert!(matches!(err, Error::Api { status: 500, .. }), "{err:?}");
    assert_eq!(s.fake.requests().len(), 1);
}

#[tokio::test]
async fn rate_limit_is_shared_by_clones() {
    let s = setup_with(|c| c.requests_per_second = 40.0).await;
    let a = s.client.clone();
    let b = s.client.clone();
    let started = Instant::now();
    let run = |c: CleverReachClient| async move {
        for _ in 0..10 {
            c.list_groups().await.unwrap();
        }
    };
    tokio::join!(run(a), run(b));
    // 20 requests at 40/s: at least 19 intervals of 25 ms.
    assert!(started.elapsed() >= Duration::from_millis(450), "{:?}", started.elapsed());
}

#[tokio::test]
async fn r_e1_r_j4_deactivation_time_and_whether_the_recipient_unsubscribed_are_read_from_receiver_events() {
    let s = setup().await;
    for email in ["self@example.com", "admin@example.com"] {
        s.client.upsert_receivers(&s.group, &[ReceiverUpsert::new(email)]).await.unwrap();
    }
    assert_eq!(s.client.get_receiver(&s.group, "self@example.com").await.unwrap().unwrap().deactivation(), None);
    s.fake.unsubscribe_via_link(&s.group, "self@example.com");
    s.client.set_inactive(&s.group, "admin@example.com").await.unwrap();
    let own = s.client.get_receiver(&s.group, "self@example.com").await.unwrap().unwrap().deactivation().unwrap();
    assert!(own.by_recipient && own.at > 0, "{own:?}");
    let admin = s.client.get_receiver(&s.group, "admin@example.com").await.unwrap().unwrap().deactivation().unwrap();
    assert!(!admin.by_recipient && admin.at > 0, "{admin:?}");
}

#[tokio::test]
async fn r_h1_a_rotated_refresh_token_is_kept_in_the_secret_store_and_a_new_process_resumes_with_it() {
    use optisync_cleverreach::SecretTokenStore;
    use optisync_testkit::memory::MemorySecrets;
    let fake = FakeCleverReach::start().await;
    let secrets: Arc<dyn optisync_ports::SecretStore> = Arc::new(MemorySecrets::default());
    let store = SecretTokenStore::new(secrets.clone(), "cleverreach/acc-1/tokens");
    let client = CleverReachClient::new(fake.client_config(), Arc::new(store.clone()));
    client.set_tokens(fake.issue_tokens()).await;
    fake.add_group("Newsletter");
    fake.expire_access_tokens();
    client.list_groups().await.unwrap();
    let saved = store.load().await.unwrap().expect("saved after the refresh");
    assert_eq!(saved.refresh_token, fake.current_refresh_token());
    // A new process (another Lambda) starts from the secret and works without re-authorisation.
    let restarted = CleverReachClient::new(fake.client_config(), Arc::new(store.clone()));
    restarted.set_tokens(store.load().await.unwrap().unwrap()).await;
    assert_eq!(restarted.list_groups().await.unwrap().len(), 1);
    assert_eq!(fake.refresh_count(), 1);
}

#[tokio::test]
async fn r_e1_r_e3_r_j1_a_re_read_receiver_becomes_the_right_observation() {
    use optisync_cleverreach::webhook::{ReceiverEventKind, observation};
    use optisync_domain::{AccountId, Email, EspEventKind, ListId};
    let s = setup().await;
    let group = ListId::new(&s.group);
    let acc = AccountId::new("acc");
    let now = chrono::Utc::now();
    s.client
        .upsert_receivers(
            &s.group,
            &[ReceiverUpsert::new("new@example.com")
                .global_attribute("firstname", "Erika")
                .with_state(StateChange::Keep)],
        )
        .await
        .unwrap();
    let r = s.client.get_receiver(&s.group, "new@example.com").await.unwrap();
    let email = Email::parse("new@example.com").unwrap();
    let o = observation(ReceiverEventKind::Created, r.as_ref(), &email, &group, &acc, now);
    let EspEventKind::Signup { signup } = &o.what else { panic!("{o:?}") };
    assert_eq!(signup.first_name.as_ref().map(|n| n.expose()), Some("Erika"));
    assert!(signup.evidence.confirmed_at.is_some(), "activation time kept as evidence (R-J1)");
    assert_eq!(
        observation(ReceiverEventKind::Updated, r.as_ref(), &email, &group, &acc, now).what,
        EspEventKind::FieldsChanged
    );

    s.fake.unsubscribe_via_link(&s.group, "new@example.com");
    let r = s.client.get_receiver(&s.group, "new@example.com").await.unwrap();
    assert_eq!(
        observation(ReceiverEventKind::Unsubscribed, r.as_ref(), &email, &group, &acc, now).what,
        EspEventKind::Unsubscribed
    );
    s.client.upsert_receivers(&s.group, &[ReceiverUpsert::new("admin@example.com")]).await.unwrap();
    s.client.set_inactive(&s.group, "admin@example.com").await.unwrap();
    let admin = Email::parse("admin@example.com").unwrap();
    let r = s.client.get_receiver(&s.group, "admin@example.com").await.unwrap();
    assert_eq!(
        observation(ReceiverEventKind::Unsubscribed, r.as_ref(), &admin, &group, &acc, now).what,
        EspEventKind::Deactivated
    );
    assert_eq!(observation(ReceiverEventKind::Deleted, None, &admin, &group, &acc, now).what, EspEventKind::Deleted);
}

// M5: containers share one token set through the secret store. CleverReach rotates the refresh token on
// every refresh, so a container whose refresh token another container used up takes the set that
// container kept instead of failing.

/// Two clients (two Lambda containers) that loaded the same token set from one secret.
async fn two_containers()
-> (FakeCleverReach, optisync_cleverreach::SecretTokenStore, CleverReachClient, CleverReachClient) {
    use optisync_cleverreach::{SecretTokenStore, TokenStore};
    use optisync_testkit::memory::MemorySecrets;
    let fake = FakeCleverReach::start().await;
    fake.add_group("Newsletter");
    let secrets: Arc<dyn optisync_ports::SecretStore> = Arc::new(MemorySecrets::default());
    let store = SecretTokenStore::new(secrets, "cleverreach/acc-1/tokens");
    store.save(&fake.issue_tokens()).await.unwrap();
    let (first, second) = (container(&fake, &store).await, container(&fake, &store).await);
    (fake, store, first, second)
}

/// A client started from the kept token set, as a container starts.
async fn container(fake: &FakeCleverReach, store: &optisync_cleverreach::SecretTokenStore) -> CleverReachClient {
    let client = CleverReachClient::new(fake.client_config(), Arc::new(store.clone()));
    client.set_tokens(store.load().await.unwrap().unwrap()).await;
    client
}

#[tokio::test]
async fn m5_after_another_container_refreshed_a_401_takes_the_kept_tokens_instead_of_failing() {
    let (fake, store, first, second) = two_containers().await;
    fake.expire_access_tokens();
    first.list_groups().await.unwrap();
    assert_eq!(fake.refresh_count(), 1, "the first container refreshed and rotated the refresh token");
    assert_eq!(second.list_groups().await.unwrap().len(), 1, "the second re-reads instead of failing");
    assert_eq!(fake.refresh_count(), 1, "with the tokens the first kept, no second refresh");
    assert_eq!(second.tokens().await, store.load().await.unwrap());
}

#[tokio::test]
async fn m5_a_due_refresh_takes_newer_kept_tokens_first() {
    let (fake, store, first, second) = two_containers().await;
    first.refresh_now().await.unwrap();
    let mut due = second.tokens().await.unwrap();
    due.obtained_at = now() - 3590; // lifetime 3600, skew 300: due
    second.set_tokens(due).await;
    assert_eq!(second.list_groups().await.unwrap().len(), 1);
    assert_eq!(fake.refresh_count(), 1, "the newer kept set is not due: no refresh");
    assert_eq!(second.tokens().await, store.load().await.unwrap());
}

/// A token store whose first read still sees the set from before another container's refresh (that
/// container kept its new set a moment after this one looked).
struct LateStore {
    inner: optisync_cleverreach::SecretTokenStore,
    stale: std::sync::Mutex<Option<TokenSet>>,
}

#[async_trait::async_trait]
impl optisync_cleverreach::TokenStore for LateStore {
    async fn save(&self, tokens: &TokenSet) -> Result<(), String> {
        self.inner.save(tokens).await
    }

    async fn load(&self) -> Result<Option<TokenSet>, String> {
        let stale = self.stale.lock().unwrap().take();
        match stale {
            Some(stale) => Ok(Some(stale)),
            None => self.inner.load().await,
        }
    }
}

#[tokio::test]
async fn m5_a_refused_refresh_re_reads_the_kept_tokens_and_retries_once_before_failing() {
    let (fake, store, first, _) = two_containers().await;
    let loaded = store.load().await.unwrap().unwrap();
    let late = Arc::new(LateStore { inner: store.clone(), stale: std::sync::Mutex::new(Some(loaded.clone())) });
    let second = CleverReachClient::new(fake.client_config(), late);
    second.set_tokens(loaded).await;
    fake.expire_access_tokens();
    first.list_groups().await.unwrap();
    assert_eq!(second.list_groups().await.unwrap().len(), 1, "refused refresh, re-read, retried with the kept set");
    assert_eq!(fake.refresh_count(), 1);

    // Refused with nothing newer kept: the account needs re-authorisation, after one refresh attempt.
    fake.expire_access_tokens();
    fake.revoke_refresh_token();
    let err = second.list_groups().await.unwrap_err();
    assert!(err.needs_reauthorization(), "{err:?}");
    let refreshes: Vec<u16> =
        fake.requests().iter().filter(|r| r.path.starts_with("/oauth/token")).map(|r| r.status).collect();
    assert_eq!(refreshes, vec![200, 400, 400], "the first container's, the used-up one, the revoked one");
}

#[tokio::test]
async fn r_e9_the_client_reads_the_account_blacklist_in_one_call_and_the_bounces_page_by_page() {
    let s = setup().await;
    let may_15 = chrono::DateTime::parse_from_rfc3339("2024-05-15T10:00:00Z").unwrap().timestamp();
    s.fake.blacklist("Max.Muster@example.com", may_15);
    s.fake.hard_bounce("erika@example.com", may_15, now() + 3600);
    s.fake.hard_bounce("paul@example.com", may_15, now() - 3600);
    s.fake.clear_log();

    let blacklist = s.client.blacklist().await.unwrap();
    assert_eq!(blacklist.len(), 1);
    assert_eq!((blacklist[0].email.as_str(), blacklist[0].stamp), ("Max.Muster@example.com", may_15));
    let debug = format!("{blacklist:?}");
    assert!(!debug.contains("Max.Muster@example.com") && !debug.contains("muster"), "R-J5: {debug}");

    let first = s.client.bounces_page(0, 1).await.unwrap();
    let second = s.client.bounces_page(1, 1).await.unwrap();
    let third = s.client.bounces_page(2, 1).await.unwrap();
    assert_eq!((first.len(), second.len(), third.len()), (1, 1, 0));
    assert_eq!((first[0].email.as_str(), first[0].category.as_str()), ("erika@example.com", "hardbounce"));
    assert!(first[0].blocks_hard(now()), "blocked until its expiry");
    assert!(!second[0].blocks_hard(now()), "an expired block blocks nothing");
    assert!(!format!("{first:?}").contains("erika@"), "R-J5");
    let paths: Vec<String> = s.fake.requests().iter().map(|r| format!("{} {}?{}", r.method, r.path, r.query)).collect();
    assert_eq!(
        paths,
        [
            "GET /v3/blacklist.json?",
            "GET /v3/bounces.json?page=0&pagesize=1",
            "GET /v3/bounces.json?page=1&pagesize=1",
            "GET /v3/bounces.json?page=2&pagesize=1"
        ]
    );

    // A refusal names the operation, never an address.
    s.fake.inject_failures(400, None, 1);
    let e = s.client.blacklist().await.unwrap_err();
    assert!(e.to_string().contains("blacklist") && !e.to_string().contains('@'), "{e}");
}
