//! hook-optigem's use case and the worker: signed batches into the inbox, the inbox through the engine.
//! (The HTTP status of each refusal is asserted in `functions/hook-optigem/tests/intake.rs`.)

use chrono::{DateTime, TimeZone, Utc};
use optisync_app::Engine;
use optisync_app::inbox::{process_inbox_entry, redrive_pending};
use optisync_app::intake::{Accepted, Hook, IntakeError};
use optisync_app::optigem::OptigemIngest;
use optisync_connector::signature::{SignedHeaders, SigningSecret, sign};
use optisync_domain::*;
use optisync_lambda::intake::{Sender, status as http_status};
use optisync_ports::names::secret;
use optisync_ports::prelude::*;
use optisync_ports::{Inbox, SecretStore, StoreError};
use optisync_testkit::memory::{FixedClock, MemoryEsp, MemoryReader, MemorySecrets, MemoryStore};
use std::sync::Arc;

const OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NEW: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 9, 3, 10, 0, 0).unwrap()
}

fn tenant() -> TenantId {
    TenantId::new("t1")
}

fn body(version: u64, mail: &str) -> String {
    format!(
        r#"{{"events":[{{"type":"assignment.changed","assignment":{{"id":"A-1","newsletter":"NL-7","version":{version},
        "created_at":"2024-01-10T09:00:00Z","changed_at":"2024-09-01T08:00:00Z",
        "person":{{"id":"P-1","first_name":"Max","emails":[{{"email":"{mail}","priority":1}}]}}}}}}]}}"#
    )
}

struct Signed {
    id: String,
    ts: String,
    sig: String,
}

fn signed(secret: &str, id: &str, at: DateTime<Utc>, body: &str) -> Signed {
    let secret = SigningSecret::parse(secret).unwrap();
    Signed { id: id.into(), ts: at.timestamp().to_string(), sig: sign(&secret, id, at.timestamp(), body.as_bytes()) }
}

impl Signed {
    fn headers(&self) -> SignedHeaders<'_> {
        SignedHeaders { id: Some(&self.id), timestamp: Some(&self.ts), signature: Some(&self.sig) }
    }
}

/// The request as hook-optigem hands it to the intake.
async fn accept(
    ingest: &OptigemIngest,
    tenant: &TenantId,
    headers: SignedHeaders<'_>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Accepted, IntakeError> {
    let header = move |name: &str| match name {
        "webhook-id" => headers.id,
        "webhook-timestamp" => headers.timestamp,
        "webhook-signature" => headers.signature,
        _ => None,
    };
    ingest.accept(&Hook { tenant, account: None, header: &header, body, now }).await
}

async fn setup() -> (OptigemIngest, Arc<MemoryStore>) {
    let secrets = Arc::new(MemorySecrets::default());
    secrets.put(&secret::signing_secrets(&tenant()), &serde_json::to_string(&[OLD, NEW]).unwrap()).await.unwrap();
    let store = Arc::new(MemoryStore::new());
    (OptigemIngest::optigem(secrets, store.clone()), store)
}

async fn pending(store: &MemoryStore) -> usize {
    store.pending(now() + chrono::Duration::days(1), 100).await.unwrap().len()
}

#[tokio::test]
async fn a_signed_batch_is_stored_once_and_a_replay_is_a_duplicate() {
    let (ingest, store) = setup().await;
    let b = body(1, "max@example.com");
    let s = signed(OLD, "msg_1", now(), &b);
    assert_eq!(
        accept(&ingest, &tenant(), s.headers(), b.as_bytes(), now()).await.unwrap(),
        Accepted::Stored { events: 1, key: "optigem:msg_1".into() }
    );
    assert_eq!(accept(&ingest, &tenant(), s.headers(), b.as_bytes(), now()).await.unwrap(), Accepted::Duplicate);
    // Signed with the new secret of the rotation: accepted too.
    let s2 = signed(NEW, "msg_2", now(), &b);
    assert_eq!(
        accept(&ingest, &tenant(), s2.headers(), b.as_bytes(), now()).await.unwrap(),
        Accepted::Stored { events: 1, key: "optigem:msg_2".into() }
    );
    assert_eq!(pending(&store).await, 2);
}

#[tokio::test]
async fn the_worker_applies_an_inbox_entry_once_and_marks_it_done() {
    let (ingest, store) = setup().await;
    let link = Link {
        id: LinkId::new("l1"),
        tenant: tenant(),
        newsletter: NewsletterId::new("NL-7"),
        esp: EspAccount { provider: Provider::CleverReach, account: AccountId::new("acc") },
        list: ListId::new("g1"),
        segment: None,
        settings: LinkSettings::default(),
        status: LinkStatus::Linked,
    };
    store.put_link(&link).await.unwrap();
    let esp = Arc::new(MemoryEsp::new());
    let engine = Engine::new(store.clone(), esp.clone(), Arc::new(FixedClock::new(now())));
    let b = body(1, "max@example.com");
    accept(&ingest, &tenant(), signed(OLD, "msg_1", now(), &b).headers(), b.as_bytes(), now()).await.unwrap();
    let key = store.pending(now() + chrono::Duration::days(1), 10).await.unwrap()[0].1.clone();
    assert_eq!(process_inbox_entry(&engine, store.as_ref(), &MemoryReader::new(), &tenant(), &key).await.unwrap(), 1);
    assert_eq!(esp.receiving(&link.esp, &link.list), ["max@example.com".to_owned()].into());
    assert_eq!(pending(&store).await, 0);
    let calls = esp.mutating_calls();
    // Delivered again (at least once): no further effect.
    process_inbox_entry(&engine, store.as_ref(), &MemoryReader::new(), &tenant(), &key).await.unwrap();
    assert_eq!(esp.mutating_calls(), calls);
}

#[tokio::test]
async fn entries_left_unprocessed_are_redriven_until_the_worker_marks_them_done() {
    let (ingest, store) = setup().await;
    let bus = optisync_testkit::memory::MemoryBus::default();
    let b = body(1, "max@example.com");
    accept(&ingest, &tenant(), signed(OLD, "msg_1", now(), &b).headers(), b.as_bytes(), now()).await.unwrap();
    let later = now() + chrono::Duration::minutes(10);
    // Not yet old enough: the worker may still be on it.
    assert_eq!(redrive_pending(store.as_ref(), &bus, now(), 100).await.unwrap(), 0);
    assert_eq!(redrive_pending(store.as_ref(), &bus, later, 100).await.unwrap(), 1);
    let key = store.pending(later, 10).await.unwrap()[0].1.clone();
    assert_eq!(bus.drain(), vec![optisync_ports::BusEvent::InboxReady { tenant: tenant(), key: key.clone() }]);
    let engine = Engine::new(store.clone(), Arc::new(MemoryEsp::new()), Arc::new(FixedClock::new(now())));
    process_inbox_entry(&engine, store.as_ref(), &MemoryReader::new(), &tenant(), &key).await.unwrap();
    assert_eq!(redrive_pending(store.as_ref(), &bus, later, 100).await.unwrap(), 0, "done entries stay put");
}

#[tokio::test]
async fn a_reread_item_applies_what_the_esp_shows_now() {
    let store = Arc::new(MemoryStore::new());
    let link = Link {
        id: LinkId::new("l1"),
        tenant: tenant(),
        newsletter: NewsletterId::new("NL-7"),
        esp: EspAccount { provider: Provider::CleverReach, account: AccountId::new("acc") },
        list: ListId::new("g1"),
        segment: None,
        settings: LinkSettings::default(),
        status: LinkStatus::Linked,
    };
    store.put_link(&link).await.unwrap();
    let reader = MemoryReader::new();
    let erika = Email::parse("erika@example.com").unwrap();
    reader.answer(
        link.list.clone(),
        "4285",
        vec![EspEvent {
            esp: link.esp.clone(),
            list: Some(link.list.clone()),
            email: erika.clone(),
            at: now(),
            what: EspEventKind::Signup { signup: Signup::default() },
        }],
    );
    let reread = |receiver: &str| optisync_ports::InboxItem::Reread {
        reread: optisync_ports::Reread {
            esp: link.esp.clone(),
            list: link.list.clone(),
            receiver: receiver.into(),
            event: "receiver.subscribed".into(),
            received_at: now(),
        },
    };
    let entry = optisync_ports::InboxEntry {
        tenant: tenant(),
        key: "cleverreach:acc:x".into(),
        fingerprint: "x".into(),
        items: vec![reread("4285"), reread("gone")],
        received_at: now(),
    };
    store.put(&entry).await.unwrap();
    let engine = Engine::new(store.clone(), Arc::new(MemoryEsp::new()), Arc::new(FixedClock::new(now())));
    let applied = process_inbox_entry(&engine, store.as_ref(), &reader, &tenant(), &entry.key).await.unwrap();
    assert_eq!(applied, 1, "the receiver that is gone yields nothing");
    let loaded =
        store.load(&link, &optisync_ports::Slice { assignments: vec![], emails: vec![erika.clone()] }).await.unwrap();
    assert_eq!(loaded.view.approvals[&erika].status, ApprovalStatus::Pending, "the signup waits for approval");
}

// The refusals as the hooks answer them (the status mapping lives at the edge, `optisync_lambda::intake`).

#[tokio::test]
async fn bad_input_is_refused_with_its_status_and_stores_nothing() {
    let (ingest, store) = setup().await;
    let b = body(1, "max@example.com");
    let other = "whsec_dGhpcyBpcyBhbm90aGVyIGtleSEhIQ==";
    let cases: Vec<(Signed, String, DateTime<Utc>, u16)> = vec![
        (signed(other, "m1", now(), &b), b.clone(), now(), 401),
        (signed(OLD, "m2", now() - chrono::Duration::minutes(6), &b), b.clone(), now(), 401),
        (signed(OLD, "m3", now(), &b), b.replace("Max", "Moritz"), now(), 401),
        (signed(OLD, "m4", now(), "{\"events\":[]}"), "{\"events\":[]}".into(), now(), 400),
        (signed(OLD, "m5", now(), &body(1, "max.muster at example")), body(1, "max.muster at example"), now(), 400),
    ];
    for (s, payload, at, status) in cases {
        let err = accept(&ingest, &tenant(), s.headers(), payload.as_bytes(), at).await.unwrap_err();
        assert_eq!(http_status(&err, Sender::Connector), status, "{err}");
        assert!(!err.to_string().contains("muster"), "values are not echoed: {err}");
    }
    let (nobody, s6) = (TenantId::new("nobody"), signed(OLD, "m6", now(), &b));
    let unknown = accept(&ingest, &nobody, s6.headers(), b.as_bytes(), now()).await;
    assert!(matches!(unknown, Err(IntakeError::UnknownTenant)));
    assert_eq!(pending(&store).await, 0, "nothing stored");
    // The same message id with another body is refused.
    let s = signed(OLD, "m7", now(), &b);
    accept(&ingest, &tenant(), s.headers(), b.as_bytes(), now()).await.unwrap();
    let b2 = body(2, "max@example.com");
    let s2 = signed(OLD, "m7", now(), &b2);
    let reused = accept(&ingest, &tenant(), s2.headers(), b2.as_bytes(), now()).await.unwrap_err();
    assert_eq!(http_status(&reused, Sender::Connector), 409);
}

#[tokio::test]
async fn a_transient_store_fault_answers_429_so_the_sender_retries() {
    let secrets = Arc::new(MemorySecrets::default());
    secrets.put(&secret::signing_secrets(&tenant()), &serde_json::to_string(&[OLD]).unwrap()).await.unwrap();
    let store = Arc::new(MemoryStore::new());
    store.fail_next_inbox_put(StoreError::Transient("throttled".into()));
    let ingest = OptigemIngest::optigem(secrets, store);
    let b = body(1, "max@example.com");
    let err =
        accept(&ingest, &tenant(), signed(OLD, "m1", now(), &b).headers(), b.as_bytes(), now()).await.unwrap_err();
    assert_eq!(http_status(&err, Sender::Connector), 429);
}
