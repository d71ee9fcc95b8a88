//! The command feed as the connector pulls it: signed, by cursor, paged.

use chrono::{DateTime, TimeZone, Utc};
use connector_api::{Deps, MAX_BODY_BYTES, handle};
use lambda_http::{Body, Request};
use optisync_connector::signature::{SignedRequest, SigningSecret, sign_request};
use optisync_domain::*;
use optisync_ports::names::secret;
use optisync_ports::prelude::*;
use optisync_ports::{BusEvent, Commit, Inbox, InboxItem, SecretStore};
use optisync_testkit::memory::{FixedClock, MemoryBus, MemorySecrets, MemoryStore};
use std::sync::Arc;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 9, 26, 10, 0, 0).unwrap()
}

/// The signature the connector sends for a request to `target` (path and query), M1.
fn signature(secret: &str, id: &str, method: &str, target: &str, body: &[u8]) -> String {
    let (path, query) = target.split_once('?').map_or((target, None), |(p, q)| (p, Some(q)));
    let request = SignedRequest { method, path, query };
    sign_request(&SigningSecret::parse(secret).unwrap(), id, now().timestamp(), &request, body)
}

fn get(path: &str, secret: &str, id: &str) -> Request {
    let ts = now().timestamp();
    let signature = signature(secret, id, "GET", path, b"");
    lambda_http::http::Request::builder()
        .method("GET")
        .uri(path)
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(Body::Empty)
        .unwrap()
}

fn signed(method: &str, path: &str, body: &[u8], id: &str) -> Request {
    let ts = now().timestamp();
    let signature = signature(SECRET, id, method, path, body);
    lambda_http::http::Request::builder()
        .method(method)
        .uri(path)
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(Body::from(body.to_vec()))
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

struct Fixture {
    deps: Deps,
    store: Arc<MemoryStore>,
    bus: Arc<MemoryBus>,
}

async fn fixture() -> Fixture {
    let secrets = Arc::new(MemorySecrets::default());
    secrets
        .put(&secret::signing_secrets(&TenantId::new("t1")), &serde_json::to_string(&[SECRET]).unwrap())
        .await
        .unwrap();
    let store = Arc::new(MemoryStore::new());
    let mut commands: Vec<OptigemCommand> = (1..=5).map(end_command).collect();
    commands.push(OptigemCommand::ExportNewsletter {
        id: CommandId::new("export-1"),
        newsletter: NewsletterId::new("NL-7"),
    });
    store
        .commit(&TenantId::new("t1"), Commit { writes: vec![], commands, audit: vec![], ..Default::default() })
        .await
        .unwrap();
    let bus = Arc::new(MemoryBus::default());
    let deps = Deps::new(secrets, store.clone(), store.clone(), bus.clone(), Arc::new(FixedClock::new(now())));
    Fixture { deps, store, bus }
}

async fn deps() -> Deps {
    fixture().await.deps
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
    assert_eq!(seqs, vec![3, 4, 5, 6]);
    let done = json(&handle(&deps, get("/connector/t1/commands?after=6", SECRET, "m3")).await);
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

#[tokio::test]
async fn r_k2_tenants_and_command_ids_no_key_can_hold_are_not_found_and_change_nothing() {
    let f = fixture().await;
    let long = "a".repeat(65);
    for tenant in ["a%23b", "a%2Fb", "t1~preview", "..", long.as_str()] {
        let path = format!("/connector/{tenant}/commands?after=0");
        assert_eq!(handle(&f.deps, get(&path, SECRET, "m1")).await.status(), 404, "tenant {tenant}");
    }
    let done = br#"{"status":"done"}"#;
    for id in ["C%231", "C~preview", long.as_str()] {
        let path = format!("/connector/t1/commands/{id}/result");
        assert_eq!(handle(&f.deps, signed("POST", &path, done, "r1")).await.status(), 404, "command {id}");
        let page = format!("/connector/t1/snapshots/{id}/pages/1");
        assert_eq!(handle(&f.deps, signed("PUT", &page, b"{}", "p1")).await.status(), 404, "snapshot {id}");
    }
    let long_id = "r".repeat(129);
    let response = handle(&f.deps, signed("POST", "/connector/t1/commands/end-1/result", done, &long_id)).await;
    assert_eq!(response.status(), 400, "a webhook-id longer than 128 characters");
    assert!(f.bus.drain().is_empty());
    let longest = "r".repeat(128);
    let response = handle(&f.deps, signed("POST", "/connector/t1/commands/end-1/result", done, &longest)).await;
    assert_eq!(response.status(), 204, "the same result under a webhook-id of 128 characters");
}

#[tokio::test]
async fn t21_a_body_larger_than_the_cap_is_413_before_anything_is_read() {
    let f = fixture().await;
    let big = vec![b' '; MAX_BODY_BYTES + 1];
    let page = handle(&f.deps, signed("PUT", "/connector/t1/snapshots/X1/pages/1", &big, "p1")).await;
    assert_eq!(page.status(), 413);
    let result = handle(&f.deps, signed("POST", "/connector/t1/commands/C1/result", &big, "r1")).await;
    assert_eq!(result.status(), 413);
}

#[tokio::test]
async fn results_are_recorded_once_and_unknown_commands_are_404() {
    let f = fixture().await;
    let t1 = TenantId::new("t1");
    let failed = br#"{"status":"failed","reason":"assignment is locked"}"#;
    let response = handle(&f.deps, signed("POST", "/connector/t1/commands/end-2/result", failed, "r1")).await;
    assert_eq!(response.status(), 204);
    assert!(matches!(
        f.store.command_result(&t1, &CommandId::new("end-2")).await.unwrap(),
        Some(CommandResult::Failed { .. })
    ));
    let done = br#"{"status":"done"}"#;
    for id in ["r2", "r3"] {
        let response = handle(&f.deps, signed("POST", "/connector/t1/commands/end-2/result", done, id)).await;
        assert_eq!(response.status(), 204, "reporting twice is harmless");
    }
    assert_eq!(f.store.command_result(&t1, &CommandId::new("end-2")).await.unwrap(), Some(CommandResult::done()));
    let late = handle(&f.deps, signed("POST", "/connector/t1/commands/end-2/result", failed, "r4")).await;
    assert_eq!(late.status(), 204);
    assert_eq!(
        f.store.command_result(&t1, &CommandId::new("end-2")).await.unwrap(),
        Some(CommandResult::done()),
        "done is final"
    );

    let unknown = handle(&f.deps, signed("POST", "/connector/t1/commands/end-99/result", done, "r5")).await;
    assert_eq!(unknown.status(), 404);
    let malformed =
        handle(&f.deps, signed("POST", "/connector/t1/commands/end-3/result", br#"{"status":"maybe"}"#, "r6")).await;
    assert_eq!(malformed.status(), 400);
    let blank = handle(
        &f.deps,
        signed("POST", "/connector/t1/commands/end-3/result", br#"{"status":"failed","reason":" "}"#, "r7"),
    )
    .await;
    assert_eq!(blank.status(), 400);
    assert_eq!(json(&blank)["error"]["path"], "reason");
    assert_eq!(f.store.command_result(&t1, &CommandId::new("end-3")).await.unwrap(), None, "nothing recorded");
}

fn page_body(newsletter: &str, ids: &[&str], last: bool) -> Vec<u8> {
    let assignments: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| {
            serde_json::json!({
                "id": id, "newsletter": newsletter, "version": 3,
                "created_at": "2024-01-01T00:00:00Z", "changed_at": "2024-01-02T00:00:00Z",
                "email": "max.muster@example.com",
                "person": {"id": format!("P-{id}"), "first_name": "Max", "last_name": "Muster"}
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"newsletter": newsletter, "last": last, "assignments": assignments}))
        .unwrap()
}

#[tokio::test]
async fn snapshot_pages_are_kept_once_for_the_run_and_the_exports_result_wakes_it() {
    let f = fixture().await;
    let body = page_body("NL-7", &["A-1", "A-2"], false);
    for id in ["p1", "p1-retry"] {
        let response = handle(&f.deps, signed("PUT", "/connector/t1/snapshots/export-1/pages/1", &body, id)).await;
        assert_eq!(response.status(), 202);
    }
    let entry = f.store.get(&TenantId::new("t1"), "snapshot:export-1:1").await.unwrap().expect("stored");
    assert_eq!(entry.items.len(), 2);
    assert!(
        matches!(&entry.items[0], InboxItem::Input { input } if matches!(&**input, Input::AssignmentChanged { assignment } if assignment.id.as_str() == "A-1"))
    );
    assert_eq!(f.bus.drain(), vec![], "the worker is not woken: the run that asked applies the pages");
    let waiting = f.store.pending(now() + chrono::Duration::days(1), 10).await.unwrap();
    assert!(waiting.is_empty(), "the re-drive sweep leaves snapshot pages alone");
    let changed = page_body("NL-7", &["A-1"], true);
    let reused = handle(&f.deps, signed("PUT", "/connector/t1/snapshots/export-1/pages/1", &changed, "p1-other")).await;
    assert_eq!(reused.status(), 409, "page 1 again with another content");

    // The export's result wakes the first sync of the newsletter's link that waits for it, the dry run of
    // a link being set up and the reconciliation waiting for it; other links are left alone.
    let link = |id: &str, tenant: TenantId, newsletter: &str, status: LinkStatus| Link {
        id: LinkId::new(id),
        tenant,
        newsletter: NewsletterId::new(newsletter),
        esp: EspAccount { provider: Provider::Brevo, account: AccountId::new("acc") },
        list: ListId::new("1"),
        segment: None,
        settings: LinkSettings::default(),
        status,
    };
    let t1 = TenantId::new("t1");
    let preview = t1.preview();
    f.store.put_link(&link("first", t1.clone(), "NL-7", LinkStatus::Linking)).await.unwrap();
    f.store.put_link(&link("linked", t1.clone(), "NL-7", LinkStatus::Linked)).await.unwrap();
    f.store.put_link(&link("other", t1.clone(), "NL-8", LinkStatus::Linking)).await.unwrap();
    f.store.put_link(&link("dry", preview.clone(), "NL-7", LinkStatus::Linking)).await.unwrap();
    f.store.put_link(&link("reconciling", t1.clone(), "NL-7", LinkStatus::Linked)).await.unwrap();
    use optisync_app::reconcile::{Phase, Progress, RunState};
    let waiting = RunState {
        current: Some(Progress {
            id: "run-1".into(),
            kind: Default::default(),
            replan: None,
            started_at: chrono::Utc::now(),
            phase: Phase::AwaitExport,
            export: Some(CommandId::new("export-1")),
            export_at: Some(chrono::Utc::now()),
            export_problem: None,
            saved_at: None,
            stale_takeovers: 0,
            since: None,
            cursor: None,
            seen_chunks: 0,
            end_chunks: 0,
            confirmed: false,
            invocations: 1,
            counts: Default::default(),
            failures: vec![],
            warnings: vec![],
        }),
        ..Default::default()
    };
    let waiting = serde_json::to_string(&waiting).unwrap();
    f.store.save_run_state(&TenantId::new("t1"), &LinkId::new("reconciling"), &waiting, None).await.unwrap();
    let done =
        handle(&f.deps, signed("POST", "/connector/t1/commands/export-1/result", br#"{"status":"done"}"#, "r1")).await;
    assert_eq!(done.status(), 204);
    assert_eq!(
        f.bus.drain(),
        vec![
            BusEvent::ReconcileLink { tenant: t1.clone(), link: LinkId::new("first") },
            BusEvent::ReconcileLink { tenant: t1.clone(), link: LinkId::new("reconciling") },
            BusEvent::ReconcileLink { tenant: preview, link: LinkId::new("dry") },
        ]
    );
    let other =
        handle(&f.deps, signed("POST", "/connector/t1/commands/end-1/result", br#"{"status":"done"}"#, "r2")).await;
    assert_eq!(other.status(), 204);
    // R-J2: an end OPTIGEM executed goes to the worker (erasure mode acts on it); it wakes no run.
    let key = "result:end-1".to_owned();
    assert_eq!(f.bus.drain(), vec![BusEvent::InboxReady { tenant: t1.clone(), key: key.clone() }]);
    let entry = Inbox::get(f.store.as_ref(), &t1, &key).await.unwrap().expect("the confirmation is in the inbox");
    let confirmed = match &entry.items[..] {
        [InboxItem::Input { input }] => {
            matches!(&**input, Input::EndConfirmed { command, .. } if command.as_str() == "end-1")
        }
        _ => false,
    };
    assert!(confirmed, "{:?}", entry.items);
}

#[tokio::test]
async fn snapshot_pages_for_unknown_exports_or_other_newsletters_are_refused() {
    let f = fixture().await;
    let cases = [
        ("/connector/t1/snapshots/export-9/pages/1", page_body("NL-7", &["A-1"], true), 404),
        ("/connector/t1/snapshots/end-1/pages/1", page_body("NL-7", &["A-1"], true), 404),
        ("/connector/t1/snapshots/export-1/pages/1", page_body("NL-8", &["A-1"], true), 400),
        ("/connector/t1/snapshots/export-1/pages/0", page_body("NL-7", &["A-1"], true), 400),
        ("/connector/t1/snapshots/export-1/pages/x", page_body("NL-7", &["A-1"], true), 400),
    ];
    for (n, (path, body, status)) in cases.into_iter().enumerate() {
        let response = handle(&f.deps, signed("PUT", path, &body, &format!("m{n}"))).await;
        assert_eq!(response.status(), status, "{path}");
    }
    let mut mixed: serde_json::Value = serde_json::from_slice(&page_body("NL-7", &["A-1", "A-2"], true)).unwrap();
    mixed["assignments"][1]["newsletter"] = "NL-8".into();
    let response = handle(
        &f.deps,
        signed("PUT", "/connector/t1/snapshots/export-1/pages/1", &serde_json::to_vec(&mixed).unwrap(), "mx"),
    )
    .await;
    assert_eq!(response.status(), 400);
    assert_eq!(json(&response)["error"]["path"], "assignments[1].newsletter");
    assert!(f.store.pending(now() + chrono::Duration::days(1), 10).await.unwrap().is_empty(), "nothing stored");
    assert!(f.bus.drain().is_empty());
}

// M1 (R-K1, R-K2): a signed request is bound to what it does, and a webhook-id is used once per tenant.

/// A captured request sent again with another method or path and query, headers and body unchanged.
fn replayed(captured: &Request, method: &str, path: &str) -> Request {
    let mut builder = lambda_http::http::Request::builder().method(method).uri(path);
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        builder = builder.header(name, captured.headers()[name].clone());
    }
    builder.body(Body::from(captured.body().as_ref().to_vec())).unwrap()
}

#[tokio::test]
async fn m1_a_result_signed_for_one_command_is_refused_for_another_and_that_command_stays_pending() {
    let f = fixture().await;
    let t1 = TenantId::new("t1");
    let done = br#"{"status":"done"}"#;
    let captured = signed("POST", "/connector/t1/commands/end-1/result", done, "cap-1");
    let replay = handle(&f.deps, replayed(&captured, "POST", "/connector/t1/commands/end-2/result")).await;
    assert_eq!(replay.status(), 401);
    assert_eq!(json(&replay)["error"]["problem"], "no valid signature");
    assert_eq!(f.store.command_result(&t1, &CommandId::new("end-2")).await.unwrap(), None, "end-2 stays pending");
    assert_eq!(handle(&f.deps, captured).await.status(), 204, "the request as signed still passes");
    assert_eq!(f.store.command_result(&t1, &CommandId::new("end-1")).await.unwrap(), Some(CommandResult::done()));
}

#[tokio::test]
async fn m1_a_snapshot_page_replayed_as_another_page_or_another_export_is_refused_and_nothing_is_stored() {
    let f = fixture().await;
    let t1 = TenantId::new("t1");
    let export =
        OptigemCommand::ExportNewsletter { id: CommandId::new("export-2"), newsletter: NewsletterId::new("NL-7") };
    f.store
        .commit(&t1, Commit { writes: vec![], commands: vec![export], audit: vec![], ..Default::default() })
        .await
        .unwrap();
    let body = page_body("NL-7", &["A-1"], false);
    let captured = signed("PUT", "/connector/t1/snapshots/export-1/pages/1", &body, "cap-2");
    for path in ["/connector/t1/snapshots/export-1/pages/2", "/connector/t1/snapshots/export-2/pages/1"] {
        let replay = handle(&f.deps, replayed(&captured, "PUT", path)).await;
        assert_eq!(replay.status(), 401, "{path}");
        assert_eq!(json(&replay)["error"]["problem"], "no valid signature");
    }
    for key in ["snapshot:export-1:2", "snapshot:export-2:1", "snapshot:export-1:1"] {
        assert_eq!(f.store.get(&t1, key).await.unwrap(), None, "{key}: nothing stored");
    }
}

#[tokio::test]
async fn m1_a_feed_read_signed_with_limit_10_is_refused_with_limit_500_or_another_cursor() {
    let deps = deps().await;
    let captured = get("/connector/t1/commands?after=3&limit=10", SECRET, "cap-3");
    for path in [
        "/connector/t1/commands?after=3&limit=500",
        "/connector/t1/commands?after=0&limit=10",
        "/connector/t1/commands",
    ] {
        let replay = handle(&deps, replayed(&captured, "GET", path)).await;
        assert_eq!(replay.status(), 401, "{path}");
        assert_eq!(json(&replay)["error"]["problem"], "no valid signature");
    }
    assert_eq!(handle(&deps, captured).await.status(), 200, "the read as signed still passes");
}

#[tokio::test]
async fn m1_a_replayed_webhook_id_is_not_executed_again_and_another_request_under_it_is_409() {
    let f = fixture().await;
    let t1 = TenantId::new("t1");
    let locked = br#"{"status":"failed","reason":"assignment is locked"}"#;
    let captured = signed("POST", "/connector/t1/commands/end-3/result", locked, "cap-5");
    assert_eq!(handle(&f.deps, replayed(&captured, "POST", "/connector/t1/commands/end-3/result")).await.status(), 204);
    let offline = br#"{"status":"failed","reason":"database offline"}"#;
    let later = handle(&f.deps, signed("POST", "/connector/t1/commands/end-3/result", offline, "cap-6")).await;
    assert_eq!(later.status(), 204);

    // The same message again (a retry, or a replay inside the tolerance) is answered as before and
    // executes nothing: the later result stands.
    let again = handle(&f.deps, captured).await;
    assert_eq!(again.status(), 204);
    let reason = |r: Option<CommandResult>| match r {
        Some(CommandResult::Failed { reason }) => reason,
        other => panic!("{other:?}"),
    };
    assert_eq!(reason(f.store.command_result(&t1, &CommandId::new("end-3")).await.unwrap()), "database offline");

    // The same webhook-id for another request, even one signed by the connector itself, is refused.
    let reused = handle(&f.deps, signed("POST", "/connector/t1/commands/end-4/result", locked, "cap-5")).await;
    assert_eq!(reused.status(), 409);
    assert_eq!(json(&reused)["error"]["problem"], "this webhook-id was used before for a different body");
    assert_eq!(f.store.command_result(&t1, &CommandId::new("end-4")).await.unwrap(), None, "nothing recorded");

    // A page sent again under its webhook-id is a duplicate and stored once; webhook-ids are per tenant.
    let body = page_body("NL-7", &["A-1"], true);
    let page = || signed("PUT", "/connector/t1/snapshots/export-1/pages/1", &body, "cap-7");
    assert_eq!(json(&handle(&f.deps, page()).await)["accepted"], 1);
    let writes = f.store.writes();
    let again = handle(&f.deps, page()).await;
    assert_eq!((again.status().as_u16(), json(&again)["duplicate"].clone()), (202, serde_json::json!(true)));
    assert_eq!(f.store.writes(), writes, "nothing stored twice");
}

/// M8, T21: a body has to fit one DynamoDB item (400 KB) with the inbox entry's overhead, so anything
/// over 350,000 bytes is 413 before the signature is checked (a 400,001-byte page was read and signed).
#[tokio::test]
async fn m8_t21_a_body_over_350000_bytes_is_413() {
    let f = fixture().await;
    let big = vec![b' '; 350_001];
    let page = handle(&f.deps, signed("PUT", "/connector/t1/snapshots/X1/pages/1", &big, "p1")).await;
    assert_eq!(page.status(), 413);
    const { assert!(MAX_BODY_BYTES <= 350_000) };
}

/// M8, T23: a snapshot page holds at most 200 assignments (500 of about 900 bytes each exceed an item).
#[test]
fn m8_t23_a_snapshot_page_of_201_assignments_is_refused() {
    let at = Utc.with_ymd_and_hms(2024, 4, 10, 10, 0, 0).unwrap();
    let assignments: Vec<Assignment> = (0..201)
        .map(|i| {
            optisync_testkit::build::assignment(&format!("a{i}"), "Rundbrief", &format!("leser{i}@example.com"), at)
        })
        .collect();
    let body =
        serde_json::to_vec(&serde_json::json!({"newsletter": "Rundbrief", "last": true, "assignments": assignments}))
            .unwrap();
    let refused = optisync_connector::wire::parse_snapshot_page(&body).expect_err("201 assignments are too many");
    assert_eq!(refused.path, "assignments");
    let fits = serde_json::json!({"newsletter": "Rundbrief", "last": true, "assignments": &assignments[..200]});
    assert!(optisync_connector::wire::parse_snapshot_page(&serde_json::to_vec(&fits).unwrap()).is_ok());
}
