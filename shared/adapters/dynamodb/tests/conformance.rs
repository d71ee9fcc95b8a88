//! The DynamoDB store passes the conformance suite against a DynamoDB-compatible server (moto, started
//! by `tests/run`), a fresh table per test, with small query pages so that paging is exercised.

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use optisync_dynamodb::DynamoStore;
use optisync_ports::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

static TABLES: AtomicU32 = AtomicU32::new(0);

async fn fresh() -> Arc<dyn StateStore> {
    Arc::new(fresh_store().await)
}

async fn fresh_store() -> DynamoStore {
    fresh_table().await.0
}

async fn fresh_table() -> (DynamoStore, aws_sdk_dynamodb::Client, String) {
    let endpoint = std::env::var("OPTISYNC_TEST_DYNAMODB_ENDPOINT").expect(
        "OPTISYNC_TEST_DYNAMODB_ENDPOINT is not set: run the tests with `bash tests/run`, which starts a DynamoDB-compatible server",
    );
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("eu-central-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let table = format!("conformance-{}-{}", std::process::id(), TABLES.fetch_add(1, Ordering::SeqCst));
    let store = DynamoStore::new(client.clone(), table.clone()).with_page_size(7);
    store.create_table().await.expect("create table");
    (store, client, table)
}

optisync_testkit::conformance_tests!(fresh);

async fn fresh_inbox() -> Arc<dyn optisync_ports::Inbox> {
    Arc::new(fresh_store().await)
}

optisync_testkit::inbox_conformance_tests!(fresh_inbox);

async fn fresh_retention() -> optisync_testkit::conformance::RetentionFixture {
    let clock = Arc::new(optisync_testkit::memory::FixedClock::new(chrono::Utc::now()));
    let store = Arc::new(fresh_store().await.with_clock(clock.clone()));
    optisync_testkit::conformance::RetentionFixture { store: store.clone(), inbox: store, clock, purge: None }
}

// R-J6 on DynamoDB: moto never deletes by TTL, so these show that reads alone treat expired items as gone.
optisync_testkit::retention_conformance_tests!(fresh_retention);

/// The TTL attribute `template.yaml` names, read from the template itself.
fn template_ttl_attribute() -> String {
    let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../template.yaml")).unwrap();
    let spec = template.split("TimeToLiveSpecification:").nth(1).expect("the table has a TimeToLiveSpecification");
    let line = spec.lines().find(|l| l.trim_start().starts_with("AttributeName:")).unwrap();
    line.split(':').nth(1).unwrap().trim().to_owned()
}

/// R-J6: every item that became expirable carries the TTL attribute the template's
/// `TimeToLiveSpecification` names, with the documented expiry in epoch seconds: a processed inbox
/// entry 7 days, an acknowledged command (marker and feed entry) 30 days, a decided approval 90 days,
/// a recipient state on no list 30 days (default periods); a pending approval and a waiting inbox entry
/// none. The tombstone an expirable recipient leaves holds no e-mail, has none, and the tenant's hash key
/// is its own item.
#[tokio::test]
async fn r_j6_expirable_items_carry_the_ttl_attribute_the_template_names() {
    use optisync_domain::*;
    use optisync_ports::{Commit, Expiry, Inbox, InboxEntry, ItemKey};
    let ttl = template_ttl_attribute();
    assert_eq!(ttl, "expires_at");
    let (store, client, table) = fresh_table().await;
    let now = chrono::Utc::now();
    let clock = Arc::new(optisync_testkit::memory::FixedClock::new(now));
    let store = store.with_clock(clock);
    let t = TenantId::new("t");
    let described = client.describe_time_to_live().table_name(&table).send().await.unwrap();
    assert_eq!(described.time_to_live_description.unwrap().attribute_name(), Some(ttl.as_str()));
    let raw = |pk: String, sk: String| {
        let (client, table) = (client.clone(), table.clone());
        async move { client.get_item().table_name(table).key("pk", s(&pk)).key("sk", s(&sk)).send().await.unwrap().item }
    };
    let expiry_of = |item: &Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>| {
        item.as_ref().unwrap().get(&ttl).map(|v| v.as_n().unwrap().parse::<i64>().unwrap())
    };
    let after = |d: i64| Some((now + chrono::Duration::days(d)).timestamp());

    let entry = |key: &str| InboxEntry {
        tenant: t.clone(),
        key: key.into(),
        fingerprint: "fp".into(),
        items: vec![],
        received_at: now,
    };
    store.put(&entry("optigem:msg-1")).await.unwrap();
    store.put(&entry("optigem:msg-2")).await.unwrap();
    store.mark_done(&t, "optigem:msg-1").await.unwrap();
    assert_eq!(expiry_of(&raw("INBOX#t#optigem:msg-1".into(), "INBOX".into()).await), after(7));
    assert_eq!(expiry_of(&raw("INBOX#t#optigem:msg-2".into(), "INBOX".into()).await), None);

    let end = OptigemCommand::MatchPersons {
        id: CommandId::new("match-1"),
        link: LinkId::new("rundbrief"),
        email: Email::parse("max.muster@example.org").unwrap(),
        first_name: Some(PersonalText::new("Max")),
        last_name: Some(PersonalText::new("Muster")),
    };
    store.commit(&t, Commit { commands: vec![end], ..Default::default() }).await.unwrap();
    assert_eq!(expiry_of(&raw("TENANT#t#COMMAND#match-1".into(), "COMMAND".into()).await), None);
    store.record_result(&t, &CommandId::new("match-1"), &CommandResult::done()).await.unwrap();
    assert_eq!(expiry_of(&raw("TENANT#t#COMMAND#match-1".into(), "COMMAND".into()).await), after(30));
    assert_eq!(expiry_of(&raw("TENANT#t#FEED".into(), format!("{:020}", 1)).await), after(30));

    let max = Email::parse("max.muster@example.org").unwrap();
    let mut state = RecipientState { listed: false, active: false, ..RecipientState::default() };
    state.tombstone = Some(Tombstone {
        at: now,
        source: UnsubscribeSource {
            provider: Provider::Brevo,
            account: AccountId::new("acc"),
            cause: UnsubscribeCause::Unsubscribed,
        },
    });
    let recipient = StateWrite::Recipient { link: LinkId::new("rundbrief"), email: max.clone(), state };
    let approval = |mail: &str, decided: bool| ApprovalEntry {
        link: LinkId::new("rundbrief"),
        email: Email::parse(mail).unwrap(),
        signup: Signup::default(),
        first_seen: now,
        last_seen: now,
        signups: 1,
        status: if decided { ApprovalStatus::Rejected } else { ApprovalStatus::Pending },
        match_command: CommandId::new("m"),
        decision: decided.then_some(Decision::Reject { at: now }),
        created: None,
    };
    let decided = StateWrite::Approval { entry: approval("lena@example.org", true) };
    let pending = StateWrite::Approval { entry: approval("tom@example.org", false) };
    let retention = Retention::default();
    let expiry = Expiry {
        items: [(ItemKey::of(&recipient), retention.recipients()), (ItemKey::of(&decided), retention.approvals())]
            .into(),
        commands: None,
    };
    let writes = vec![(recipient, None), (decided, None), (pending, None)];
    store.commit(&t, Commit { writes, expiry, ..Default::default() }).await.unwrap();
    let pk = "LINK#t#rundbrief".to_owned();
    assert_eq!(expiry_of(&raw(pk.clone(), "RECIPIENT#max.muster@example.org".into()).await), after(30));
    assert_eq!(expiry_of(&raw(pk.clone(), "APPROVAL#lena@example.org".into()).await), after(90));
    assert_eq!(expiry_of(&raw(pk.clone(), "APPROVAL#tom@example.org".into()).await), None);

    let items = client
        .query()
        .table_name(&table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :t)")
        .expression_attribute_values(":pk", s(&pk))
        .expression_attribute_values(":t", s("TOMBSTONE#"))
        .send()
        .await
        .unwrap()
        .items
        .unwrap();
    assert_eq!(items.len(), 1, "one tombstone");
    let text = format!("{:?}", items[0]);
    assert!(!text.contains("max.muster") && !text.contains("Muster"), "no e-mail or name in the tombstone");
    assert!(!items[0].contains_key(&ttl), "the tombstone does not expire");
    let hash = items[0]["sk"].as_s().unwrap().strip_prefix("TOMBSTONE#").unwrap().to_owned();
    assert_eq!(hash.len(), 64, "an HMAC-SHA256");
    assert_ne!(hash, EmailHasher::new(Vec::new()).hash(&max), "keyed by the tenant's key");
    assert!(raw("TENANT#t".into(), "EMAIL-HASH-KEY".into()).await.is_some(), "the tenant's own key");
}

fn s(v: &str) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::S(v.to_owned())
}

/// R-J3, R-K1: an erasure hashes with the tenant's own key, the one of the R-J6 tombstones
/// (`TENANT#{t} / EMAIL-HASH-KEY`): Max Muster erased from "Rundbrief" in two tenants with the same ids
/// leaves two different hashes, and no item in the table holds his address any more.
#[tokio::test]
async fn r_j3_erasure_hashes_with_the_tenants_own_key_and_keeps_no_address() {
    use optisync_domain::*;
    use optisync_ports::Commit;
    let (store, client, table) = fresh_table().await;
    let max = Email::parse("max.muster@example.org").unwrap();
    let tombstone = Tombstone {
        at: chrono::Utc::now(),
        source: UnsubscribeSource {
            provider: Provider::Brevo,
            account: AccountId::new("acc-0"),
            cause: UnsubscribeCause::Unsubscribed,
        },
    };
    let rundbrief = LinkId::new("rundbrief");
    let mut hashes = Vec::new();
    for t in ["t-a", "t-b"] {
        let tenant = TenantId::new(t);
        let recipient = RecipientState { listed: true, active: true, ..RecipientState::default() };
        let write = StateWrite::Recipient { link: rundbrief.clone(), email: max.clone(), state: recipient };
        store.commit(&tenant, Commit { writes: vec![(write, None)], ..Default::default() }).await.unwrap();
        store.erase_recipient(&tenant, &rundbrief, &max, &tombstone).await.unwrap();
        assert!(store.erased(&tenant, &max).await.unwrap().is_some());

        let key = client
            .get_item()
            .table_name(&table)
            .key("pk", s(&format!("TENANT#{t}")))
            .key("sk", s("EMAIL-HASH-KEY"))
            .send()
            .await
            .unwrap()
            .item
            .expect("the tenant's key");
        let hex = key["key"].as_s().unwrap();
        let key: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        let erased = client
            .query()
            .table_name(&table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :e)")
            .expression_attribute_values(":pk", s(&format!("TENANT#{t}")))
            .expression_attribute_values(":e", s("ERASED#"))
            .send()
            .await
            .unwrap()
            .items
            .unwrap();
        assert_eq!(erased.len(), 1, "one erased hash in {t}");
        let hash = erased[0]["sk"].as_s().unwrap().strip_prefix("ERASED#").unwrap().to_owned();
        assert_eq!(hash, EmailHasher::new(key).hash(&max), "hashed with {t}'s own key");
        hashes.push(hash);
    }
    assert_ne!(hashes[0], hashes[1], "the same address hashes differently in two tenants");

    let items = client.scan().table_name(&table).send().await.unwrap().items.unwrap();
    let text = format!("{items:?}").to_lowercase();
    assert!(!text.contains("max.muster"), "no item holds the address after the erasure");
}
