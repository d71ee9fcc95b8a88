//! Webhook intake: handshake, call-token check, event parsing; and the fake's delivery.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use optisync_cleverreach::webhook::{
    self, ReceiverChanged, ReceiverEventKind, WebhookError, WebhookEvent, authenticate, parse_event,
    verification_answer, verification_answer_for_query,
};
use optisync_cleverreach::{CleverReachClient, MemoryTokenStore, ReceiverUpsert, Secret};
use optisync_fakes::cleverreach::FakeCleverReach;

#[test]
fn handshake_answer_is_verify_space_secret_byte_for_byte() {
    let verify = Secret::new("damnSecretBatTokenForVerify");
    assert_eq!(
        verification_answer(&verify, Some("1029384756")).unwrap().as_bytes(),
        b"damnSecretBatTokenForVerify 1029384756"
    );
    assert_eq!(
        verification_answer_for_query(&verify, Some("secret=1029384756&x=1")).unwrap(),
        "damnSecretBatTokenForVerify 1029384756"
    );
    assert_eq!(verification_answer(&verify, None), Err(WebhookError::MissingSecret));
    assert_eq!(verification_answer(&verify, Some("")), Err(WebhookError::MissingSecret));
    assert_eq!(verification_answer_for_query(&verify, Some("other=1")), Err(WebhookError::MissingSecret));
    assert_eq!(WebhookError::MissingSecret.http_status(), 400);
}

#[test]
fn call_token_is_checked() {
    let token = Secret::new("a".repeat(64));
    assert_eq!(authenticate(&token, Some(&"a".repeat(64))), Ok(()));
    assert_eq!(authenticate(&token, Some(&"b".repeat(64))), Err(WebhookError::Unauthorized));
    assert_eq!(authenticate(&token, Some("a")), Err(WebhookError::Unauthorized));
    assert_eq!(authenticate(&token, Some("")), Err(WebhookError::Unauthorized));
    assert_eq!(authenticate(&token, None), Err(WebhookError::Unauthorized));
    assert_eq!(authenticate(&Secret::new(""), Some("")), Err(WebhookError::Unauthorized));
    assert_eq!(WebhookError::Unauthorized.http_status(), 401);
    let body = br#"{"event":"receiver.updated","condition":"1","payload":{"pool_id":"2"}}"#;
    assert_eq!(webhook::handle_event(&token, Some("wrong"), body), Err(WebhookError::Unauthorized));
    assert!(webhook::handle_event(&token, Some(&"a".repeat(64)), body).is_ok());
}

#[test]
fn each_receiver_event_kind_parses() {
    for (name, kind) in [
        ("receiver.subscribed", ReceiverEventKind::Subscribed),
        ("receiver.unsubscribed", ReceiverEventKind::Unsubscribed),
        ("receiver.created", ReceiverEventKind::Created),
        ("receiver.updated", ReceiverEventKind::Updated),
        ("receiver.deleted", ReceiverEventKind::Deleted),
    ] {
        let body = format!(r#"{{"event":"{name}","condition":"1939","payload":{{"pool_id":"4285"}}}}"#);
        let ev = parse_event(body.as_bytes()).unwrap();
        assert_eq!(
            ev,
            WebhookEvent::Receiver(ReceiverChanged {
                kind,
                group_id: "1939".into(),
                pool_id: Some("4285".into()),
                encrypted_email: None
            })
        );
        assert_eq!(kind.as_str(), name);
    }
}

#[test]
fn parsing_is_tolerant() {
    // numbers instead of strings, upper case, extra fields
    let ev =
        parse_event(br#"{"event":"Receiver.Updated","condition":1939,"payload":{"pool_id":4285,"x":1},"stamp":1}"#)
            .unwrap();
    let WebhookEvent::Receiver(r) = ev else { panic!() };
    assert_eq!((r.kind, r.group_id.as_str(), r.pool_id.as_deref()), (ReceiverEventKind::Updated, "1939", Some("4285")));
    // payload as JSON string
    let ev = parse_event(br#"{"event":"receiver.created","condition":"7","payload":"{\"pool_id\":\"9\"}"}"#).unwrap();
    assert!(matches!(ev, WebhookEvent::Receiver(ReceiverChanged { pool_id: Some(ref p), .. }) if p == "9"));
    // deleted with only an (encrypted) e-mail
    let ev = parse_event(br#"{"event":"receiver.deleted","condition":"7","payload":{"email":"ENCRYPTED=="}}"#).unwrap();
    let WebhookEvent::Receiver(r) = ev else { panic!() };
    assert_eq!(r.pool_id, None);
    assert_eq!(r.encrypted_email.as_ref().map(Secret::expose), Some("ENCRYPTED=="));
    assert!(!format!("{r:?}").contains("ENCRYPTED"));
    // other categories are acknowledged and ignored
    assert_eq!(
        parse_event(br#"{"event":"group.updated","condition":"7","payload":{"group_id":"7"}}"#).unwrap(),
        WebhookEvent::Other { event: "group.updated".into() }
    );
}

#[test]
fn malformed_bodies_are_typed_errors() {
    for body in [
        &b"not json"[..],
        b"[1,2]",
        b"{}",
        br#"{"event":""}"#,
        br#"{"event":"receiver.updated","payload":{"pool_id":"1"}}"#,
        br#"{"event":"receiver.updated","condition":"1"}"#,
        br#"{"event":"receiver.updated","condition":"1","payload":{}}"#,
    ] {
        let err = parse_event(body).unwrap_err();
        assert!(matches!(err, WebhookError::Malformed(_)), "{err:?}");
        assert_eq!(err.http_status(), 400);
    }
}

/// A tiny webhook endpoint built on the `webhook` module, as the Lambda would use it.
#[derive(Default)]
struct Endpoint {
    call_token: Mutex<Option<Secret>>,
    events: Mutex<Vec<WebhookEvent>>,
    rejected: Mutex<usize>,
}

const VERIFY: &str = "verify-token-for-tests";

async fn endpoint_handler(
    axum::extract::State(ep): axum::extract::State<Arc<Endpoint>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    if method == Method::GET {
        return match verification_answer_for_query(&Secret::new(VERIFY), uri.query()) {
            Ok(text) => (StatusCode::OK, [("content-type", "text/plain")], text).into_response(),
            Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        };
    }
    let Some(token) = ep.call_token.lock().unwrap().clone() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let header = headers.get(webhook::CALL_TOKEN_HEADER).and_then(|v| v.to_str().ok());
    match webhook::handle_event(&token, header, &body) {
        Ok(ev) => {
            ep.events.lock().unwrap().push(ev);
            StatusCode::OK.into_response()
        }
        Err(e) => {
            *ep.rejected.lock().unwrap() += 1;
            StatusCode::from_u16(e.http_status()).unwrap().into_response()
        }
    }
}

#[tokio::test]
async fn register_handshake_and_deliveries_end_to_end() {
    let fake = FakeCleverReach::start().await;
    let client = CleverReachClient::new(fake.client_config(), Arc::new(MemoryTokenStore::new()));
    client.set_tokens(fake.issue_tokens()).await;
    let group = fake.add_group("G");

    let ep = Arc::new(Endpoint::default());
    let app = axum::Router::new().fallback(endpoint_handler).with_state(ep.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/cleverreach", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // Wrong verify token: the handshake fails and nothing is registered.
    let bad = client.register_webhook(&hook_url, "receiver", &group, &Secret::new("wrong-verify-token")).await;
    assert!(bad.is_err());
    assert!(fake.webhook_registrations().is_empty());

    let reg = client.register_webhook(&hook_url, "receiver", &group, &Secret::new(VERIFY)).await.unwrap();
    assert_eq!(reg.call_token.expose().len(), 64);
    assert_eq!(format!("{:?}", reg.call_token), "<redacted>");
    *ep.call_token.lock().unwrap() = Some(reg.call_token.clone());

    client.upsert_receivers(&group, &[ReceiverUpsert::new("w@example.com")]).await.unwrap();
    client
        .upsert_receivers(&group, &[ReceiverUpsert::new("w@example.com").global_attribute("firstname", "W")])
        .await
        .unwrap();
    client.set_inactive(&group, "w@example.com").await.unwrap();
    client.set_active(&group, "w@example.com").await.unwrap();
    client.remove_from_group(&group, "w@example.com").await.unwrap();
    fake.settle_webhooks().await;

    let kinds: Vec<ReceiverEventKind> = ep
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|e| match e {
            WebhookEvent::Receiver(r) => {
                assert_eq!(r.group_id, group);
                assert!(r.pool_id.is_some());
                r.kind
            }
            other => panic!("{other:?}"),
        })
        .collect();
    use ReceiverEventKind::*;
    assert_eq!(kinds, vec![Created, Updated, Unsubscribed, Subscribed, Deleted]);
    assert!(fake.deliveries().iter().all(|d| d.status == 200));

    // A call with a wrong token is rejected with 401.
    let body = serde_json::json!({"event":"receiver.updated","condition":group,"payload":{"pool_id":"1"}});
    assert_eq!(fake.post_event(&group, body, Some("not-the-token")).await, vec![401]);
    assert_eq!(*ep.rejected.lock().unwrap(), 1);

    assert!(client.delete_webhook("receiver", &group).await.unwrap());
    assert!(fake.webhook_registrations().is_empty());
    server.abort();
}
