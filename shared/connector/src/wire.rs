//! The wire format of what the connector sends: change events (`POST /connector/{tenant}/events`, a
//! batch of `assignment.changed` — a full snapshot with the person embedded and a version — and
//! `assignment.deleted` — id, newsletter, version), command results and snapshot pages. The JSON shapes are the domain's serde forms;
//! `docs/connector-openapi.yaml` describes them.

use optisync_domain::{Assignment, AssignmentId, CommandResult, IdError, Input, NewsletterId, PersonId};
use serde::{Deserialize, Serialize};

/// Most assignments one snapshot page may carry (`PUT /connector/{tenant}/snapshots/{id}/pages/{n}`).
/// M8: a page is kept as one inbox item, and a DynamoDB item holds at most 400 KB; 500 rich records of
/// about 900 bytes did not fit, 200 do.
pub const MAX_ASSIGNMENTS_PER_PAGE: usize = 200;

/// Most events one request may carry: a batch is kept as one inbox item, and a DynamoDB item holds at
/// most 400 KB (a snapshot is about 1 KB).
pub const MAX_EVENTS_PER_BATCH: usize = 200;

/// A batch of change events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    /// The events, oldest first.
    pub events: Vec<ChangeEvent>,
}

/// One change in OPTIGEM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ChangeEvent {
    /// An assignment was created or changed, or its person was (one event per assignment of the person).
    #[serde(rename = "assignment.changed")]
    AssignmentChanged {
        /// The full snapshot.
        assignment: Box<Assignment>,
    },
    /// An assignment, or its person, was deleted.
    #[serde(rename = "assignment.deleted")]
    AssignmentDeleted {
        /// The assignment.
        id: AssignmentId,
        /// Its newsletter.
        newsletter: NewsletterId,
        /// The version of the deletion (greater than every earlier one).
        version: u64,
    },
}

impl ChangeEvent {
    /// The planner's input for this event.
    pub fn into_input(self) -> Input {
        match self {
            Self::AssignmentChanged { assignment } => Input::AssignmentChanged { assignment: *assignment },
            Self::AssignmentDeleted { id, newsletter, version } => Input::AssignmentDeleted { id, newsletter, version },
        }
    }
}

/// Why a body is not a valid batch: where, and what is wrong, without echoing any value (R-J5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct WireError {
    /// Where in the body, e.g. `events[0].assignment.person.emails[1].email`.
    pub path: String,
    /// What is wrong there.
    pub problem: String,
}

/// Parses a request body into a batch of events. Each event is parsed on its own so that an error names
/// the exact field (`events[3].assignment.person.emails[0].email`).
pub fn parse_batch(body: &[u8]) -> Result<EventBatch, WireError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawBatch {
        events: Vec<serde_json::Value>,
    }
    let raw: RawBatch = parse_at("", body)?;
    if raw.events.is_empty() {
        return Err(WireError { path: "events".into(), problem: "must hold at least one event".into() });
    }
    if raw.events.len() > MAX_EVENTS_PER_BATCH {
        return Err(WireError {
            path: "events".into(),
            problem: format!("holds {} events; at most {MAX_EVENTS_PER_BATCH} per request", raw.events.len()),
        });
    }
    let mut events = Vec::with_capacity(raw.events.len());
    for (index, mut value) in raw.events.into_iter().enumerate() {
        let at = format!("events[{index}]");
        let kind = value.as_object_mut().and_then(|o| o.remove("type"));
        let event = match kind.as_ref().and_then(|k| k.as_str()) {
            Some("assignment.changed") => {
                let c: Changed = parse_value(&at, value)?;
                check_assignment_ids(&format!("{at}.assignment"), &c.assignment)?;
                ChangeEvent::AssignmentChanged { assignment: Box::new(c.assignment) }
            }
            Some("assignment.deleted") => {
                let d: Deleted = parse_value(&at, value)?;
                id_at(&format!("{at}.id"), AssignmentId::parse(d.id.as_str()))?;
                id_at(&format!("{at}.newsletter"), NewsletterId::parse(d.newsletter.as_str()))?;
                ChangeEvent::AssignmentDeleted { id: d.id, newsletter: d.newsletter, version: d.version }
            }
            _ => {
                return Err(WireError {
                    path: format!("{at}.type"),
                    problem: "must be assignment.changed or assignment.deleted".into(),
                });
            }
        };
        events.push(event);
    }
    Ok(EventBatch { events })
}

/// One page of a newsletter snapshot, answering an `export_newsletter` command (R-F2…F6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotPage {
    /// The newsletter exported.
    pub newsletter: NewsletterId,
    /// True on the final page.
    pub last: bool,
    /// Every assignment of the newsletter on this page, with its person embedded.
    pub assignments: Vec<Assignment>,
}

/// Parses a snapshot page; every assignment must belong to the page's newsletter.
pub fn parse_snapshot_page(body: &[u8]) -> Result<SnapshotPage, WireError> {
    let page: SnapshotPage = parse_at("", body)?;
    id_at("newsletter", NewsletterId::parse(page.newsletter.as_str()))?;
    if page.assignments.len() > MAX_ASSIGNMENTS_PER_PAGE {
        return Err(WireError {
            path: "assignments".into(),
            problem: format!("holds {}; at most {MAX_ASSIGNMENTS_PER_PAGE} per page", page.assignments.len()),
        });
    }
    if let Some(index) = page.assignments.iter().position(|a| a.newsletter != page.newsletter) {
        return Err(WireError {
            path: format!("assignments[{index}].newsletter"),
            problem: "differs from the page's newsletter".into(),
        });
    }
    for (index, assignment) in page.assignments.iter().enumerate() {
        check_assignment_ids(&format!("assignments[{index}]"), assignment)?;
    }
    Ok(page)
}

/// The ids of an assignment and its person by the id grammar of every edge (R-K2): they become parts of
/// store keys and command ids.
fn check_assignment_ids(at: &str, assignment: &Assignment) -> Result<(), WireError> {
    id_at(&format!("{at}.id"), AssignmentId::parse(assignment.id.as_str()))?;
    id_at(&format!("{at}.newsletter"), NewsletterId::parse(assignment.newsletter.as_str()))?;
    id_at(&format!("{at}.person.id"), PersonId::parse(assignment.person.id.as_str()))?;
    Ok(())
}

/// An id refused at `path`, named by its fault and never by its value (R-J5).
fn id_at<T>(path: &str, parsed: Result<T, IdError>) -> Result<(), WireError> {
    parsed.map(drop).map_err(|e| WireError { path: path.to_owned(), problem: e.problem.to_string() })
}

/// Parses the result the connector reports for a command (`POST …/commands/{id}/result`).
pub fn parse_result(body: &[u8]) -> Result<CommandResult, WireError> {
    let result: CommandResult = parse_at("", body)?;
    if let CommandResult::Failed { reason } = &result
        && reason.trim().is_empty()
    {
        return Err(WireError { path: "reason".into(), problem: "must say why the command failed".into() });
    }
    Ok(result)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Changed {
    assignment: Assignment,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Deleted {
    id: AssignmentId,
    newsletter: NewsletterId,
    version: u64,
}

fn parse_at<T: serde::de::DeserializeOwned>(prefix: &str, body: &[u8]) -> Result<T, WireError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| path_error(prefix, e))?;
    de.end().map_err(|e| WireError { path: "body".into(), problem: without_values(&e.to_string()) })?;
    Ok(value)
}

fn parse_value<T: serde::de::DeserializeOwned>(prefix: &str, value: serde_json::Value) -> Result<T, WireError> {
    serde_path_to_error::deserialize(value).map_err(|e| path_error(prefix, e))
}

fn path_error(prefix: &str, e: serde_path_to_error::Error<serde_json::Error>) -> WireError {
    let inner = e.path().to_string();
    let path = match (prefix, inner.as_str()) {
        ("", ".") => "body".to_owned(),
        ("", p) => p.to_owned(),
        (pre, ".") => pre.to_owned(),
        (pre, p) => format!("{pre}.{p}"),
    };
    WireError { path: optisync_domain::decode_path(&path), problem: without_values(&e.inner().to_string()) }
}

/// Removes quoted values (`"…"` and `` `…` ``, M10) from a parser message, so no e-mail or name from the
/// body reaches a response or a log: `invalid type: string "max@…", expected u64` → `invalid type: string,
/// expected u64`.
fn without_values(message: &str) -> String {
    optisync_domain::decode_problem(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_lose_quoted_values() {
        assert_eq!(
            without_values(r#"invalid type: string "max@example.com", expected u64"#),
            "invalid type: string, expected u64"
        );
        assert_eq!(without_values("unknown field `lena@example.org`, expected `a`"), "unknown field, expected `a`");
    }
}
