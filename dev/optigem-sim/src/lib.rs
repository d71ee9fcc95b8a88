//! A simulated OPTIGEM for the end-to-end tests and the local sandbox, with a connector written against
//! the contract (`docs/connector.md`).
//!
//! * [`SimOptigem`] holds persons and assignments as OPTIGEM does, gives every change a version from one
//!   counter, records an `assignment.changed` / `assignment.deleted` event for every change, and executes
//!   optisync's commands against its own data (idempotent by command id).
//! * [`Connector`] exchanges with optisync over HTTP: signed change events, the command feed by cursor,
//!   results and snapshot pages.
//! * [`server`] is a small JSON API to look at and change the data by hand (the local sandbox).
//!
//! Nothing here logs: the data is personal (names, e-mails) even when simulated.

mod connector;
pub mod server;

pub use connector::{Connector, ConnectorError, FEED_LIMIT};

use chrono::{DateTime, Utc};
use optisync_connector::wire::{ChangeEvent, SnapshotPage};
use optisync_domain::{
    Assignment, AssignmentId, Candidate, CommandId, CommandResult, ConsentEvidence, DeliveryBlock, Email, EmailTarget,
    NewsletterId, OptigemCommand, Person, PersonChoice, PersonId, PersonalText, PrivacyCategory, PrivacyStatus,
    RankedEmail, Unsubscription, YearMonth,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// Most candidates a `match_persons` result offers.
pub const MAX_SUGGESTIONS: usize = 10;

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
    /// The one change counter of the database: every version comes from it.
    counter: u64,
    next_person: u64,
    next_assignment: u64,
    persons: BTreeMap<PersonId, Person>,
    assignments: BTreeMap<AssignmentId, Stored>,
    outbox: VecDeque<ChangeEvent>,
    results: HashMap<CommandId, CommandResult>,
    executed: Vec<(CommandId, CommandResult)>,
    created: usize,
    consent: BTreeMap<AssignmentId, ConsentEvidence>,
    /// Exports asked for and not yet uploaded.
    exports: Vec<(CommandId, NewsletterId)>,
    /// The deletion reports received (R-J2), in order.
    erasure_reports: Vec<OptigemCommand>,
    /// Every export's assignments as they stood when it was executed, so a repeated upload of its pages
    /// is byte for byte the same (optisync answers a page number with other content 409).
    exported: HashMap<CommandId, (NewsletterId, Vec<Assignment>)>,
}

/// Ids in the order they were made: "P-2" before "P-10".
fn creation_order(id: &str) -> (usize, &str) {
    (id.len(), id)
}

/// A name as OPTIGEM keeps it: a blank one is none.
pub(crate) fn text(value: Option<String>) -> Option<PersonalText> {
    value.filter(|v| !v.trim().is_empty()).map(PersonalText::new)
}

fn same_name(a: &PersonalText, b: &PersonalText) -> bool {
    a.expose().trim().to_lowercase() == b.expose().trim().to_lowercase()
}

impl State {
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

    /// Assignment ids matching a filter, in creation order.
    fn ids_where(&self, keep: impl Fn(&Stored) -> bool) -> Vec<AssignmentId> {
        let mut ids: Vec<AssignmentId> =
            self.assignments.iter().filter(|(_, s)| keep(s)).map(|(id, _)| id.clone()).collect();
        ids.sort_by(|a, b| creation_order(a.as_str()).cmp(&creation_order(b.as_str())));
        ids
    }

    fn snapshots(&self, ids: &[AssignmentId]) -> Vec<Assignment> {
        ids.iter().filter_map(|id| self.snapshot(id)).collect()
    }

    /// A new version of each of these assignments, and an `assignment.changed` for each.
    fn changed(&mut self, ids: &[AssignmentId]) {
        for id in ids {
            self.counter += 1;
            let (counter, now) = (self.counter, self.now);
            if let Some(stored) = self.assignments.get_mut(id) {
                stored.version = counter;
                stored.changed_at = now;
            }
            if let Some(snapshot) = self.snapshot(id) {
                self.outbox.push_back(ChangeEvent::AssignmentChanged { assignment: Box::new(snapshot) });
            }
        }
    }

    fn deleted(&mut self, id: &AssignmentId) -> bool {
        let Some(stored) = self.assignments.remove(id) else { return false };
        self.counter += 1;
        self.consent.remove(id);
        self.outbox.push_back(ChangeEvent::AssignmentDeleted {
            id: id.clone(),
            newsletter: stored.newsletter,
            version: self.counter,
        });
        true
    }

    fn of_person(&self, person: &PersonId) -> Vec<AssignmentId> {
        self.ids_where(|s| &s.person == person)
    }

    fn insert_person(&mut self, mut person: Person) -> PersonId {
        self.next_person += 1;
        let id = PersonId::new(format!("P-{}", self.next_person));
        person.id = id.clone();
        self.persons.insert(id.clone(), person);
        id
    }

    fn insert_assignment(
        &mut self,
        person: &PersonId,
        newsletter: &NewsletterId,
        fields: AssignmentFields,
    ) -> Option<AssignmentId> {
        if !self.persons.contains_key(person) {
            return None;
        }
        self.next_assignment += 1;
        let id = AssignmentId::new(format!("A-{}", self.next_assignment));
        let now = self.now;
        let stored = Stored {
            newsletter: newsletter.clone(),
            person: person.clone(),
            fields,
            version: 0,
            created_at: now,
            changed_at: now,
        };
        self.assignments.insert(id.clone(), stored);
        self.changed(std::slice::from_ref(&id));
        Some(id)
    }

    fn execute(&mut self, command: &OptigemCommand) -> CommandResult {
        match command {
            OptigemCommand::EndAssignment { assignment, newsletter, end, unsubscription, .. } => {
                self.end_assignment(assignment, newsletter, *end, unsubscription)
            }
            OptigemCommand::CreateAssignment { newsletter, person, email, email_target, consent, .. } => {
                self.create_assignment(newsletter, person, email, *email_target, consent)
            }
            OptigemCommand::MatchPersons { email, last_name, .. } => CommandResult::Done {
                assignment: None,
                person: None,
                suggestions: self.match_persons(email, last_name),
            },
            OptigemCommand::ErasureReport { .. } => {
                // R-J2: the deletion report asks the staff to clean OPTIGEM; the simulation keeps it.
                self.erasure_reports.push(command.clone());
                CommandResult::done()
            }
            OptigemCommand::ExportNewsletter { id, newsletter } => {
                let assignments = self.snapshots(&self.ids_where(|s| &s.newsletter == newsletter));
                self.exported.insert(id.clone(), (newsletter.clone(), assignments));
                self.exports.push((id.clone(), newsletter.clone()));
                CommandResult::done()
            }
        }
    }

    fn end_assignment(
        &mut self,
        id: &AssignmentId,
        newsletter: &NewsletterId,
        end: YearMonth,
        unsubscription: &Unsubscription,
    ) -> CommandResult {
        let Some(stored) = self.assignments.get_mut(id) else {
            return CommandResult::Failed { reason: "assignment not found".into() };
        };
        if &stored.newsletter != newsletter {
            return CommandResult::Failed { reason: "assignment belongs to another newsletter".into() };
        }
        // An earlier end stands.
        stored.fields.end = Some(stored.fields.end.map_or(end, |existing| existing.min(end)));
        stored.fields.unsubscription = Some(unsubscription.clone());
        self.changed(std::slice::from_ref(id));
        CommandResult::done()
    }

    fn create_assignment(
        &mut self,
        newsletter: &NewsletterId,
        choice: &PersonChoice,
        email: &Email,
        target: EmailTarget,
        consent: &ConsentEvidence,
    ) -> CommandResult {
        let person = match choice {
            PersonChoice::Existing { person } if self.persons.contains_key(person) => person.clone(),
            PersonChoice::Existing { .. } => return CommandResult::Failed { reason: "person not found".into() },
            PersonChoice::New { first_name, last_name } => self.insert_person(Person {
                id: PersonId::new(""),
                first_name: first_name.clone().filter(|t| !t.expose().trim().is_empty()),
                last_name: last_name.clone().filter(|t| !t.expose().trim().is_empty()),
                letter_salutation: None,
                emails: Vec::new(),
                deletion_marked: false,
                privacy: BTreeMap::new(),
                delivery_blocks: Vec::new(),
            }),
        };
        let own_email = match target {
            EmailTarget::Assignment => Some(email.clone()),
            EmailTarget::StandardCommunication => {
                let entry = self.persons.get_mut(&person).expect("checked above");
                if !entry.emails.iter().any(|e| &e.email == email) {
                    let priority = entry.emails.iter().map(|e| e.priority).max().map_or(1, |p| p + 1);
                    entry.emails.push(RankedEmail { email: email.clone(), priority });
                    // The person changed: a new version of each of its other assignments.
                    let others = self.of_person(&person);
                    self.changed(&others);
                }
                None
            }
        };
        let fields = AssignmentFields { email: own_email, end: None, count: 1, unsubscription: None };
        let assignment = self.insert_assignment(&person, newsletter, fields).expect("the person exists");
        self.consent.insert(assignment.clone(), consent.clone());
        self.created += 1;
        CommandResult::Done { assignment: Some(assignment), person: Some(person), suggestions: Vec::new() }
    }

    /// Persons using the e-mail (standard communication or an assignment's own), then persons of the same
    /// last name; each in creation order, at most [`MAX_SUGGESTIONS`].
    fn match_persons(&self, email: &Email, last_name: &Option<PersonalText>) -> Vec<Candidate> {
        let emails_of = |person: &Person| {
            let mut all: Vec<Email> = person.emails.iter().map(|e| e.email.clone()).collect();
            for id in self.of_person(&person.id) {
                if let Some(own) = self.assignments.get(&id).and_then(|s| s.fields.email.clone())
                    && !all.contains(&own)
                {
                    all.push(own);
                }
            }
            all
        };
        let mut persons: Vec<&Person> = self.persons.values().collect();
        persons.sort_by(|a, b| creation_order(a.id.as_str()).cmp(&creation_order(b.id.as_str())));
        let mut by_email = Vec::new();
        let mut by_name = Vec::new();
        for person in persons {
            let emails = emails_of(person);
            let candidate = |emails| Candidate {
                person: person.id.clone(),
                first_name: person.first_name.clone(),
                last_name: person.last_name.clone(),
                emails,
            };
            if emails.contains(email) {
                by_email.push(candidate(emails));
            } else if let (Some(theirs), Some(wanted)) = (&person.last_name, last_name)
                && same_name(theirs, wanted)
            {
                by_name.push(candidate(emails));
            }
        }
        by_email.extend(by_name);
        by_email.truncate(MAX_SUGGESTIONS);
        by_email
    }
}

/// Splits assignments into pages of `page_size` (at least one page; the last one flagged).
fn paginate(newsletter: &NewsletterId, assignments: &[Assignment], page_size: usize) -> Vec<SnapshotPage> {
    let chunks: Vec<&[Assignment]> =
        if assignments.is_empty() { vec![&[]] } else { assignments.chunks(page_size.max(1)).collect() };
    let count = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(n, chunk)| SnapshotPage {
            newsletter: newsletter.clone(),
            last: n + 1 == count,
            assignments: chunk.to_vec(),
        })
        .collect()
}

/// The simulated OPTIGEM database. Clones share the data.
#[derive(Clone)]
pub struct SimOptigem {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for SimOptigem {
    /// Counts only: the data is personal.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("SimOptigem")
            .field("persons", &state.persons.len())
            .field("assignments", &state.assignments.len())
            .field("pending_events", &state.outbox.len())
            .finish()
    }
}

impl SimOptigem {
    /// An empty database whose clock stands at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self { state: Arc::new(Mutex::new(State { now, ..State::default() })) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test must not poison the data for the others that share it.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the clock (creation and change times of what happens next).
    pub fn set_now(&self, now: DateTime<Utc>) {
        self.lock().now = now;
    }

    /// The clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.lock().now
    }

    /// The change counter: the version of the latest change.
    pub fn version(&self) -> u64 {
        self.lock().counter
    }

    /// Creates a person with the next id ("P-1", "P-2", …). No event: a person without assignments is of no
    /// interest to optisync.
    ///
    /// # Panics
    /// If an e-mail is not valid (test data).
    pub fn add_person(&self, draft: PersonDraft) -> PersonId {
        let emails = draft
            .emails
            .into_iter()
            .map(|(email, priority)| RankedEmail { email: Email::parse(&email).expect("a valid e-mail"), priority })
            .collect();
        self.insert_person(Person {
            id: PersonId::new(""),
            first_name: text(draft.first_name),
            last_name: text(draft.last_name),
            letter_salutation: text(draft.letter_salutation),
            emails,
            deletion_marked: draft.deletion_marked,
            privacy: draft.privacy,
            delivery_blocks: draft.delivery_blocks,
        })
    }

    /// Creates a person from a complete record; its `id` is replaced by the next one.
    pub fn insert_person(&self, person: Person) -> PersonId {
        self.lock().insert_person(person)
    }

    /// Changes a person; every assignment of the person gets a new version and an `assignment.changed`.
    /// The id cannot be changed. An unknown person: nothing happens and `change` is not called.
    pub fn update_person(&self, id: &PersonId, change: impl FnOnce(&mut Person)) {
        let mut state = self.lock();
        let Some(person) = state.persons.get_mut(id) else { return };
        change(person);
        person.id = id.clone();
        let ids = state.of_person(id);
        state.changed(&ids);
    }

    /// Deletes a person and with it every assignment (an `assignment.deleted` each). Returns whether the
    /// person existed.
    pub fn delete_person(&self, id: &PersonId) -> bool {
        let mut state = self.lock();
        for assignment in state.of_person(id) {
            state.deleted(&assignment);
        }
        state.persons.remove(id).is_some()
    }

    /// A person.
    pub fn person(&self, id: &PersonId) -> Option<Person> {
        self.lock().persons.get(id).cloned()
    }

    /// Every person, in creation order.
    pub fn persons(&self) -> Vec<Person> {
        let mut persons: Vec<Person> = self.lock().persons.values().cloned().collect();
        persons.sort_by(|a, b| creation_order(a.id.as_str()).cmp(&creation_order(b.id.as_str())));
        persons
    }

    /// Creates an assignment ("A-1", "A-2", …) of a person to a newsletter: a version and an event.
    ///
    /// # Panics
    /// If the person does not exist or the e-mail is not valid (test data); see
    /// [`SimOptigem::insert_assignment`] for a fallible form.
    pub fn add_assignment(&self, person: &PersonId, newsletter: &NewsletterId, draft: AssignmentDraft) -> AssignmentId {
        let fields = AssignmentFields {
            email: draft.email.map(|e| Email::parse(&e).expect("a valid e-mail")),
            end: draft.end,
            count: draft.count,
            unsubscription: None,
        };
        self.insert_assignment(person, newsletter, fields).expect("no such person")
    }

    /// Creates an assignment with these fields; `None` if the person does not exist.
    pub fn insert_assignment(
        &self,
        person: &PersonId,
        newsletter: &NewsletterId,
        fields: AssignmentFields,
    ) -> Option<AssignmentId> {
        self.lock().insert_assignment(person, newsletter, fields)
    }

    /// Changes an assignment: a new version and an event. An unknown assignment: nothing happens and
    /// `change` is not called.
    pub fn update_assignment(&self, id: &AssignmentId, change: impl FnOnce(&mut AssignmentFields)) {
        let mut state = self.lock();
        let Some(stored) = state.assignments.get_mut(id) else { return };
        change(&mut stored.fields);
        state.changed(std::slice::from_ref(id));
    }

    /// Deletes an assignment: an `assignment.deleted` with a new version. Returns whether it existed.
    pub fn delete_assignment(&self, id: &AssignmentId) -> bool {
        self.lock().deleted(id)
    }

    /// The assignment as the connector sends it (person embedded).
    pub fn assignment(&self, id: &AssignmentId) -> Option<Assignment> {
        self.lock().snapshot(id)
    }

    /// Every assignment of a newsletter, in creation order.
    pub fn assignments_of(&self, newsletter: &NewsletterId) -> Vec<Assignment> {
        let state = self.lock();
        state.snapshots(&state.ids_where(|s| &s.newsletter == newsletter))
    }

    /// Every assignment, in creation order.
    pub fn assignments(&self) -> Vec<Assignment> {
        let state = self.lock();
        state.snapshots(&state.ids_where(|_| true))
    }

    /// The consent evidence kept with an assignment created by `create_assignment` (R-J1).
    pub fn consent_of(&self, id: &AssignmentId) -> Option<ConsentEvidence> {
        self.lock().consent.get(id).cloned()
    }

    /// Takes the change events recorded so far, oldest first.
    pub fn take_events(&self) -> Vec<ChangeEvent> {
        self.lock().outbox.drain(..).collect()
    }

    /// Puts events that could not be sent back in front of the outbox, so they go out first next time.
    pub fn return_events(&self, events: Vec<ChangeEvent>) {
        let mut state = self.lock();
        for event in events.into_iter().rev() {
            state.outbox.push_front(event);
        }
    }

    /// How many change events wait.
    pub fn pending_events(&self) -> usize {
        self.lock().outbox.len()
    }

    /// Exports asked for and not yet uploaded: (command id = snapshot id, newsletter).
    pub fn take_exports(&self) -> Vec<(CommandId, NewsletterId)> {
        std::mem::take(&mut self.lock().exports)
    }

    /// An executed export's pages: the newsletter's assignments as they stood when the command was first
    /// executed, in pages of `page_size` (the last flagged). `None` for an id that is no executed export.
    pub fn export_pages(&self, export: &CommandId, page_size: usize) -> Option<Vec<SnapshotPage>> {
        let state = self.lock();
        let (newsletter, assignments) = state.exported.get(export)?;
        Some(paginate(newsletter, assignments, page_size))
    }

    /// The connector uploaded an export's pages: it is no longer pending.
    pub(crate) fn uploaded(&self, export: &CommandId) {
        self.lock().exports.retain(|(id, _)| id != export);
    }

    /// A newsletter's assignments now, as snapshot pages of `page_size` (at least one page; the last
    /// flagged; an empty newsletter is one empty last page).
    pub fn snapshot_pages(&self, newsletter: &NewsletterId, page_size: usize) -> Vec<SnapshotPage> {
        paginate(newsletter, &self.assignments_of(newsletter), page_size)
    }

    /// Every command executed, with its result, in order (a repeated command once).
    pub fn executed(&self) -> Vec<(CommandId, CommandResult)> {
        self.lock().executed.clone()
    }

    /// The result of a command executed before.
    pub fn result_of(&self, command: &CommandId) -> Option<CommandResult> {
        self.lock().results.get(command).cloned()
    }

    /// The deletion reports (`erasure_report` commands) received so far (R-J2).
    pub fn erasure_reports(&self) -> Vec<OptigemCommand> {
        self.lock().erasure_reports.clone()
    }

    /// How many assignments `create_assignment` commands created.
    pub fn created_assignments(&self) -> usize {
        self.lock().created
    }

    /// Executes a command of optisync's feed against the data. A command executed before returns its first
    /// result and changes nothing. A failure's reason holds no personal data.
    pub fn execute(&self, command: &OptigemCommand) -> CommandResult {
        let mut state = self.lock();
        if let Some(result) = state.results.get(command.id()) {
            return result.clone();
        }
        let result = state.execute(command);
        state.results.insert(command.id().clone(), result.clone());
        state.executed.push((command.id().clone(), result.clone()));
        result
    }
}

/// Removes quoted values from a parser message, so no e-mail or name reaches an error:
/// `invalid type: string "max@…", expected u64` → `invalid type: string, expected u64`.
pub(crate) fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        match c {
            '"' => quoted = !quoted,
            _ if quoted => {}
            _ => out.push(c),
        }
    }
    out.replace(" ,", ",").replace("  ", " ")
}
