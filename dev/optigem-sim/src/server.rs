//! A small JSON API for the local sandbox, to look at and change the simulated OPTIGEM by hand. It talks
//! to the simulated OPTIGEM only; [`crate::Connector::sync`] exchanges its changes with optisync.
//!
//! | route | does |
//! | --- | --- |
//! | `GET /persons` | every person |
//! | `POST /persons` | creates a person: `first_name`, `last_name`, `letter_salutation`, `emails` (`[{"email","priority"}]`), `deletion_marked`, `privacy`, `delivery_blocks`; 201 with the person |
//! | `GET /persons/{id}` | a person |
//! | `PATCH /persons/{id}` | changes the fields given (`null` clears a name); an event per assignment |
//! | `DELETE /persons/{id}` | deletes the person and its assignments; 204 |
//! | `GET /assignments?newsletter=` | the assignments (of a newsletter) as the connector sends them |
//! | `GET /assignments/{id}` | `{"assignment": …, "consent": …}` |
//! | `POST /assignments` | `person`, `newsletter`, `email`, `end` (`"YYYY-MM"`), `count`; 201 with the assignment |
//! | `PATCH /assignments/{id}` | `end` (`"YYYY-MM"` or `null`), `count`, `email` (or `null`), `unsubscription` (or `null`) |
//! | `DELETE /assignments/{id}` | deletes the assignment; 204 |
//!
//! A body that is not valid answers 400 with `{"error":{"path":…,"problem":…}}` naming the field (never
//! echoing a value); an unknown id answers 404 with the same shape.

use crate::{AssignmentFields, SimOptigem, text, without_values};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use optisync_domain::{
    AssignmentId, DeliveryBlock, Email, NewsletterId, Person, PersonId, PrivacyCategory, PrivacyStatus, RankedEmail,
    Unsubscription, YearMonth,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The sandbox's routes on a simulated OPTIGEM.
pub fn router(sim: SimOptigem) -> Router {
    Router::new()
        .route("/persons", get(list_persons).post(create_person))
        .route("/persons/{id}", get(get_person).patch(patch_person).delete(delete_person))
        .route("/assignments", get(list_assignments).post(create_assignment))
        .route("/assignments/{id}", get(get_assignment).patch(patch_assignment).delete(delete_assignment))
        .with_state(sim)
}

/// Serves the sandbox's routes on a listener until the task ends.
pub async fn serve(sim: SimOptigem, listener: TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router(sim)).await
}

/// Binds `addr` (port 0 picks a free one) and serves in a new task; returns the bound address and the task.
pub async fn start(
    sim: SimOptigem,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, JoinHandle<std::io::Result<()>>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((bound, tokio::spawn(serve(sim, listener))))
}

/// An answer other than success: a status and `{"error":{"path":…,"problem":…}}`.
struct Problem {
    status: StatusCode,
    path: String,
    problem: String,
}

impl Problem {
    fn bad(path: &str, problem: &str) -> Self {
        Self { status: StatusCode::BAD_REQUEST, path: path.to_owned(), problem: problem.to_owned() }
    }

    fn not_found(path: &str, what: &str) -> Self {
        Self { status: StatusCode::NOT_FOUND, path: path.to_owned(), problem: format!("no such {what}") }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": { "path": self.path, "problem": self.problem } }))).into_response()
    }
}

type Answer = Result<Response, Problem>;

/// Parses a body; an error names the field and the problem, without the value.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let problem = e.inner().to_string();
        let path = match e.path().to_string() {
            _ if e.inner().is_syntax() || e.inner().is_eof() => "body".to_owned(),
            path => match (path.as_str(), missing_field(&problem)) {
                ("." | "?", Some(field)) => field.to_owned(),
                ("." | "?", None) => "body".to_owned(),
                (_, Some(field)) => format!("{path}.{field}"),
                (_, None) => path,
            },
        };
        Problem::bad(&path, &without_values(&problem))
    })?;
    de.end().map_err(|_| Problem::bad("body", "trailing characters after the JSON value"))?;
    Ok(value)
}

/// The field a "missing field `x`" message names.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// A field that may be absent (`None`: leave it), `null` (`Some(None)`: clear it) or a value.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPerson {
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    letter_salutation: Option<String>,
    #[serde(default)]
    emails: Vec<RankedEmail>,
    #[serde(default)]
    deletion_marked: bool,
    #[serde(default)]
    privacy: BTreeMap<PrivacyCategory, PrivacyStatus>,
    #[serde(default)]
    delivery_blocks: Vec<DeliveryBlock>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonPatch {
    #[serde(default, deserialize_with = "nullable")]
    first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    letter_salutation: Option<Option<String>>,
    #[serde(default)]
    emails: Option<Vec<RankedEmail>>,
    #[serde(default)]
    deletion_marked: Option<bool>,
    #[serde(default)]
    privacy: Option<BTreeMap<PrivacyCategory, PrivacyStatus>>,
    #[serde(default)]
    delivery_blocks: Option<Vec<DeliveryBlock>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAssignment {
    person: PersonId,
    newsletter: NewsletterId,
    #[serde(default)]
    email: Option<Email>,
    #[serde(default)]
    end: Option<YearMonth>,
    #[serde(default = "one")]
    count: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignmentPatch {
    #[serde(default, deserialize_with = "nullable")]
    email: Option<Option<Email>>,
    #[serde(default, deserialize_with = "nullable")]
    end: Option<Option<YearMonth>>,
    #[serde(default)]
    count: Option<u32>,
    #[serde(default, deserialize_with = "nullable")]
    unsubscription: Option<Option<Unsubscription>>,
}

#[derive(Deserialize)]
struct AssignmentQuery {
    newsletter: Option<String>,
}

async fn list_persons(State(sim): State<SimOptigem>) -> Response {
    Json(sim.persons()).into_response()
}

async fn get_person(State(sim): State<SimOptigem>, Path(id): Path<String>) -> Answer {
    let person = sim.person(&PersonId::new(id)).ok_or_else(|| Problem::not_found("id", "person"))?;
    Ok(Json(person).into_response())
}

async fn create_person(State(sim): State<SimOptigem>, body: Bytes) -> Answer {
    let new: NewPerson = parse(&body)?;
    let id = sim.insert_person(Person {
        id: PersonId::new(""),
        first_name: text(new.first_name),
        last_name: text(new.last_name),
        letter_salutation: text(new.letter_salutation),
        emails: new.emails,
        deletion_marked: new.deletion_marked,
        privacy: new.privacy,
        delivery_blocks: new.delivery_blocks,
    });
    let person = sim.person(&id).ok_or_else(|| Problem::not_found("id", "person"))?;
    Ok((StatusCode::CREATED, Json(person)).into_response())
}

async fn patch_person(State(sim): State<SimOptigem>, Path(id): Path<String>, body: Bytes) -> Answer {
    let patch: PersonPatch = parse(&body)?;
    let id = PersonId::new(id);
    let mut found = false;
    sim.update_person(&id, |person| {
        found = true;
        if let Some(value) = patch.first_name {
            person.first_name = text(value);
        }
        if let Some(value) = patch.last_name {
            person.last_name = text(value);
        }
        if let Some(value) = patch.letter_salutation {
            person.letter_salutation = text(value);
        }
        if let Some(emails) = patch.emails {
            person.emails = emails;
        }
        if let Some(marked) = patch.deletion_marked {
            person.deletion_marked = marked;
        }
        if let Some(privacy) = patch.privacy {
            person.privacy = privacy;
        }
        if let Some(blocks) = patch.delivery_blocks {
            person.delivery_blocks = blocks;
        }
    });
    let person = sim.person(&id).filter(|_| found).ok_or_else(|| Problem::not_found("id", "person"))?;
    Ok(Json(person).into_response())
}

async fn delete_person(State(sim): State<SimOptigem>, Path(id): Path<String>) -> Answer {
    if !sim.delete_person(&PersonId::new(id)) {
        return Err(Problem::not_found("id", "person"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_assignments(State(sim): State<SimOptigem>, Query(query): Query<AssignmentQuery>) -> Response {
    let assignments = match query.newsletter.filter(|n| !n.trim().is_empty()) {
        Some(newsletter) => sim.assignments_of(&NewsletterId::new(newsletter)),
        None => sim.assignments(),
    };
    Json(assignments).into_response()
}

async fn get_assignment(State(sim): State<SimOptigem>, Path(id): Path<String>) -> Answer {
    let id = AssignmentId::new(id);
    let assignment = sim.assignment(&id).ok_or_else(|| Problem::not_found("id", "assignment"))?;
    Ok(Json(json!({ "assignment": assignment, "consent": sim.consent_of(&id) })).into_response())
}

async fn create_assignment(State(sim): State<SimOptigem>, body: Bytes) -> Answer {
    let new: NewAssignment = parse(&body)?;
    if new.newsletter.as_str().trim().is_empty() {
        return Err(Problem::bad("newsletter", "must not be empty"));
    }
    let fields = AssignmentFields { email: new.email, end: new.end, count: new.count, unsubscription: None };
    let assignment = sim
        .insert_assignment(&new.person, &new.newsletter, fields)
        .and_then(|id| sim.assignment(&id))
        .ok_or_else(|| Problem::not_found("person", "person"))?;
    Ok((StatusCode::CREATED, Json(assignment)).into_response())
}

async fn patch_assignment(State(sim): State<SimOptigem>, Path(id): Path<String>, body: Bytes) -> Answer {
    let patch: AssignmentPatch = parse(&body)?;
    let id = AssignmentId::new(id);
    let mut found = false;
    sim.update_assignment(&id, |fields| {
        found = true;
        if let Some(email) = patch.email {
            fields.email = email;
        }
        if let Some(end) = patch.end {
            fields.end = end;
        }
        if let Some(count) = patch.count {
            fields.count = count;
        }
        if let Some(unsubscription) = patch.unsubscription {
            fields.unsubscription = unsubscription;
        }
    });
    let assignment = sim.assignment(&id).filter(|_| found).ok_or_else(|| Problem::not_found("id", "assignment"))?;
    Ok(Json(assignment).into_response())
}

async fn delete_assignment(State(sim): State<SimOptigem>, Path(id): Path<String>) -> Answer {
    if !sim.delete_assignment(&AssignmentId::new(id)) {
        return Err(Problem::not_found("id", "assignment"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
