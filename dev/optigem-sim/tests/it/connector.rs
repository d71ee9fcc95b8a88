//! The connector against a small optisync stand-in that checks every signature for real: events in
//! batches, the same message id on a retry after 429, refusals, the feed by cursor and page by page,
//! results and snapshot pages (stored once; the same page number with other content is a conflict).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use optisync_connector::signature::{SignedHeaders, SignedRequest, SigningSecret, verify, verify_request};
use optisync_connector::wire::{ChangeEvent, SnapshotPage, parse_batch, parse_result, parse_snapshot_page};
use optisync_domain::*;
use optisync_optigem_sim::{AssignmentDraft, Connector, ConnectorError, PersonDraft, SimOptigem};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One request that passed the signature check.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    /// Path and query.
    target: String,
    id: String,
    body: Vec<u8>,
    at: Instant,
}

#[derive(Default)]
struct Fake {
    requests: Vec<Seen>,
    /// Requests with a bad signature (answered 401).
    rejected: usize,
    /// Answer this many next requests 429 with `Retry-After: 1`.
    throttle: usize,
    /// Answer every request so.
    always: Option<(StatusCode, String)>,
    /// Answer the next result for this command so, once.
    refuse_result_of: Option<(String, StatusCode)>,
    feed: Vec<OptigemCommand>,
    events: Vec<ChangeEvent>,
    results: Vec<(String, CommandResult)>,
    /// Stored pages by (snapshot, page).
    pages: BTreeMap<(String, u32), Vec<u8>>,
    duplicate_pages: usize,
}

type Shared = Arc<Mutex<Fake>>;

fn json_error(status: StatusCode, path: &str, problem: &str) -> Response {
    (status, axum::Json(serde_json::json!({"error": {"path": path, "problem": problem}}))).into_response()
}

async fn optisync(State(fake): State<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1 << 24).await.unwrap();
    let h = |n: &str| parts.headers.get(n).and_then(|v| v.to_str().ok());
    let signed =
        SignedHeaders { id: h("webhook-id"), timestamp: h("webhook-timestamp"), signature: h("webhook-signature") };
    let mut fake = fake.lock().unwrap();
    let secrets = [SigningSecret::parse(SECRET).unwrap()];
    let now = chrono::Utc::now().timestamp();
    // Change events are plain Standard Webhooks; connector-api requests sign the method, path and query (M1).
    let verified = if parts.uri.path().ends_with("/events") {
        verify(&secrets, signed, &body, now)
    } else {
        let request = SignedRequest { method: parts.method.as_str(), path: parts.uri.path(), query: parts.uri.query() };
        verify_request(&secrets, signed, &request, &body, now)
    };
    if verified.is_err() {
        fake.rejected += 1;
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let target = parts.uri.path_and_query().unwrap().to_string();
    fake.requests.push(Seen {
        method: parts.method.clone(),
        target: target.clone(),
        id: h("webhook-id").unwrap().to_owned(),
        body: body.to_vec(),
        at: Instant::now(),
    });
    if fake.throttle > 0 {
        fake.throttle -= 1;
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response();
    }
    if let Some((status, body)) = &fake.always {
        return (*status, body.clone()).into_response();
    }
    let segments: Vec<&str> = parts.uri.path().trim_start_matches('/').split('/').collect();
    match (&parts.method, &segments[..]) {
        (&Method::POST, ["connector", "t1", "events"]) => match parse_batch(&body) {
            Ok(batch) => {
                let accepted = batch.events.len();
                fake.events.extend(batch.events);
                (StatusCode::ACCEPTED, axum::Json(serde_json::json!({ "accepted": accepted }))).into_response()
            }
            Err(e) => json_error(StatusCode::BAD_REQUEST, &e.path, &e.problem),
        },
        (&Method::GET, ["connector", "t1", "commands"]) => {
            assert!(body.is_empty(), "a GET has no body");
            let query: BTreeMap<String, String> = parts
                .uri
                .query()
                .unwrap_or_default()
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            let after: u64 = query["after"].parse().unwrap();
            let limit: usize = query["limit"].parse().unwrap();
            let commands: Vec<serde_json::Value> = (fake.feed.iter().enumerate())
                .map(|(n, c)| (n as u64 + 1, c))
                .filter(|(seq, _)| *seq > after)
                .take(limit)
                .map(|(seq, c)| serde_json::json!({"seq": seq, "command": c}))
                .collect();
            axum::Json(serde_json::json!({ "commands": commands })).into_response()
        }
        (&Method::POST, ["connector", "t1", "commands", id, "result"]) => {
            if !fake.feed.iter().any(|c| c.id().as_str() == *id) {
                return json_error(StatusCode::NOT_FOUND, "command", "no such command");
            }
            if let Some((refused, status)) = fake.refuse_result_of.take() {
                if refused == *id {
                    return json_error(status, "reason", "refused once by the test");
                }
                fake.refuse_result_of = Some((refused, status));
            }
            match parse_result(&body) {
                Ok(result) => {
                    fake.results.push(((*id).to_owned(), result));
                    StatusCode::NO_CONTENT.into_response()
                }
                Err(e) => json_error(StatusCode::BAD_REQUEST, &e.path, &e.problem),
            }
        }
        (&Method::PUT, ["connector", "t1", "snapshots", id, "pages", n]) => {
            let is_export = fake
                .feed
                .iter()
                .any(|c| matches!(c, OptigemCommand::ExportNewsletter { id: x, .. } if x.as_str() == *id));
            if !is_export {
                return json_error(StatusCode::NOT_FOUND, "snapshot", "no such snapshot");
            }
            if let Err(e) = parse_snapshot_page(&body) {
                return json_error(StatusCode::BAD_REQUEST, &e.path, &e.problem);
            }
            let key = ((*id).to_owned(), n.parse().unwrap());
            match fake.pages.get(&key) {
                Some(stored) if stored[..] == body[..] => {
                    fake.duplicate_pages += 1;
                    StatusCode::ACCEPTED.into_response()
                }
                Some(_) => StatusCode::CONFLICT.into_response(),
                None => {
                    fake.pages.insert(key, body.to_vec());
                    StatusCode::ACCEPTED.into_response()
                }
            }
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn start() -> (String, Shared) {
    let fake: Shared = Arc::default();
    let app = Router::new().fallback(optisync).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, fake)
}

fn connector(base: &str, secret: &str) -> Connector {
    Connector::new(base, TenantId::new("t1"), SigningSecret::parse(secret).unwrap())
        .with_max_wait(Duration::from_millis(100))
}

fn requests(fake: &Shared) -> Vec<Seen> {
    fake.lock().unwrap().requests.clone()
}

fn nl(id: &str) -> NewsletterId {
    NewsletterId::new(id)
}

fn max(sim: &SimOptigem) -> PersonId {
    sim.add_person(PersonDraft {
        first_name: Some("Max".into()),
        last_name: Some("Muster".into()),
        emails: vec![("max@example.com".into(), 1)],
        ..Default::default()
    })
}

fn end_command(id: &str, assignment: &AssignmentId) -> OptigemCommand {
    OptigemCommand::EndAssignment {
        id: CommandId::new(id),
        assignment: assignment.clone(),
        newsletter: nl("NL-1"),
        end: "2024-08".parse().unwrap(),
        unsubscription: Unsubscription {
            date: "2024-09-25".parse().unwrap(),
            source: UnsubscribeSource {
                provider: Provider::Brevo,
                account: AccountId::new("b"),
                cause: UnsubscribeCause::Unsubscribed,
            },
        },
    }
}

fn match_command(id: &str) -> OptigemCommand {
    OptigemCommand::MatchPersons {
        id: CommandId::new(id),
        link: LinkId::new("L-1"),
        email: Email::parse("max@example.com").unwrap(),
        first_name: None,
        last_name: Some(PersonalText::new("Muster")),
    }
}

fn sim_with(assignments: usize) -> (SimOptigem, PersonId, Vec<AssignmentId>) {
    let sim = SimOptigem::new(chrono::Utc::now());
    let p = max(&sim);
    let ids = (0..assignments).map(|_| sim.add_assignment(&p, &nl("NL-1"), AssignmentDraft::default())).collect();
    (sim, p, ids)
}

#[tokio::test]
async fn events_are_signed_batched_and_retried_with_the_same_message_id() {
    let (base, fake) = start().await;
    let (sim, _, _) = sim_with(250);
    let expected: Vec<ChangeEvent> = {
        let events = sim.take_events();
        sim.return_events(events.clone());
        events
    };
    fake.lock().unwrap().throttle = 1;
    let started = Instant::now();
    assert_eq!(connector(&base, SECRET).push_events(&sim).await.unwrap(), 250);
    assert!(started.elapsed() < Duration::from_millis(900), "Retry-After: 1 is capped by max_wait (100 ms)");
    assert_eq!(sim.pending_events(), 0);

    let seen = requests(&fake);
    assert_eq!(seen.len(), 3, "two batches, the first one sent twice");
    assert_eq!(seen[0].id, seen[1].id, "a retry keeps the webhook-id");
    assert_eq!(seen[0].body, seen[1].body, "a retry is the same message");
    assert_ne!(seen[1].id, seen[2].id, "a new message gets a new id");
    assert!(seen.iter().all(|r| r.method == Method::POST && r.target == "/connector/t1/events"));
    let sizes: Vec<usize> = seen[1..]
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["events"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![200, 50]);
    assert_eq!(fake.lock().unwrap().events, expected, "every event once, oldest first");
}

#[tokio::test]
async fn retry_after_is_honoured_below_the_cap() {
    let (base, fake) = start().await;
    let (sim, _, _) = sim_with(1);
    let events = sim.take_events();
    fake.lock().unwrap().throttle = 1;
    let c = Connector::new(&base, TenantId::new("t1"), SigningSecret::parse(SECRET).unwrap());
    assert_eq!(c.max_wait, Duration::from_secs(2), "the default cap");
    assert_eq!(c.send_events(&events, "msg-fixed").await.unwrap(), StatusCode::ACCEPTED);
    let seen = requests(&fake);
    assert_eq!(seen.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), vec!["msg-fixed", "msg-fixed"]);
    let waited = seen[1].at - seen[0].at;
    assert!(waited >= Duration::from_millis(950) && waited < Duration::from_millis(1900), "{waited:?}");

    // The same message delivered again keeps its id, as the caller chose it.
    c.send_events(&events, "msg-fixed").await.unwrap();
    assert_eq!(requests(&fake)[2].id, "msg-fixed");
}

#[tokio::test]
async fn refusals_name_the_status_and_the_error_and_are_not_retried() {
    let (base, fake) = start().await;
    let (sim, p, _) = sim_with(3);
    let error = r#"{"error":{"path":"events[0].assignment.email","problem":"e-mail address is not valid"}}"#;
    fake.lock().unwrap().always = Some((StatusCode::BAD_REQUEST, error.to_owned()));
    let err = connector(&base, SECRET).push_events(&sim).await.unwrap_err();
    let ConnectorError::Refused { status, ref body, ref path, ref method } = err else { panic!("{err:?}") };
    assert_eq!((status, path.as_str(), method.as_str()), (400, "/events", "POST"));
    assert!(body.contains("events[0].assignment.email") && err.to_string().contains("400"), "{err}");
    assert_eq!(requests(&fake).len(), 1, "a 400 is not retried");
    assert_eq!(sim.pending_events(), 3, "events not accepted go back to the outbox");

    fake.lock().unwrap().always = None;
    let wrong = connector(&base, "whsec_dGhpcyBpcyBhbm90aGVyIGtleSEhIQ==");
    sim.update_person(&p, |p| p.deletion_marked = true);
    assert!(matches!(wrong.push_events(&sim).await, Err(ConnectorError::Refused { status: 401, .. })));
    assert_eq!(fake.lock().unwrap().rejected, 1, "the stand-in refused the signature");
    assert!(matches!(wrong.poll_commands(&sim).await, Err(ConnectorError::Refused { status: 401, .. })));
    assert_eq!(sim.pending_events(), 6);
    assert_eq!(connector(&base, SECRET).push_events(&sim).await.unwrap(), 6, "the right secret gets them through");
}

#[tokio::test]
async fn server_and_network_errors_are_retried_with_the_same_id_until_the_attempts_run_out() {
    let (base, fake) = start().await;
    let (sim, _, _) = sim_with(2);
    fake.lock().unwrap().always = Some((StatusCode::SERVICE_UNAVAILABLE, String::new()));
    let c = connector(&base, SECRET).with_attempts(3).with_max_wait(Duration::from_millis(10));
    let err = c.push_events(&sim).await.unwrap_err();
    assert!(matches!(&err, ConnectorError::Exhausted { last, .. } if last == "503"), "{err:?}");
    let seen = requests(&fake);
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|r| r.id == seen[0].id));
    assert_eq!(sim.pending_events(), 2);

    // Nobody listens on a port just freed.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let c = connector(&closed, SECRET).with_attempts(3).with_max_wait(Duration::from_millis(10));
    let err = c.push_events(&sim).await.unwrap_err();
    assert!(matches!(&err, ConnectorError::Exhausted { last, .. } if last == "connection error"), "{err:?}");
    assert!(matches!(c.poll_commands(&sim).await, Err(ConnectorError::Exhausted { .. })));
    assert_eq!((sim.pending_events(), c.cursor()), (2, 0));
}

#[tokio::test]
async fn commands_are_executed_reported_and_exports_uploaded_by_cursor() {
    let (base, fake) = start().await;
    let (sim, _, ids) = sim_with(4);
    sim.take_events();
    let create = OptigemCommand::CreateAssignment {
        id: CommandId::new("create-1"),
        newsletter: nl("NL-1"),
        person: PersonChoice::New { first_name: Some(PersonalText::new("Erika")), last_name: None },
        email: Email::parse("erika@example.com").unwrap(),
        email_target: EmailTarget::Assignment,
        consent: ConsentEvidence::default(),
    };
    let feed = vec![
        end_command("end-1", &ids[0]),
        create,
        match_command("match-1"),
        end_command("end-404", &AssignmentId::new("A-404")),
        OptigemCommand::ExportNewsletter { id: CommandId::new("export-1"), newsletter: nl("NL-1") },
    ];
    fake.lock().unwrap().feed = feed.clone();
    let c = connector(&base, SECRET).with_page_size(2);
    assert_eq!(c.poll_commands(&sim).await.unwrap(), 5);
    assert_eq!(c.cursor(), 5);
    assert_eq!(c.poll_commands(&sim).await.unwrap(), 0, "nothing new after the cursor");

    let seen = requests(&fake);
    let targets: Vec<String> = seen.iter().map(|r| format!("{} {}", r.method, r.target)).collect();
    assert_eq!(
        targets,
        vec![
            "GET /connector/t1/commands?after=0&limit=100",
            "POST /connector/t1/commands/end-1/result",
            "POST /connector/t1/commands/create-1/result",
            "POST /connector/t1/commands/match-1/result",
            "POST /connector/t1/commands/end-404/result",
            "PUT /connector/t1/snapshots/export-1/pages/1",
            "PUT /connector/t1/snapshots/export-1/pages/2",
            "PUT /connector/t1/snapshots/export-1/pages/3",
            "POST /connector/t1/commands/export-1/result",
            "GET /connector/t1/commands?after=5&limit=100",
            "GET /connector/t1/commands?after=5&limit=100",
        ],
        "in feed order; an export's pages before its result"
    );
    let mut ids_used: Vec<&str> = seen.iter().map(|r| r.id.as_str()).collect();
    ids_used.sort_unstable();
    ids_used.dedup();
    assert_eq!(ids_used.len(), seen.len(), "a fresh webhook-id per message");

    let results = fake.lock().unwrap().results.clone();
    let executed: Vec<(String, CommandResult)> =
        sim.executed().into_iter().map(|(id, r)| (id.as_str().to_owned(), r)).collect();
    assert_eq!(results, executed, "each result reported as executed");
    assert_eq!(results[3].1, CommandResult::Failed { reason: "assignment not found".into() });
    let CommandResult::Done { assignment: Some(created), .. } = &results[1].1 else { panic!("{results:?}") };
    let CommandResult::Done { suggestions, .. } = &results[2].1 else { panic!() };
    assert_eq!(suggestions.len(), 1);

    let pages: Vec<SnapshotPage> =
        fake.lock().unwrap().pages.values().map(|body| serde_json::from_slice(body).unwrap()).collect();
    assert_eq!(
        pages.iter().map(|p| (p.assignments.len(), p.last)).collect::<Vec<_>>(),
        vec![(2, false), (2, false), (1, true)]
    );
    let exported: Vec<&AssignmentId> = pages.iter().flat_map(|p| &p.assignments).map(|a| &a.id).collect();
    assert_eq!(exported.last(), Some(&created), "the export sees what earlier commands did");
    assert_eq!(pages[0].assignments[0].end, Some("2024-08".parse().unwrap()));
    assert!(sim.take_exports().is_empty(), "the connector uploaded the export");
    assert_eq!(sim.assignment(&ids[0]).unwrap().end, Some("2024-08".parse().unwrap()));
    assert_eq!(sim.take_events().len(), 2, "the end and the new assignment are sent back as changes");
}

#[tokio::test]
async fn a_command_whose_result_failed_to_arrive_is_executed_again_without_harm() {
    let (base, fake) = start().await;
    let (sim, p, ids) = sim_with(3);
    sim.take_events();
    let create = OptigemCommand::CreateAssignment {
        id: CommandId::new("create-1"),
        newsletter: nl("NL-1"),
        person: PersonChoice::Existing { person: p.clone() },
        email: Email::parse("max.neu@example.com").unwrap(),
        email_target: EmailTarget::StandardCommunication,
        consent: ConsentEvidence::default(),
    };
    let export = OptigemCommand::ExportNewsletter { id: CommandId::new("export-1"), newsletter: nl("NL-1") };
    {
        let mut fake = fake.lock().unwrap();
        fake.feed = vec![create, export];
        fake.refuse_result_of = Some(("export-1".into(), StatusCode::BAD_REQUEST));
    }
    let c = connector(&base, SECRET);
    let err = c.poll_commands(&sim).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Refused { status: 400, .. }), "{err:?}");
    assert_eq!(c.cursor(), 1, "the cursor stands before the command whose result did not arrive");

    // The data changes before the next poll; the export's pages must still be the ones sent.
    sim.update_assignment(&ids[1], |f| f.count = 0);
    assert_eq!(c.poll_commands(&sim).await.unwrap(), 1);
    assert_eq!(c.cursor(), 2);
    {
        let fake = fake.lock().unwrap();
        assert_eq!(fake.duplicate_pages, 1, "the page went up again byte for byte, no conflict");
        assert_eq!(fake.results.len(), 2);
    }

    // A connector that lost its cursor starts over: every command again, nothing created twice.
    c.set_cursor(0);
    assert_eq!(c.poll_commands(&sim).await.unwrap(), 2);
    assert_eq!(sim.created_assignments(), 1);
    assert_eq!(sim.person(&p).unwrap().emails.len(), 2);
    let fake_state = fake.lock().unwrap();
    assert_eq!(fake_state.results[0], fake_state.results[2], "the same result again");
    assert_eq!(fake_state.duplicate_pages, 2);
}

#[tokio::test]
async fn the_feed_is_read_page_by_page() {
    let (base, fake) = start().await;
    let (sim, _, _) = sim_with(0);
    fake.lock().unwrap().feed = (1..=150).map(|n| match_command(&format!("match-{n}"))).collect();
    let c = connector(&base, SECRET);
    assert_eq!(c.poll_commands(&sim).await.unwrap(), 150);
    assert_eq!(c.cursor(), 150);
    let reads: Vec<String> =
        requests(&fake).into_iter().filter(|r| r.method == Method::GET).map(|r| r.target).collect();
    assert_eq!(
        reads,
        vec![
            "/connector/t1/commands?after=0&limit=100",
            "/connector/t1/commands?after=100&limit=100",
            "/connector/t1/commands?after=150&limit=100",
        ]
    );
}

#[tokio::test]
async fn sync_sends_changes_then_executes_then_sends_what_the_commands_changed() {
    let (base, fake) = start().await;
    let (sim, _, ids) = sim_with(1);
    fake.lock().unwrap().feed = vec![end_command("end-1", &ids[0])];
    let c = connector(&base, SECRET);
    assert_eq!(c.sync(&sim).await.unwrap(), (2, 1));
    let events = fake.lock().unwrap().events.clone();
    let ends: Vec<Option<YearMonth>> = events
        .iter()
        .map(|e| match e {
            ChangeEvent::AssignmentChanged { assignment } => assignment.end,
            ChangeEvent::AssignmentDeleted { .. } => panic!(),
        })
        .collect();
    assert_eq!(ends, vec![None, Some("2024-08".parse().unwrap())]);
    assert_eq!(c.sync(&sim).await.unwrap(), (0, 0), "quiet");
}
