//! A simulated OPTIGEM for the end-to-end tests and the local sandbox, with a connector written against
//! the contract (`docs/connector.md`).
//!
//! * [`SimOptigem`] holds persons and assignments as OPTIGEM does, gives every change a version from one
//!   counter, records an `assignment.changed` / `assignment.deleted` event for every change, and executes
//!   optisync's commands against its own data (idempotent by command id).
//! * [`Connector`] exchanges with optisync over HTTP: signed change events, the command feed by cursor,
//!   results and snapshot pages.

mod connector;

pub use connector::{Connector, ConnectorError};

use chrono::{DateTime, Utc};
use optisync_connector::wire::{ChangeEvent, SnapshotPage};
use optisync_domain::{
    Assignment, AssignmentId, Candidate, CommandId, CommandResult, ConsentEvidence, DeliveryBlock, Email, EmailTarget,
    NewsletterId, OptigemCommand, Person, PersonChoice, PersonId, PersonalText, PrivacyCategory, PrivacyStatus,
    RankedEmail, Unsubscription, YearMonth,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// A new person.
#[derive(Debug, Clone, Default)]
pub struct PersonDraft {
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Letter salutation.
    pub letter_salutation: Option<String>,
    /// Standard-communication e-mails with their priority (1 first).
    pub emails: Vec<(String, u32)>,
    /// Deletion mark.
    pub deletion_marked: bool,
    /// Privacy statuses.
    pub privacy: BTreeMap<PrivacyCategory, PrivacyStatus>,
    /// Delivery blocks.
    pub delivery_blocks: Vec<DeliveryBlock>,
}

/// A new assignment.
#[derive(Debug, Clone)]
pub struct AssignmentDraft {
    /// The assignment's own e-mail.
    pub email: Option<String>,
    /// The last month delivered.
    pub end: Option<YearMonth>,
    /// Count; 1 by default.
    pub count: u32,
}

impl Default for AssignmentDraft {
    fn default() -> Self {
        Self { email: None, end: None, count: 1 }
    }
}

/// The fields of an assignment a change may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignmentFields {
    /// The assignment's own e-mail.
    pub email: Option<Email>,
    /// The last month delivered.
    pub end: Option<YearMonth>,
    /// Count.
    pub count: u32,
    /// The unsubscription record.
    pub unsubscription: Option<Unsubscription>,
}

#[derive(Debug, Clone)]
struct Stored {
    newsletter: NewsletterId,
    person: PersonId,
    fields: AssignmentFields,
    version: u64,
    created_at: DateTime<Utc>,
    changed_at: DateTime<Utc>,
}

#[derive(Default)]
struct State {
    now: DateTime<Utc>,
    counter: u64,
    next_id: u64,
    persons: BTreeMap<PersonId, Person>,
    assignments: BTreeMap<AssignmentId, Stored>,
    outbox: Vec<ChangeEvent>,
    results: HashMap<CommandId, CommandResult>,
    executed: Vec<(CommandId, CommandResult)>,
    consent: BTreeMap<AssignmentId, ConsentEvidence>,
    exports: Vec<(CommandId, NewsletterId)>,
}

impl State {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}", self.next_id)
    }

    fn snapshot(&self, id: &AssignmentId) -> Option<Assignment> {
        let stored = self.assignments.get(id)?;
        Some(Assignment {
            id: id.clone(),
            newsletter: stored.newsletter.clone(),
            version: stored.version,
            created_at: stored.created_at,
            changed_at: stored.changed_at,
            email: stored.fields.email.clone(),
            end: stored.fields.end,
            count: stored.fields.count,
            unsubscription: stored.fields.unsubscription.clone(),
            person: self.persons.get(&stored.person)?.clone(),
        })
    }

    /// A new version of these assignments, and an event for each.
    fn changed(&mut self, ids: &[AssignmentId]) {
        for id in ids {
            self.counter += 1;
            let (counter, now) = (self.counter, self.now);
            if let Some(stored) = self.assignments.get_mut(id) {
                stored.version = counter;
                stored.changed_at = now;
            }
            if let Some(snapshot) = self.snapshot(id) {
                self.outbox.push(ChangeEvent::AssignmentChanged { assignment: Box::new(snapshot) });
            }
        }
    }

    fn deleted(&mut self, id: &AssignmentId) {
        if let Some(stored) = self.assignments.remove(id) {
            self.counter += 1;
            self.outbox.push(ChangeEvent::AssignmentDeleted {
                id: id.clone(),
                newsletter: stored.newsletter,
                version: self.counter,
            });
        }
    }

    fn of_person(&self, person: &PersonId) -> Vec<AssignmentId> {
        self.assignments.iter().filter(|(_, s)| &s.person == person).map(|(id, _)| id.clone()).collect()
    }

    fn add_assignment(
        &mut self,
        person: &PersonId,
        newsletter: &NewsletterId,
        fields: AssignmentFields,
    ) -> AssignmentId {
        let id = AssignmentId::new(self.id("A"));
        let now = self.now;
        self.assignments.insert(
            id.clone(),
            Stored {
                newsletter: newsletter.clone(),
                person: person.clone(),
                fields,
                version: 0,
                created_at: now,
                changed_at: now,
            },
        );
        self.changed(std::slice::from_ref(&id));
        id
    }
}

/// The simulated OPTIGEM database. Clones share the data.
#[derive(Clone)]
pub struct SimOptigem {
    state: Arc<Mutex<State>>,
}

fn text(value: Option<String>) -> Option<PersonalText> {
    value.filter(|v| !v.trim().is_empty()).map(PersonalText::new)
}

impl SimOptigem {
    /// An empty database whose clock stands at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self { state: Arc::new(Mutex::new(State { now, ..State::default() })) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("simulated OPTIGEM lock")
    }

    /// Sets the clock (creation and change times of what happens next).
    pub fn set_now(&self, now: DateTime<Utc>) {
        self.lock().now = now;
    }

    /// The clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.lock().now
    }

    /// Creates a person (no event: a person without assignments is of no interest to optisync).
    ///
    /// # Panics
    /// If an e-mail is not valid (test data).
    pub fn add_person(&self, draft: PersonDraft) -> PersonId {
        let mut state = self.lock();
        let id = PersonId::new(state.id("P"));
        let emails = draft
            .emails
            .into_iter()
            .map(|(email, priority)| RankedEmail { email: Email::parse(&email).expect("a valid e-mail"), priority })
            .collect();
        let person = Person {
            id: id.clone(),
            first_name: text(draft.first_name),
            last_name: text(draft.last_name),
            letter_salutation: text(draft.letter_salutation),
            emails,
            deletion_marked: draft.deletion_marked,
            privacy: draft.privacy,
            delivery_blocks: draft.delivery_blocks,
        };
        state.persons.insert(id.clone(), person);
        id
    }

    /// Changes a person; every assignment of the person gets a new version and an event.
    pub fn update_person(&self, id: &PersonId, change: impl FnOnce(&mut Person)) {
        let mut state = self.lock();
        let Some(person) = state.persons.get_mut(id) else { return };
        change(person);
        person.id = id.clone();
        let ids = state.of_person(id);
        state.changed(&ids);
    }

    /// Deletes a person and with it every assignment (an `assignment.deleted` each).
    pub fn delete_person(&self, id: &PersonId) {
        let mut state = self.lock();
        for assignment in state.of_person(id) {
            state.deleted(&assignment);
        }
        state.persons.remove(id);
    }

    /// A person.
    pub fn person(&self, id: &PersonId) -> Option<Person> {
        self.lock().persons.get(id).cloned()
    }

    /// Every person.
    pub fn persons(&self) -> Vec<Person> {
        self.lock().persons.values().cloned().collect()
    }

    /// Creates an assignment of a person to a newsletter.
    ///
    /// # Panics
    /// If the person does not exist or the e-mail is not valid (test data).
    pub fn add_assignment(&self, person: &PersonId, newsletter: &NewsletterId, draft: AssignmentDraft) -> AssignmentId {
        let mut state = self.lock();
        assert!(state.persons.contains_key(person), "no such person");
        let fields = AssignmentFields {
            email: draft.email.map(|e| Email::parse(&e).expect("a valid e-mail")),
            end: draft.end,
            count: draft.count,
            unsubscription: None,
        };
        state.add_assignment(person, newsletter, fields)
    }

    /// Changes an assignment: a new version and an event.
    pub fn update_assignment(&self, id: &AssignmentId, change: impl FnOnce(&mut AssignmentFields)) {
        let mut state = self.lock();
        let Some(stored) = state.assignments.get_mut(id) else { return };
        change(&mut stored.fields);
        state.changed(std::slice::from_ref(id));
    }

    /// Deletes an assignment.
    pub fn delete_assignment(&self, id: &AssignmentId) {
        self.lock().deleted(id);
    }

    /// The assignment as the connector sends it.
    pub fn assignment(&self, id: &AssignmentId) -> Option<Assignment> {
        self.lock().snapshot(id)
    }

    /// Every assignment of a newsletter, by id.
    pub fn assignments_of(&self, newsletter: &NewsletterId) -> Vec<Assignment> {
        let state = self.lock();
        state
            .assignments
            .iter()
            .filter(|(_, s)| &s.newsletter == newsletter)
            .filter_map(|(id, _)| state.snapshot(id))
            .collect()
    }

    /// The consent evidence kept with an assignment created from an approved signup (R-J1).
    pub fn consent_of(&self, id: &AssignmentId) -> Option<ConsentEvidence> {
        self.lock().consent.get(id).cloned()
    }

    /// Takes the change events recorded so far, oldest first.
    pub fn take_events(&self) -> Vec<ChangeEvent> {
        std::mem::take(&mut self.lock().outbox)
    }

    /// How many change events wait.
    pub fn pending_events(&self) -> usize {
        self.lock().outbox.len()
    }

    /// Exports asked for and not yet uploaded: (command id = snapshot id, newsletter).
    pub fn take_exports(&self) -> Vec<(CommandId, NewsletterId)> {
        std::mem::take(&mut self.lock().exports)
    }

    /// Every command executed, with its result, in order (a repeated command once).
    pub fn executed(&self) -> Vec<(CommandId, CommandResult)> {
        self.lock().executed.clone()
    }

    /// A newsletter's assignments as snapshot pages of `page_size` (at least one page; the last flagged).
    pub fn snapshot_pages(&self, newsletter: &NewsletterId, page_size: usize) -> Vec<SnapshotPage> {
        let all = self.assignments_of(newsletter);
        let chunks: Vec<Vec<Assignment>> =
            if all.is_empty() { vec![Vec::new()] } else { all.chunks(page_size.max(1)).map(<[_]>::to_vec).collect() };
        let count = chunks.len();
        chunks
            .into_iter()
            .enumerate()
            .map(|(n, assignments)| SnapshotPage { newsletter: newsletter.clone(), last: n + 1 == count, assignments })
            .collect()
    }

    /// Executes a command of optisync's feed against the data. A command executed before returns its first
    /// result and changes nothing.
    pub fn execute(&self, command: &OptigemCommand) -> CommandResult {
        let mut state = self.lock();
        if let Some(result) = state.results.get(command.id()) {
            return result.clone();
        }
        let result = match command {
            OptigemCommand::EndAssignment { assignment, end, unsubscription, .. } => {
                match state.assignments.get_mut(assignment) {
                    None => CommandResult::Failed { reason: "assignment not found".into() },
                    Some(stored) => {
                        // An earlier end stands.
                        stored.fields.end = Some(stored.fields.end.map_or(*end, |e| e.min(*end)));
                        stored.fields.unsubscription = Some(unsubscription.clone());
                        state.changed(std::slice::from_ref(assignment));
                        CommandResult::done()
                    }
                }
            }
            OptigemCommand::CreateAssignment { newsletter, person, email, email_target, consent, .. } => {
                let person_id = match person {
                    PersonChoice::Existing { person } if state.persons.contains_key(person) => Some(person.clone()),
                    PersonChoice::Existing { .. } => None,
                    PersonChoice::New { first_name, last_name } => {
                        let id = PersonId::new(state.id("P"));
                        let person = Person {
                            id: id.clone(),
                            first_name: first_name.clone(),
                            last_name: last_name.clone(),
                            letter_salutation: None,
                            emails: Vec::new(),
                            deletion_marked: false,
                            privacy: BTreeMap::new(),
                            delivery_blocks: Vec::new(),
                        };
                        state.persons.insert(id.clone(), person);
                        Some(id)
                    }
                };
                match person_id {
                    None => CommandResult::Failed { reason: "person not found".into() },
                    Some(person_id) => {
                        let own_email = match email_target {
                            EmailTarget::Assignment => Some(email.clone()),
                            EmailTarget::StandardCommunication => {
                                let person = state.persons.get_mut(&person_id).expect("exists");
                                if !person.emails.iter().any(|e| &e.email == email) {
                                    let priority = person.emails.iter().map(|e| e.priority).max().map_or(1, |p| p + 1);
                                    person.emails.push(RankedEmail { email: email.clone(), priority });
                                    let others = state.of_person(&person_id);
                                    state.changed(&others);
                                }
                                None
                            }
                        };
                        let fields = AssignmentFields { email: own_email, end: None, count: 1, unsubscription: None };
                        let id = state.add_assignment(&person_id, newsletter, fields);
                        state.consent.insert(id.clone(), consent.clone());
                        CommandResult::Done { assignment: Some(id), person: Some(person_id), suggestions: Vec::new() }
                    }
                }
            }
            OptigemCommand::MatchPersons { email, last_name, .. } => {
                let uses = |p: &Person| {
                    p.emails.iter().any(|e| &e.email == email)
                        || state
                            .assignments
                            .values()
                            .any(|s| s.person == p.id && s.fields.email.as_ref() == Some(email))
                };
                let same_name = |p: &Person| match (&p.last_name, last_name) {
                    (Some(a), Some(b)) => a.expose().trim().eq_ignore_ascii_case(b.expose().trim()),
                    _ => false,
                };
                let candidate = |p: &Person| {
                    let mut emails: Vec<Email> = p.emails.iter().map(|e| e.email.clone()).collect();
                    emails.extend(
                        state.assignments.values().filter(|s| s.person == p.id).filter_map(|s| s.fields.email.clone()),
                    );
                    emails.dedup();
                    Candidate {
                        person: p.id.clone(),
                        first_name: p.first_name.clone(),
                        last_name: p.last_name.clone(),
                        emails,
                    }
                };
                let mut suggestions: Vec<Candidate> =
                    state.persons.values().filter(|p| uses(p)).map(candidate).collect();
                suggestions.extend(state.persons.values().filter(|p| !uses(p) && same_name(p)).map(candidate));
                suggestions.truncate(10);
                CommandResult::Done { assignment: None, person: None, suggestions }
            }
            OptigemCommand::ExportNewsletter { id, newsletter } => {
                state.exports.push((id.clone(), newsletter.clone()));
                CommandResult::done()
            }
        };
        state.results.insert(command.id().clone(), result.clone());
        state.executed.push((command.id().clone(), result.clone()));
        result
    }
}
