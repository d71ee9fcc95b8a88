//! The simulated OPTIGEM behaves as the contract says OPTIGEM does: versions grow with every change, a
//! person's change is an event per assignment, commands are idempotent by id, an earlier end stands.

use chrono::{TimeZone, Utc};
use optisync_connector::wire::ChangeEvent;
use optisync_domain::*;
use optisync_optigem_sim::{AssignmentDraft, PersonDraft, SimOptigem};

fn sim() -> SimOptigem {
    SimOptigem::new(Utc.with_ymd_and_hms(2024, 9, 1, 10, 0, 0).unwrap())
}

fn max(sim: &SimOptigem) -> PersonId {
    sim.add_person(PersonDraft {
        first_name: Some("Max".into()),
        last_name: Some("Muster".into()),
        emails: vec![("max@example.com".into(), 1)],
        ..Default::default()
    })
}

fn source() -> UnsubscribeSource {
    UnsubscribeSource { provider: Provider::Brevo, account: AccountId::new("b"), cause: UnsubscribeCause::Unsubscribed }
}

fn end(id: &str, assignment: &AssignmentId, month: &str) -> OptigemCommand {
    OptigemCommand::EndAssignment {
        id: CommandId::new(id),
        assignment: assignment.clone(),
        newsletter: NewsletterId::new("NL-1"),
        end: month.parse().unwrap(),
        unsubscription: Unsubscription { date: "2024-09-25".parse().unwrap(), source: source() },
    }
}

#[test]
fn versions_grow_and_a_person_change_is_one_event_per_assignment() {
    let sim = sim();
    let p = max(&sim);
    let a1 = sim.add_assignment(&p, &NewsletterId::new("NL-1"), AssignmentDraft::default());
    let a2 = sim.add_assignment(&p, &NewsletterId::new("NL-2"), AssignmentDraft::default());
    assert_eq!(sim.take_events().len(), 2);
    let v1 = sim.assignment(&a1).unwrap().version;
    sim.set_now(Utc.with_ymd_and_hms(2024, 9, 2, 10, 0, 0).unwrap());
    sim.update_person(&p, |p| p.first_name = Some(PersonalText::new("Maximilian")));
    let events = sim.take_events();
    assert_eq!(events.len(), 2);
    let versions: Vec<u64> = events
        .iter()
        .map(|e| match e {
            ChangeEvent::AssignmentChanged { assignment } => assignment.version,
            ChangeEvent::AssignmentDeleted { version, .. } => *version,
        })
        .collect();
    assert!(versions.iter().all(|v| *v > v1) && versions[0] < versions[1]);
    let a = sim.assignment(&a1).unwrap();
    assert_eq!(a.person.first_name.as_ref().map(PersonalText::expose), Some("Maximilian"));
    assert_eq!(a.changed_at, sim.now());
    sim.delete_person(&p);
    let events = sim.take_events();
    assert!(matches!(&events[..], [ChangeEvent::AssignmentDeleted { .. }, ChangeEvent::AssignmentDeleted { .. }]));
    assert!(sim.assignment(&a2).is_none());
}

#[test]
fn end_assignment_keeps_an_earlier_end_writes_the_record_and_runs_once() {
    let sim = sim();
    let p = max(&sim);
    let open = sim.add_assignment(&p, &NewsletterId::new("NL-1"), AssignmentDraft::default());
    let early = sim.add_assignment(
        &p,
        &NewsletterId::new("NL-1"),
        AssignmentDraft { end: Some("2024-03".parse().unwrap()), ..Default::default() },
    );
    sim.take_events();
    assert!(sim.execute(&end("c1", &open, "2024-08")).is_done());
    assert!(sim.execute(&end("c2", &early, "2024-08")).is_done());
    assert_eq!(sim.assignment(&open).unwrap().end, Some("2024-08".parse().unwrap()));
    assert_eq!(sim.assignment(&early).unwrap().end, Some("2024-03".parse().unwrap()), "an earlier end stands");
    assert_eq!(sim.assignment(&open).unwrap().unsubscription.unwrap().date.to_string(), "2024-09-25");
    assert_eq!(sim.take_events().len(), 2);
    sim.execute(&end("c1", &open, "2024-01"));
    assert_eq!(sim.take_events().len(), 0, "the same command again changes nothing");
    assert_eq!(sim.assignment(&open).unwrap().end, Some("2024-08".parse().unwrap()));
    let gone = sim.execute(&end("c3", &AssignmentId::new("A-404"), "2024-08"));
    assert_eq!(gone, CommandResult::Failed { reason: "assignment not found".into() });
}

#[test]
fn create_assignment_creates_once_with_the_email_where_the_target_says() {
    let sim = sim();
    let p = max(&sim);
    let create = |id: &str, person: PersonChoice, target: EmailTarget| OptigemCommand::CreateAssignment {
        id: CommandId::new(id),
        newsletter: NewsletterId::new("NL-1"),
        person,
        email: Email::parse("max.neu@example.com").unwrap(),
        email_target: target,
        consent: ConsentEvidence { source: Some("form:website".into()), ..Default::default() },
    };
    let first =
        sim.execute(&create("k1", PersonChoice::Existing { person: p.clone() }, EmailTarget::StandardCommunication));
    assert_eq!(
        sim.execute(&create("k1", PersonChoice::Existing { person: p.clone() }, EmailTarget::StandardCommunication)),
        first
    );
    let CommandResult::Done { assignment: Some(a), person: Some(owner), .. } = first else { panic!("{first:?}") };
    assert_eq!(owner, p);
    assert_eq!(sim.assignments_of(&NewsletterId::new("NL-1")).len(), 1, "executed twice, created once");
    let person = sim.person(&p).unwrap();
    assert_eq!(
        person.emails.iter().map(|e| (e.email.as_str().to_owned(), e.priority)).collect::<Vec<_>>(),
        vec![("max@example.com".to_owned(), 1), ("max.neu@example.com".to_owned(), 2)]
    );
    assert_eq!(sim.assignment(&a).unwrap().email, None);
    assert_eq!(sim.consent_of(&a).unwrap().source.as_deref(), Some("form:website"));

    let new = PersonChoice::New { first_name: Some(PersonalText::new("Erika")), last_name: None };
    let CommandResult::Done { assignment: Some(b), .. } = sim.execute(&create("k2", new, EmailTarget::Assignment))
    else {
        panic!()
    };
    let b = sim.assignment(&b).unwrap();
    assert_eq!(b.email.as_ref().map(Email::as_str), Some("max.neu@example.com"));
    assert_eq!(b.person.first_name.as_ref().map(PersonalText::expose), Some("Erika"));
    let missing =
        sim.execute(&create("k3", PersonChoice::Existing { person: PersonId::new("P-404") }, EmailTarget::Assignment));
    assert_eq!(missing, CommandResult::Failed { reason: "person not found".into() });
}

#[test]
fn match_persons_offers_the_same_email_first_then_the_same_last_name() {
    let sim = sim();
    let p = max(&sim);
    let other = sim.add_person(PersonDraft {
        first_name: Some("Erika".into()),
        last_name: Some("MUSTER".into()),
        ..Default::default()
    });
    sim.add_person(PersonDraft {
        first_name: Some("Hans".into()),
        last_name: Some("Meier".into()),
        ..Default::default()
    });
    let by_assignment = sim.add_person(PersonDraft { last_name: Some("Schmidt".into()), ..Default::default() });
    sim.add_assignment(
        &by_assignment,
        &NewsletterId::new("NL-1"),
        AssignmentDraft { email: Some("MAX@example.com".into()), ..Default::default() },
    );
    let result = sim.execute(&OptigemCommand::MatchPersons {
        id: CommandId::new("m1"),
        link: LinkId::new("L-1"),
        email: Email::parse("max@example.com").unwrap(),
        first_name: None,
        last_name: Some(PersonalText::new("muster")),
    });
    let CommandResult::Done { suggestions, .. } = result else { panic!() };
    let ids: Vec<&PersonId> = suggestions.iter().map(|c| &c.person).collect();
    assert_eq!(ids, vec![&p, &by_assignment, &other]);
}

#[test]
fn snapshot_pages_split_and_flag_the_last() {
    let sim = sim();
    let p = max(&sim);
    for _ in 0..1201 {
        sim.add_assignment(&p, &NewsletterId::new("NL-1"), AssignmentDraft::default());
    }
    let pages = sim.snapshot_pages(&NewsletterId::new("NL-1"), 500);
    assert_eq!(
        pages.iter().map(|p| (p.assignments.len(), p.last)).collect::<Vec<_>>(),
        vec![(500, false), (500, false), (201, true)]
    );
    let empty = sim.snapshot_pages(&NewsletterId::new("NL-9"), 500);
    assert_eq!((empty.len(), empty[0].last, empty[0].assignments.len()), (1, true, 0));
    let export = OptigemCommand::ExportNewsletter { id: CommandId::new("x1"), newsletter: NewsletterId::new("NL-1") };
    assert!(sim.execute(&export).is_done());
    assert_eq!(sim.take_exports(), vec![(CommandId::new("x1"), NewsletterId::new("NL-1"))]);
}
