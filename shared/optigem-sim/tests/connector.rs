//! The connector against a small server that checks every signature for real: events in batches, the
//! same message id on a retry after 429, the feed by cursor, results and snapshot pages.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use optisync_connector::signature::{SignedHeaders, SigningSecret, verify};
use optisync_domain::*;
use optisync_optigem_sim::{AssignmentDraft, Connector, ConnectorError, PersonDraft, SimOptigem};
use std::sync::{Arc, Mutex};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Default)]
struct Seen {
    /// (method, path and query, webhook-id, body)
    requests: Vec<(String, String, String, Vec<u8>)>,
    throttle_next: bool,
    feed: Vec<OptigemCommand>,
}

type Shared = Arc<Mutex<Seen>>;

async fn serve(State(seen): State<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1 << 24).await.unwrap();
    let headers: &HeaderMap = &parts.headers;
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let signed =
        SignedHeaders { id: h("webhook-id"), timestamp: h("webhook-timestamp"), signature: h("webhook-signature") };
    let secrets = [SigningSecret::parse(SECRET).unwrap()];
    if verify(&secrets, signed, &body, chrono::Utc::now().timestamp()).is_err() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut seen = seen.lock().unwrap();
    let target = parts.uri.path_and_query().unwrap().to_string();
    seen.requests.push((parts.method.to_string(), target.clone(), h("webhook-id").unwrap().to_owned(), body.to_vec()));
    if std::mem::take(&mut seen.throttle_next) {
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response();
    }
    if target.contains("/commands?") {
        let after: u64 = target.split("after=").nth(1).unwrap().split('&').next().unwrap().parse().unwrap();
        let commands: Vec<serde_json::Value> = seen
            .feed
            .iter()
            .enumerate()
            .map(|(n, c)| (n as u64 + 1, c))
            .filter(|(seq, _)| *seq > after)
            .map(|(seq, c)| serde_json::json!({"seq": seq, "command": c}))
            .collect();
        return axum::Json(serde_json::json!({ "commands": commands })).into_response();
    }
    if target.ends_with("/bad") {
        return (StatusCode::BAD_REQUEST, r#"{"error":{"path":"events","problem":"x"}}"#).into_response();
    }
    StatusCode::ACCEPTED.into_response()
}

async fn start() -> (String, Shared) {
    let seen: Shared = Arc::default();
    let app = Router::new().fallback(serve).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

fn connector(base: &str, secret: &str) -> Connector {
    let mut c = Connector::new(base, TenantId::new("t1"), SigningSecret::parse(secret).unwrap());
    c.max_wait = std::time::Duration::from_millis(100);
    c
}

#[tokio::test]
async fn events_are_signed_batched_and_retried_with_the_same_message_id() {
    let (base, seen) = start().await;
    let sim = SimOptigem::new(chrono::Utc::now());
    let p = sim.add_person(PersonDraft { emails: vec![("max@example.com".into(), 1)], ..Default::default() });
    for _ in 0..250 {
        sim.add_assignment(&p, &NewsletterId::new("NL-1"), AssignmentDraft::default());
    }
    seen.lock().unwrap().throttle_next = true;
    assert_eq!(connector(&base, SECRET).push_events(&sim).await.unwrap(), 250);
    let requests = seen.lock().unwrap().requests.clone();
    assert_eq!(requests.len(), 3, "two batches, the first one sent twice");
    assert_eq!(requests[0].2, requests[1].2, "a retry keeps the webhook-id");
    assert_ne!(requests[1].2, requests[2].2, "a new message gets a new id");
    let sizes: Vec<usize> = requests[1..]
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.3).unwrap()["events"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![200, 50]);
    let wrong = connector(&base, "whsec_dGhpcyBpcyBhbm90aGVyIGtleSEhIQ==");
    sim.update_person(&p, |p| p.deletion_marked = true);
    assert!(matches!(wrong.push_events(&sim).await, Err(ConnectorError::Refused { status: 401, .. })));
}

#[tokio::test]
async fn commands_are_executed_reported_and_exports_uploaded_by_cursor() {
    let (base, seen) = start().await;
    let sim = SimOptigem::new(chrono::Utc::now());
    let p = sim.add_person(PersonDraft { last_name: Some("Muster".into()), ..Default::default() });
    let a = sim.add_assignment(&p, &NewsletterId::new("NL-1"), AssignmentDraft::default());
    sim.take_events();
    seen.lock().unwrap().feed = vec![
        OptigemCommand::EndAssignment {
            id: CommandId::new("end-1"),
            assignment: a.clone(),
            newsletter: NewsletterId::new("NL-1"),
            end: "2024-08".parse().unwrap(),
            unsubscription: Unsubscription {
                date: "2024-09-25".parse().unwrap(),
                source: UnsubscribeSource {
                    provider: Provider::Brevo,
                    account: AccountId::new("b"),
                    cause: UnsubscribeCause::Unsubscribed,
                },
            },
        },
        OptigemCommand::ExportNewsletter { id: CommandId::new("export-1"), newsletter: NewsletterId::new("NL-1") },
    ];
    let c = connector(&base, SECRET);
    assert_eq!(c.poll_commands(&sim).await.unwrap(), 2);
    assert_eq!(c.cursor(), 2);
    assert_eq!(c.poll_commands(&sim).await.unwrap(), 0, "nothing new after the cursor");
    let targets: Vec<(String, String)> =
        seen.lock().unwrap().requests.iter().map(|r| (r.0.clone(), r.1.clone())).collect();
    assert!(targets.contains(&("POST".into(), "/connector/t1/commands/end-1/result".into())));
    assert!(targets.contains(&("PUT".into(), "/connector/t1/snapshots/export-1/pages/1".into())));
    assert_eq!(sim.assignment(&a).unwrap().end, Some("2024-08".parse().unwrap()));
    assert_eq!(sim.take_events().len(), 1, "the end is sent back as a change");
}
