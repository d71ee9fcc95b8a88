//! The sandbox's JSON API: persons and assignments created, changed and deleted over HTTP show in the
//! simulated OPTIGEM and its outbox; bad input is a 400 naming the field, an unknown id a 404.

use chrono::{TimeZone, Utc};
use optisync_connector::wire::ChangeEvent;
use optisync_domain::{AssignmentId, NewsletterId, PersonId};
use optisync_optigem_sim::{AssignmentDraft, SimOptigem, server};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Sandbox {
    sim: SimOptigem,
    base: String,
    http: reqwest::Client,
}

impl Sandbox {
    async fn start() -> Self {
        let sim = SimOptigem::new(Utc.with_ymd_and_hms(2024, 9, 1, 10, 0, 0).unwrap());
        let (addr, _task) = server::start(sim.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
        Self { sim, base: format!("http://{addr}"), http: reqwest::Client::new() }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    async fn raw_post(&self, path: &str, body: &'static str) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }
}

fn assert_problem(answer: &(StatusCode, Value), status: StatusCode, path: &str) {
    assert_eq!(answer.0, status, "{answer:?}");
    assert_eq!(answer.1["error"]["path"], path, "{answer:?}");
    assert!(answer.1["error"]["problem"].as_str().is_some_and(|p| !p.is_empty()), "{answer:?}");
}

#[tokio::test]
async fn persons_and_assignments_are_created_changed_and_deleted_over_http() {
    let sandbox = Sandbox::start().await;
    let (status, max) = sandbox
        .post(
            "/persons",
            json!({
                "first_name": "Max",
                "last_name": "Muster",
                "letter_salutation": "Lieber Herr Muster",
                "emails": [{"email": "max@example.com", "priority": 1}],
                "privacy": {"newsletter": "allowed"},
                "delivery_blocks": [{"type": "urlaub", "valid_from": "2024-07-01"}]
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{max}");
    assert_eq!(max["id"], "P-1");
    assert_eq!(max["emails"][0]["email"], "max@example.com");
    assert_eq!(sandbox.sim.person(&PersonId::new("P-1")).unwrap().delivery_blocks.len(), 1);
    assert_eq!(sandbox.sim.pending_events(), 0, "a person alone is no event");

    let (status, assignment) = sandbox
        .post("/assignments", json!({"person": "P-1", "newsletter": "NL-1", "email": "max.privat@example.com"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{assignment}");
    assert_eq!((assignment["id"].as_str(), assignment["count"].as_u64()), (Some("A-1"), Some(1)));
    assert_eq!(assignment["person"]["last_name"], "Muster", "the person embedded");
    assert_eq!(assignment["email"], "max.privat@example.com");
    let created_version = assignment["version"].as_u64().unwrap();

    let (status, list) = sandbox.get("/assignments?newsletter=NL-1").await;
    assert_eq!((status, list.as_array().unwrap().len()), (StatusCode::OK, 1));
    assert_eq!(sandbox.get("/assignments?newsletter=NL-2").await.1, json!([]));
    assert_eq!(sandbox.get("/assignments").await.1.as_array().unwrap().len(), 1);
    assert_eq!(sandbox.get("/persons").await.1.as_array().unwrap().len(), 1);

    let (status, changed) = sandbox.patch("/assignments/A-1", json!({"end": "2024-05", "count": 2})).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!((changed["end"].as_str(), changed["count"].as_u64()), (Some("2024-05"), Some(2)));
    assert!(changed["version"].as_u64().unwrap() > created_version);
    assert_eq!(changed["email"], "max.privat@example.com", "fields not given stay");
    let (_, cleared) = sandbox.patch("/assignments/A-1", json!({"end": null, "email": null})).await;
    assert!(cleared.get("end").is_none() && cleared.get("email").is_none(), "{cleared}");
    assert_eq!(cleared["count"], 2);

    let (status, person) =
        sandbox.patch("/persons/P-1", json!({"first_name": "Maximilian", "letter_salutation": null})).await;
    assert_eq!(status, StatusCode::OK, "{person}");
    assert_eq!((person["first_name"].as_str(), person.get("letter_salutation")), (Some("Maximilian"), None));
    assert_eq!(person["last_name"], "Muster");

    let (status, shown) = sandbox.get("/assignments/A-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["assignment"]["person"]["first_name"], "Maximilian");
    assert_eq!(shown["consent"], Value::Null);

    let events = sandbox.sim.take_events();
    assert_eq!(events.len(), 4, "created, changed, cleared, the person changed");
    let ChangeEvent::AssignmentChanged { assignment } = &events[3] else { panic!() };
    assert_eq!(assignment.person.first_name.as_ref().map(|n| n.expose()), Some("Maximilian"));

    assert_eq!(sandbox.delete("/assignments/A-1").await.0, StatusCode::NO_CONTENT);
    assert_eq!(sandbox.get("/assignments/A-1").await.0, StatusCode::NOT_FOUND);
    assert!(matches!(&sandbox.sim.take_events()[..], [ChangeEvent::AssignmentDeleted { .. }]));

    sandbox.sim.add_assignment(&PersonId::new("P-1"), &NewsletterId::new("NL-2"), AssignmentDraft::default());
    sandbox.sim.take_events();
    assert_eq!(sandbox.delete("/persons/P-1").await.0, StatusCode::NO_CONTENT);
    assert!(matches!(&sandbox.sim.take_events()[..], [ChangeEvent::AssignmentDeleted { .. }]));
    assert_eq!(sandbox.get("/persons").await.1, json!([]));
}

#[tokio::test]
async fn unknown_ids_answer_404() {
    let sandbox = Sandbox::start().await;
    assert_problem(&sandbox.get("/persons/P-404").await, StatusCode::NOT_FOUND, "id");
    assert_problem(&sandbox.patch("/persons/P-404", json!({"first_name": "Erika"})).await, StatusCode::NOT_FOUND, "id");
    assert_problem(&sandbox.delete("/persons/P-404").await, StatusCode::NOT_FOUND, "id");
    assert_problem(&sandbox.get("/assignments/A-404").await, StatusCode::NOT_FOUND, "id");
    assert_problem(&sandbox.patch("/assignments/A-404", json!({"count": 0})).await, StatusCode::NOT_FOUND, "id");
    assert_problem(&sandbox.delete("/assignments/A-404").await, StatusCode::NOT_FOUND, "id");
    assert_problem(
        &sandbox.post("/assignments", json!({"person": "P-404", "newsletter": "NL-1"})).await,
        StatusCode::NOT_FOUND,
        "person",
    );
    assert!(sandbox.sim.assignment(&AssignmentId::new("A-1")).is_none());
    assert_eq!(sandbox.sim.pending_events(), 0);
}

#[tokio::test]
async fn bad_input_answers_400_naming_the_field_without_the_value() {
    let sandbox = Sandbox::start().await;
    let bad_email =
        sandbox.post("/persons", json!({"last_name": "Muster", "emails": [{"email": "max@", "priority": 1}]})).await;
    assert_problem(&bad_email, StatusCode::BAD_REQUEST, "emails[0].email");
    assert!(!bad_email.1.to_string().contains("max@"), "{}", bad_email.1);
    assert_problem(&sandbox.post("/persons", json!({"vorname": "Max"})).await, StatusCode::BAD_REQUEST, "vorname");
    assert_problem(&sandbox.raw_post("/persons", "{not json").await, StatusCode::BAD_REQUEST, "body");
    assert_problem(&sandbox.raw_post("/persons", "").await, StatusCode::BAD_REQUEST, "body");
    assert!(sandbox.sim.persons().is_empty());

    let (_, max) = sandbox.post("/persons", json!({"first_name": "Max", "last_name": "Muster"})).await;
    assert_eq!(max["id"], "P-1");
    assert_problem(
        &sandbox.post("/assignments", json!({"person": "P-1"})).await,
        StatusCode::BAD_REQUEST,
        "newsletter",
    );
    assert_problem(
        &sandbox.post("/assignments", json!({"person": "P-1", "newsletter": " "})).await,
        StatusCode::BAD_REQUEST,
        "newsletter",
    );
    assert_problem(
        &sandbox.post("/assignments", json!({"person": "P-1", "newsletter": "NL-1", "end": "2024-13"})).await,
        StatusCode::BAD_REQUEST,
        "end",
    );
    let (_, a) = sandbox.post("/assignments", json!({"person": "P-1", "newsletter": "NL-1"})).await;
    let path = format!("/assignments/{}", a["id"].as_str().unwrap());
    assert_problem(&sandbox.patch(&path, json!({"end": "Mai 2024"})).await, StatusCode::BAD_REQUEST, "end");
    assert_problem(&sandbox.patch(&path, json!({"count": -1})).await, StatusCode::BAD_REQUEST, "count");
    assert_problem(&sandbox.patch(&path, json!({"email": "erika at example"})).await, StatusCode::BAD_REQUEST, "email");
    assert_problem(
        &sandbox.patch("/persons/P-1", json!({"deletion_marked": "ja"})).await,
        StatusCode::BAD_REQUEST,
        "deletion_marked",
    );
    assert_eq!(sandbox.sim.pending_events(), 1, "only the assignment's creation; bad input changes nothing");
    assert_eq!(sandbox.get(&path).await.1["assignment"]["count"], 1);
}
