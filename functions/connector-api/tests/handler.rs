//! The command feed as the connector pulls it: signed, by cursor, paged.

use chrono::{DateTime, TimeZone, Utc};
use connector_api::{Deps, handle};
use lambda_http::{Body, Request};
use optisync_app::optigem::signing_secrets_name;
use optisync_connector::signature::{SigningSecret, sign};
use optisync_domain::*;
use optisync_ports::memory::{FixedClock, MemorySecrets, MemoryStore};
use optisync_ports::{Commit, SecretStore, StateStore};
use std::sync::Arc;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 9, 26, 10, 0, 0).unwrap()
}

fn get(path: &str, secret: &str, id: &str) -> Request {
    let ts = now().timestamp();
    let signature = sign(&SigningSecret::parse(secret).unwrap(), id, ts, b"");
    lambda_http::http::Request::builder()
        .method("GET")
        .uri(path)
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(Body::Empty)
        .unwrap()
}

fn end_command(n: u32) -> OptigemCommand {
    OptigemCommand::EndAssignment {
        id: CommandId::new(format!("end-{n}")),
        assignment: AssignmentId::new(format!("A-{n}")),
        newsletter: NewsletterId::new("NL-7"),
        end: "2024-08".parse().unwrap(),
        unsubscription: Unsubscription {
            date: "2024-09-25".parse().unwrap(),
            source: UnsubscribeSource {
                provider: Provider::Brevo,
                account: AccountId::new("b1"),
                cause: UnsubscribeCause::Unsubscribed,
            },
        },
    }
}

async fn deps() -> Deps {
    let secrets = Arc::new(MemorySecrets::default());
    secrets.put(&signing_secrets_name(&TenantId::new("t1")), &serde_json::to_string(&[SECRET]).unwrap()).await.unwrap();
    let store = Arc::new(MemoryStore::new());
    let commands = (1..=5).map(end_command).collect();
    store.commit(&TenantId::new("t1"), Commit { writes: vec![], commands }).await.unwrap();
    Deps { secrets, store, clock: Arc::new(FixedClock::new(now())) }
}

fn json(response: &lambda_http::Response<Body>) -> serde_json::Value {
    serde_json::from_slice(response.body().as_ref()).unwrap()
}

#[tokio::test]
async fn the_connector_pages_through_the_feed_by_cursor() {
    let deps = deps().await;
    let first = handle(&deps, get("/connector/t1/commands?after=0&limit=2", SECRET, "m1")).await;
    assert_eq!(first.status(), 200);
    let body = json(&first);
    assert_eq!(body["commands"].as_array().unwrap().len(), 2);
    assert_eq!(body["commands"][0]["seq"], 1);
    assert_eq!(body["commands"][0]["command"]["type"], "end_assignment");
    assert_eq!(body["commands"][0]["command"]["unsubscription"]["date"], "2024-09-25");
    let rest = json(&handle(&deps, get("/connector/t1/commands?after=2", SECRET, "m2")).await);
    let seqs: Vec<u64> = rest["commands"].as_array().unwrap().iter().map(|c| c["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![3, 4, 5]);
    let done = json(&handle(&deps, get("/connector/t1/commands?after=5", SECRET, "m3")).await);
    assert!(done["commands"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn unsigned_or_malformed_requests_are_refused() {
    let deps = deps().await;
    let wrong = "whsec_dGhpcyBpcyBhbm90aGVyIGtleSEhIQ==";
    assert_eq!(handle(&deps, get("/connector/t1/commands?after=0", wrong, "m1")).await.status(), 401);
    assert_eq!(
        handle(&deps, get("/connector/t2/commands?after=0", SECRET, "m1")).await.status(),
        401,
        "another tenant's secret"
    );
    let missing = handle(&deps, get("/connector/t1/commands", SECRET, "m1")).await;
    assert_eq!(missing.status(), 400);
    assert_eq!(json(&missing)["error"]["path"], "after");
    assert_eq!(handle(&deps, get("/connector/t1/commands?after=0&limit=501", SECRET, "m1")).await.status(), 400);
    assert_eq!(handle(&deps, get("/connector/t1/unknown", SECRET, "m1")).await.status(), 404);
}
