//! The simulated OPTIGEM behaves as the contract says OPTIGEM does: versions grow with every change, a
//! person's change is an event per assignment, commands are idempotent by id, an earlier end stands.

use chrono::{TimeZone, Utc};
use optisync_connector::wire::ChangeEvent;
use optisync_domain::*;
use optisync_optigem_sim::{AssignmentDraft, MAX_SUGGESTIONS, PersonDraft, SimOptigem};

fn sim() -> SimOptigem {
    SimOptigem::new(Utc.with_ymd_and_hms(2024, 9, 1, 10, 0, 0).unwrap())
}

fn nl(id: &str) -> NewsletterId {
    NewsletterId::new(id)
}

fn person(sim: &SimOptigem, first: &str, last: &str, emails: &[&str]) -> PersonId {
    sim.add_person(PersonDraft {
        first_name: Some(first.into()),
        last_name: Some(last.into()),
        emails: emails.iter().enumerate().map(|(n, e)| ((*e).to_owned(), n as u32 + 1)).collect(),
        ..Default::default()
    })
}

fn max(sim: &SimOptigem) -> PersonId {
    person(sim, "Max", "Muster", &["max@example.com"])
}

fn version(event: &ChangeEvent) -> u64 {
    match event {
        ChangeEvent::AssignmentChanged { assignment } => assignment.version,
        ChangeEvent::AssignmentDeleted { version, .. } => *version,
    }
}

fn id_of(event: &ChangeEvent) -> &AssignmentId {
    match event {
        ChangeEvent::AssignmentChanged { assignment } => &assignment.id,
        ChangeEvent::AssignmentDeleted { id, .. } => id,
    }
}

fn source() -> UnsubscribeSource {
    UnsubscribeSource { provider: Provider::Brevo, account: AccountId::new("b"), cause: UnsubscribeCause::Unsubscribed }
}

fn end(id: &str, assignment: &AssignmentId, month: &str) -> OptigemCommand {
    OptigemCommand::EndAssignment {
        id: CommandId::new(id),
        assignment: assignment.clone(),
        newsletter: nl("NL-1"),
        end: month.parse().unwrap(),
        unsubscription: Unsubscription { date: "2024-09-25".parse().unwrap(), source: source() },
    }
}

fn create(id: &str, person: PersonChoice, mail: &str, target: EmailTarget) -> OptigemCommand {
    OptigemCommand::CreateAssignment {
        id: CommandId::new(id),
        newsletter: nl("NL-1"),
        person,
        email: Email::parse(mail).unwrap(),
        email_target: target,
        consent: ConsentEvidence { source: Some("form:website".into()), ..Default::default() },
    }
}

fn suggestions(result: CommandResult) -> Vec<Candidate> {
    let CommandResult::Done { suggestions, assignment: None, person: None } = result else { panic!("{result:?}") };
    suggestions
}

fn match_command(id: &str, mail: &str, last_name: Option<&str>) -> OptigemCommand {
    OptigemCommand::MatchPersons {
        id: CommandId::new(id),
        link: LinkId::new("L-1"),
        email: Email::parse(mail).unwrap(),
        first_name: None,
        last_name: last_name.map(PersonalText::new),
    }
}

#[test]
fn ids_count_per_kind_from_one() {
    let sim = sim();
    let p = max(&sim);
    let q = person(&sim, "Erika", "Muster", &[]);
    let a = sim.add_assignment(&p, &nl("NL-1"), AssignmentDraft::default());
    assert_eq!((p.as_str(), q.as_str(), a.as_str()), ("P-1", "P-2", "A-1"));
    let blank = sim.add_person(PersonDraft { first_name: Some("  ".into()), ..Default::default() });
    assert_eq!(sim.person(&blank).unwrap().first_name, None, "a blank name is no name");
}

#[test]
fn versions_grow_and_a_person_change_is_one_event_per_assignment() {
    let sim = sim();
    let created = sim.now();
    let p = max(&sim);
    let a1 = sim.add_assignment(&p, &nl("NL-1"), AssignmentDraft::default());
    let a2 = sim.add_assignment(&p, &nl("NL-2"), AssignmentDraft::default());
    assert_eq!(sim.pending_events(), 2);
    assert_eq!(sim.take_events().len(), 2);
    assert_eq!(sim.pending_events(), 0);
    let v1 = sim.assignment(&a1).unwrap().version;
    assert_eq!((v1, sim.assignment(&a2).unwrap().version, sim.version()), (1, 2, 2));

    sim.set_now(Utc.with_ymd_and_hms(2024, 9, 2, 10, 0, 0).unwrap());
    sim.update_person(&p, |p| p.first_name = Some(PersonalText::new("Maximilian")));
    let events = sim.take_events();
    assert_eq!(events.len(), 2, "one event per assignment of the person");
    assert_eq!(events.iter().map(id_of).collect::<Vec<_>>(), vec![&a1, &a2]);
    let versions: Vec<u64> = events.iter().map(version).collect();
    assert!(versions.iter().all(|v| *v > v1) && versions[0] < versions[1]);
    for event in &events {
        let ChangeEvent::AssignmentChanged { assignment } = event else { panic!() };
        assert_eq!(assignment.person.first_name.as_ref().map(PersonalText::expose), Some("Maximilian"));
        assert_eq!((assignment.created_at, assignment.changed_at), (created, sim.now()));
    }
    // The snapshot's version is the counter at its last change.
    assert_eq!(sim.assignment(&a2).unwrap().version, sim.version());
    assert_eq!(sim.assignment(&a1).unwrap().version, sim.version() - 1);

    sim.update_assignment(&a1, |f| f.count = 0);
    let a = sim.assignment(&a1).unwrap();
    assert_eq!((a.count, a.version), (0, sim.version()));
    assert_eq!(sim.assignment(&a2).unwrap().version, sim.version() - 1, "another assignment keeps its version");

    sim.take_events();
    sim.delete_person(&p);
    let events = sim.take_events();
    assert!(matches!(&events[..], [ChangeEvent::AssignmentDeleted { .. }, ChangeEvent::AssignmentDeleted { .. }]));
    assert!(events.iter().all(|e| version(e) > a.version));
    assert!(sim.assignment(&a2).is_none() && sim.person(&p).is_none());
}

#[test]
fn the_outbox_keeps_every_change_oldest_first_with_growing_versions() {
    let sim = sim();
    let p = max(&sim);
    let lonely = person(&sim, "Erika", "Muster", &[]);
    sim.update_person(&lonely, |p| p.deletion_marked = true);
    assert_eq!(sim.pending_events(), 0, "a person without assignments is of no interest");
    let a1 = sim.add_assignment(&p, &nl("NL-1"), AssignmentDraft::default());
    let a2 = sim.add_assignment(
        &p,
        &nl("NL-1"),
        AssignmentDraft { email: Some("max.privat@example.com".into()), ..Default::default() },
    );
    sim.update_assignment(&a1, |f| f.end = Some("2024-12".parse().unwrap()));
    sim.delete_assignment(&a2);
    sim.update_assignment(&a2, |_| panic!("a deleted assignment cannot change"));
    sim.update_person(&PersonId::new("P-404"), |_| panic!("no such person"));
    assert!(!sim.delete_assignment(&a2), "deleted once");
    assert!(!sim.delete_person(&PersonId::new("P-404")));

    let events = sim.take_events();
    let summary: Vec<(&str, &AssignmentId)> = events
        .iter()
        .map(|e| match e {
            ChangeEvent::AssignmentChanged { assignment } => ("changed", &assignment.id),
            ChangeEvent::AssignmentDeleted { id, .. } => ("deleted", id),
        })
        .collect();
    assert_eq!(summary, vec![("changed", &a1), ("changed", &a2), ("changed", &a1), ("deleted", &a2)]);
    let versions: Vec<u64> = events.iter().map(version).collect();
    assert_eq!(versions, vec![1, 2, 3, 4]);
    let ChangeEvent::AssignmentChanged { assignment } = &events[1] else { panic!() };
    assert_eq!(assignment.email.as_ref().map(Email::as_str), Some("max.privat@example.com"));
    assert!(sim.take_events().is_empty(), "taken once");

    // Events handed back go out first, before newer ones.
    sim.update_assignment(&a1, |f| f.count = 2);
    let newer = sim.take_events();
    sim.update_assignment(&a1, |f| f.count = 3);
    sim.return_events(newer.clone());
    let again = sim.take_events();
    assert_eq!(again[0], newer[0]);
    assert!(version(&again[0]) < version(&again[1]));
}

#[test]
fn end_assignment_keeps_an_earlier_end_writes_the_record_and_runs_once() {
    let sim = sim();
    let p = max(&sim);
    let open = sim.add_assignment(&p, &nl("NL-1"), AssignmentDraft::default());
    let early = sim.add_assignment(
        &p,
        &nl("NL-1"),
        AssignmentDraft { end: Some("2024-03".parse().unwrap()), ..Default::default() },
    );
    let late = sim.add_assignment(
        &p,
        &nl("NL-1"),
        AssignmentDraft { end: Some("2025-12".parse().unwrap()), ..Default::default() },
    );
    sim.take_events();
    assert!(sim.execute(&end("c1", &open, "2024-08")).is_done());
    assert!(sim.execute(&end("c2", &early, "2024-08")).is_done());
    assert!(sim.execute(&end("c3", &late, "2024-08")).is_done());
    assert_eq!(sim.assignment(&open).unwrap().end, Some("2024-08".parse().unwrap()), "no end: the command's");
    assert_eq!(sim.assignment(&early).unwrap().end, Some("2024-03".parse().unwrap()), "an earlier end stands");
    assert_eq!(sim.assignment(&late).unwrap().end, Some("2024-08".parse().unwrap()), "a later end is brought forward");
    for id in [&open, &early, &late] {
        let record = sim.assignment(id).unwrap().unsubscription.unwrap();
        assert_eq!((record.date.to_string(), record.source), ("2024-09-25".to_owned(), source()));
    }
    let events = sim.take_events();
    assert_eq!(events.iter().map(id_of).collect::<Vec<_>>(), vec![&open, &early, &late], "each end is a change");

    let before = sim.assignment(&open).unwrap();
    assert!(sim.execute(&end("c1", &open, "2024-01")).is_done());
    assert_eq!(sim.take_events().len(), 0, "the same command again changes nothing");
    assert_eq!(sim.assignment(&open).unwrap(), before);
    assert_eq!(sim.executed().len(), 3, "a repeated command is logged once");
}

#[test]
fn end_assignment_fails_without_personal_data_for_a_missing_or_foreign_assignment() {
    let sim = sim();
    let p = max(&sim);
    let other = sim.add_assignment(&p, &nl("NL-2"), AssignmentDraft::default());
    let gone = sim.add_assignment(&p, &nl("NL-1"), AssignmentDraft::default());
    sim.delete_assignment(&gone);
    sim.take_events();
    assert_eq!(
        sim.execute(&end("c1", &AssignmentId::new("A-404"), "2024-08")),
        CommandResult::Failed { reason: "assignment not found".into() }
    );
    assert_eq!(
        sim.execute(&end("c2", &gone, "2024-08")),
        CommandResult::Failed { reason: "assignment not found".into() }
    );
    assert_eq!(
        sim.execute(&end("c3", &other, "2024-08")),
        CommandResult::Failed { reason: "assignment belongs to another newsletter".into() }
    );
    assert_eq!(sim.assignment(&other).unwrap().end, None);
    assert_eq!(sim.pending_events(), 0, "a failed command changes nothing");
    assert_eq!(
        sim.result_of(&CommandId::new("c1")),
        Some(CommandResult::Failed { reason: "assignment not found".into() })
    );
}

#[test]
fn create_assignment_into_the_standard_communication_runs_once() {
    let sim = sim();
    let p = max(&sim);
    let existing = sim.add_assignment(&p, &nl("NL-2"), AssignmentDraft::default());
    sim.take_events();
    let command = create(
        "k1",
        PersonChoice::Existing { person: p.clone() },
        "max.neu@example.com",
        EmailTarget::StandardCommunication,
    );
    let first = sim.execute(&command);
    let events = sim.take_events();
    assert_eq!(sim.execute(&command), first, "the second execution answers the first result");
    assert_eq!(sim.pending_events(), 0, "and changes nothing");
    assert_eq!(sim.created_assignments(), 1);
    assert_eq!(sim.assignments_of(&nl("NL-1")).len(), 1, "executed twice, created once");

    let CommandResult::Done { assignment: Some(a), person: Some(owner), suggestions } = first else {
        panic!("{first:?}")
    };
    assert_eq!(owner, p);
    assert!(suggestions.is_empty());
    let person = sim.person(&p).unwrap();
    assert_eq!(
        person.emails.iter().map(|e| (e.email.as_str(), e.priority)).collect::<Vec<_>>(),
        vec![("max@example.com", 1), ("max.neu@example.com", 2)],
        "after the highest priority"
    );
    let created = sim.assignment(&a).unwrap();
    assert_eq!(created.email, None, "the e-mail went into the standard communication");
    assert_eq!(sim.consent_of(&a).unwrap().source.as_deref(), Some("form:website"));
    // The person changed: its other assignment is sent again, then the new one.
    assert_eq!(events.iter().map(id_of).collect::<Vec<_>>(), vec![&existing, &a]);
    let ChangeEvent::AssignmentChanged { assignment } = &events[0] else { panic!() };
    assert_eq!(assignment.person.emails.len(), 2);

    // An address the person has already (in any case) is not added again, and nothing else changes.
    let again = create(
        "k2",
        PersonChoice::Existing { person: p.clone() },
        "MAX@example.com",
        EmailTarget::StandardCommunication,
    );
    let CommandResult::Done { assignment: Some(b), .. } = sim.execute(&again) else { panic!() };
    assert_eq!(sim.person(&p).unwrap().emails.len(), 2);
    assert_eq!(sim.take_events().iter().map(id_of).collect::<Vec<_>>(), vec![&b]);
    assert_eq!(sim.created_assignments(), 2);
}

#[test]
fn create_assignment_for_a_new_person_into_the_assignment() {
    let sim = sim();
    let new = PersonChoice::New {
        first_name: Some(PersonalText::new("Erika")),
        last_name: Some(PersonalText::new("Muster")),
    };
    let result = sim.execute(&create("k1", new, "erika@example.com", EmailTarget::Assignment));
    let CommandResult::Done { assignment: Some(a), person: Some(p), .. } = result else { panic!("{result:?}") };
    let a = sim.assignment(&a).unwrap();
    assert_eq!(a.email.as_ref().map(Email::as_str), Some("erika@example.com"));
    assert_eq!((a.person.id.clone(), a.count, a.end), (p.clone(), 1, None));
    assert_eq!(a.person.first_name.as_ref().map(PersonalText::expose), Some("Erika"));
    assert_eq!(a.person.last_name.as_ref().map(PersonalText::expose), Some("Muster"));
    assert!(a.person.emails.is_empty(), "the e-mail went into the assignment");
    assert_eq!(sim.persons().len(), 1);

    // A person without any e-mail gets the address with priority 1.
    let into_person = create(
        "k2",
        PersonChoice::Existing { person: p.clone() },
        "erika@example.com",
        EmailTarget::StandardCommunication,
    );
    assert!(sim.execute(&into_person).is_done());
    let emails = sim.person(&p).unwrap().emails;
    assert_eq!(
        emails.iter().map(|e| (e.email.as_str(), e.priority)).collect::<Vec<_>>(),
        vec![("erika@example.com", 1)]
    );
}

#[test]
fn create_assignment_for_a_missing_person_fails_without_personal_data() {
    let sim = sim();
    let p = max(&sim);
    sim.delete_person(&p);
    for (id, person) in [("k1", PersonId::new("P-404")), ("k2", p)] {
        let result =
            sim.execute(&create(id, PersonChoice::Existing { person }, "max@example.com", EmailTarget::Assignment));
        assert_eq!(result, CommandResult::Failed { reason: "person not found".into() });
    }
    assert_eq!((sim.created_assignments(), sim.assignments().len(), sim.pending_events()), (0, 0, 0));
    for (_, result) in sim.executed() {
        let CommandResult::Failed { reason } = result else { panic!() };
        assert!(!reason.contains("max") && !reason.contains("Muster") && !reason.contains('@'));
    }
}

#[test]
fn match_persons_offers_the_same_email_first_then_the_same_last_name() {
    let sim = sim();
    let p = max(&sim);
    let other = person(&sim, "Erika", "MUSTER", &[]);
    person(&sim, "Hans", "Meier", &["hans@example.com"]);
    let by_assignment = person(&sim, "Moritz", "Schmidt", &["moritz@example.com"]);
    sim.add_assignment(
        &by_assignment,
        &nl("NL-1"),
        AssignmentDraft { email: Some("MAX@example.com".into()), ..Default::default() },
    );
    let both = person(&sim, "Max", "Muster", &["max.m@example.com"]);
    sim.add_assignment(
        &both,
        &nl("NL-1"),
        AssignmentDraft { email: Some("max.m@example.com".into()), ..Default::default() },
    );

    let candidates = suggestions(sim.execute(&match_command("m1", "max@example.com", Some(" muster "))));
    let ids: Vec<&PersonId> = candidates.iter().map(|c| &c.person).collect();
    assert_eq!(ids, vec![&p, &by_assignment, &other, &both], "same e-mail first, then the same last name");
    let emails = |c: &Candidate| c.emails.iter().map(|e| e.as_str().to_owned()).collect::<Vec<_>>();
    assert_eq!(emails(&candidates[1]), vec!["moritz@example.com", "MAX@example.com"], "all of a person's e-mails");
    assert_eq!(emails(&candidates[3]), vec!["max.m@example.com"], "each once");
    assert!(candidates[2].emails.is_empty());
    assert_eq!(candidates[0].first_name.as_ref().map(PersonalText::expose), Some("Max"));
    assert_eq!(candidates[2].last_name.as_ref().map(PersonalText::expose), Some("MUSTER"));

    assert!(suggestions(sim.execute(&match_command("m2", "nobody@example.com", None))).is_empty());
    assert_eq!(sim.pending_events(), 2, "matching changes nothing");
}

#[test]
fn match_persons_compares_names_beyond_ascii_and_offers_at_most_ten() {
    let sim = sim();
    let mueller = person(&sim, "Jörg", "Müller", &[]);
    for n in 0..12 {
        person(&sim, "Max", "ÖZTÜRK", &[&format!("max{n}@example.com")]);
    }
    assert_eq!(
        suggestions(sim.execute(&match_command("m1", "joerg@example.com", Some("MÜLLER"))))
            .iter()
            .map(|c| &c.person)
            .collect::<Vec<_>>(),
        vec![&mueller]
    );
    let many = suggestions(sim.execute(&match_command("m2", "max11@example.com", Some("öztürk"))));
    assert_eq!(many.len(), MAX_SUGGESTIONS);
    assert_eq!(many[0].emails[0].as_str(), "max11@example.com", "the same e-mail stays first");
}

#[test]
fn snapshot_pages_split_and_flag_the_last() {
    let sim = sim();
    let p = max(&sim);
    let mut ids = Vec::new();
    for _ in 0..1201 {
        ids.push(sim.add_assignment(&p, &nl("NL-1"), AssignmentDraft::default()));
    }
    sim.add_assignment(&p, &nl("NL-2"), AssignmentDraft::default());
    let pages = sim.snapshot_pages(&nl("NL-1"), 500);
    assert_eq!(
        pages.iter().map(|p| (p.assignments.len(), p.last)).collect::<Vec<_>>(),
        vec![(500, false), (500, false), (201, true)]
    );
    assert!(pages.iter().all(|page| page.newsletter == nl("NL-1")));
    let paged: Vec<&AssignmentId> = pages.iter().flat_map(|p| &p.assignments).map(|a| &a.id).collect();
    assert_eq!(paged, ids.iter().collect::<Vec<_>>(), "every assignment once, in creation order");
    assert_eq!(sim.snapshot_pages(&nl("NL-1"), 1201).len(), 1);
    let empty = sim.snapshot_pages(&nl("NL-9"), 500);
    assert_eq!((empty.len(), empty[0].last, empty[0].assignments.len()), (1, true, 0));
}

#[test]
fn an_export_is_recorded_once_and_its_pages_show_the_data_of_its_execution() {
    let sim = sim();
    let p = max(&sim);
    let a = sim.add_assignment(&p, &nl("NL-1"), AssignmentDraft::default());
    let export = OptigemCommand::ExportNewsletter { id: CommandId::new("x1"), newsletter: nl("NL-1") };
    assert_eq!(sim.execute(&export), CommandResult::done());
    assert_eq!(sim.execute(&export), CommandResult::done());
    assert_eq!(sim.take_exports(), vec![(CommandId::new("x1"), nl("NL-1"))], "asked for once");
    assert!(sim.take_exports().is_empty());

    sim.update_assignment(&a, |f| f.count = 0);
    sim.add_assignment(&p, &nl("NL-1"), AssignmentDraft::default());
    let frozen = sim.export_pages(&CommandId::new("x1"), 500).unwrap();
    assert_eq!(frozen.len(), 1);
    assert_eq!(frozen[0].assignments.len(), 1);
    assert_eq!(frozen[0].assignments[0].count, 1, "as it stood when the export ran");
    assert_eq!(sim.snapshot_pages(&nl("NL-1"), 500)[0].assignments.len(), 2, "the live view has both");
    assert_eq!(sim.export_pages(&CommandId::new("x1"), 500).unwrap(), frozen, "the same pages every time");
    assert!(sim.export_pages(&CommandId::new("nope"), 500).is_none());
}

#[test]
fn the_log_records_every_command_once_in_order() {
    let sim = sim();
    let p = max(&sim);
    let a = sim.add_assignment(&p, &nl("NL-1"), AssignmentDraft::default());
    let commands = [
        match_command("m1", "max@example.com", None),
        end("e1", &a, "2024-08"),
        OptigemCommand::ExportNewsletter { id: CommandId::new("x1"), newsletter: nl("NL-1") },
        end("e1", &a, "2024-08"),
        create("k1", PersonChoice::Existing { person: p }, "max@example.com", EmailTarget::Assignment),
    ];
    for command in &commands {
        sim.execute(command);
    }
    let log: Vec<String> = sim.executed().into_iter().map(|(id, _)| id.as_str().to_owned()).collect();
    assert_eq!(log, vec!["m1", "e1", "x1", "k1"]);
}
