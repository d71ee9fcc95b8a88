//! The OPTIGEM intake's refusals as the hook answers them: the HTTP status of each, with nothing stored.

use chrono::{DateTime, TimeZone, Utc};
use optisync_app::intake::{Accepted, Hook, IntakeError};
use optisync_app::optigem::OptigemIngest;
use optisync_connector::signature::{SignedHeaders, SigningSecret, sign};
use optisync_domain::TenantId;
use optisync_lambda::intake::{Sender, status as http_status};
use optisync_ports::names::secret;
use optisync_ports::{Inbox, SecretStore, StoreError};
use optisync_testkit::memory::{MemorySecrets, MemoryStore};
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

/// The request as the hook hands it to the intake.
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
