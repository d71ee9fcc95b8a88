//! Change-event batches: what the connector sends parses into planner inputs; what is wrong is named
//! by path without echoing values.

use optisync_connector::wire::*;
use optisync_domain::Input;

const CHANGED: &str = r#"{"events":[
  {"type":"assignment.changed","assignment":{
    "id":"A-1","newsletter":"NL-7","version":3,
    "created_at":"2024-01-10T09:00:00Z","changed_at":"2024-09-01T08:00:00Z",
    "end":"2024-12","count":1,
    "person":{"id":"P-9","first_name":"Max","last_name":"Muster","letter_salutation":"Lieber Herr Muster",
      "emails":[{"email":"max.muster@example.com","priority":1}],
      "deletion_marked":false,"privacy":{"email":"allowed"},
      "delivery_blocks":[{"type":"gesamt","valid_from":"2024-10-01"}]}}},
  {"type":"assignment.deleted","id":"A-2","newsletter":"NL-7","version":5}
]}"#;

#[test]
fn a_batch_of_changed_and_deleted_events_becomes_planner_inputs() {
    let batch = parse_batch(CHANGED.as_bytes()).unwrap();
    let inputs: Vec<Input> = batch.events.into_iter().map(ChangeEvent::into_input).collect();
    let Input::AssignmentChanged { assignment } = &inputs[0] else { panic!() };
    assert_eq!(
        (assignment.id.as_str(), assignment.version, assignment.end.unwrap().to_string()),
        ("A-1", 3, "2024-12".into())
    );
    assert_eq!(assignment.person.emails[0].email.key(), "max.muster@example.com");
    assert!(matches!(&inputs[1], Input::AssignmentDeleted { version: 5, .. }));
}

#[test]
fn malformed_bodies_name_the_field_and_never_echo_a_value() {
    let table = [
        ("not json", "body"),
        (r#"{"events":[]}"#, "events"),
        (r#"{"events":[{"type":"assignment.moved"}]}"#, "events[0].type"),
        (
            &CHANGED.replace("max.muster@example.com", "max.muster at example"),
            "events[0].assignment.person.emails[0].email",
        ),
        (&CHANGED.replace(r#""version":3"#, r#""version":"max.muster@example.com""#), "events[0].assignment.version"),
        (&CHANGED.replace(r#""end":"2024-12""#, r#""end":"Dezember""#), "events[0].assignment.end"),
        (r#"{"events":[],"extra":1}"#, "extra"),
    ];
    for (body, path) in table {
        let err = parse_batch(body.as_bytes()).unwrap_err();
        assert!(err.path.starts_with(path), "{body}: {err}");
        let text = err.to_string();
        assert!(!text.contains("max") && !text.contains("Dezember"), "{text}");
    }
}

#[test]
fn oversized_batches_are_refused() {
    let one = r#"{"type":"assignment.deleted","id":"A","newsletter":"N","version":1}"#;
    let body = format!(r#"{{"events":[{}]}}"#, vec![one; MAX_EVENTS_PER_BATCH + 1].join(","));
    assert_eq!(parse_batch(body.as_bytes()).unwrap_err().path, "events");
}

/// The examples of the contract document parse as the service parses them, and commands round-trip
/// unchanged: the document cannot drift from the code.
#[test]
fn the_contract_documents_examples_are_what_the_code_reads_and_writes() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/examples");
    let batch = std::fs::read(format!("{dir}/event-batch.json")).unwrap();
    let parsed = parse_batch(&batch).unwrap_or_else(|e| panic!("event-batch.json: {e}"));
    assert_eq!(parsed.events.len(), 2);
    let commands: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(format!("{dir}/commands.json")).unwrap()).unwrap();
    assert_eq!(commands.len(), 3);
    for example in commands {
        let command: optisync_domain::OptigemCommand =
            serde_json::from_value(example.clone()).unwrap_or_else(|e| panic!("{}: {e}", example["type"]));
        assert_eq!(serde_json::to_value(&command).unwrap(), example, "round trip of {}", example["type"]);
    }
}

#[test]
fn r_k2_ids_in_events_and_pages_follow_the_id_grammar_and_the_error_names_the_field_not_the_value() {
    let deleted = |id: &str, newsletter: &str| {
        format!(r#"{{"events":[{{"type":"assignment.deleted","id":"{id}","newsletter":"{newsletter}","version":3}}]}}"#)
    };
    assert!(parse_batch(deleted("A-1", "NL-7").as_bytes()).is_ok());
    let long = "x".repeat(65);
    for (id, newsletter, path) in [
        ("A#1", "NL-7", "events[0].id"),
        (long.as_str(), "NL-7", "events[0].id"),
        ("A-1", "NL~preview", "events[0].newsletter"),
        ("A-1", "secret@example.org", "events[0].newsletter"),
    ] {
        let e = parse_batch(deleted(id, newsletter).as_bytes()).unwrap_err();
        assert_eq!(e.path, path);
        assert!(!e.to_string().contains("example") && !e.to_string().contains("xxx"), "{e}");
    }
}

#[test]
fn r_k2_a_person_id_with_a_key_separator_is_refused_at_its_path() {
    let bad = CHANGED.replace(r#""id":"P-9""#, r#""id":"P|9""#);
    let e = parse_batch(bad.as_bytes()).unwrap_err();
    assert_eq!(e.path, "events[0].assignment.person.id");
}

#[test]
fn m10_an_unknown_key_is_refused_and_neither_it_nor_a_bad_category_value_is_echoed() {
    let extra = CHANGED.replace(r#""id":"P-9","#, r#""id":"P-9","lena@example.org":1,"#);
    let e = parse_batch(extra.as_bytes()).unwrap_err();
    assert!(e.path.starts_with("events[0].assignment.person"), "{e}");
    assert!(!e.to_string().contains('@'), "{e}");
    let category = CHANGED.replace(r#""privacy":{"email":"allowed"}"#, r#""privacy":{"lena@example.org":"nope"}"#);
    let e = parse_batch(category.as_bytes()).unwrap_err();
    assert!(!e.to_string().contains('@') && !e.to_string().contains("nope"), "{e}");
}
