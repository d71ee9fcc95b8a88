//! The planner: one pure function from (known state, input, now) to a [`Plan`].
//!
//! Every entry point goes through it: OPTIGEM change events, ESP webhooks, the reconciliation and the
//! first sync. It works on a copy of the known state, applies the rules, and returns the ESP operations
//! and OPTIGEM commands that bring both sides in step together with the state items that changed.

use crate::plan::*;
use crate::rules::{self, FieldValues, Verdict};
use crate::{
    Assignment, AssignmentId, Email, EspAccount, Known, Provider, Signup, TenantSettings, UnsubscribeCause,
    UnsubscribeSource, Unsubscription, berlin_date,
};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::BTreeSet;

/// How much earlier than a deliberate subscription an ESP report must be dated to count as older than it
/// (R-J3, R-D1). ESPs date to the second and their clocks are not OPTIGEM's: a report dated just before the
/// subscription may have happened after it, and an unsubscribe must never be lost to that (R-J3).
pub const CLOCK_MARGIN: chrono::Duration = chrono::Duration::minutes(5);

/// Plans the effects of one input. Pure: the same arguments always give the same plan, and applying the
/// plan then planning the same input again gives an empty plan.
pub fn plan(known: &Known, input: &Input, now: DateTime<Utc>) -> Plan {
    if let Input::EndConfirmed { command, assignment, newsletter, unsubscription } = input {
        // R-J2: erasure mode acts once OPTIGEM has confirmed the end; it touches nothing else.
        return crate::erasure::end_confirmed(known, command, assignment, newsletter, unsubscription, now);
    }
    if let Input::EraseOnRequest { email, request } = input {
        // R-J7: the erasure an admin asked for on the data subject's request, planned as erasure mode's.
        return crate::erasure::on_request(known, email, request, now);
    }
    let mut work = Work { tenant: known.tenant.clone(), views: known.links.clone(), out: Plan::default() };
    let today = match input {
        Input::Today { date } => *date,
        _ => berlin_date(now),
    };
    for index in 0..work.views.len() {
        if !work.in_scope(index, input) {
            continue;
        }
        let event_at = match input {
            Input::Esp(event) => Some(event.at),
            _ => None,
        };
        let mut cx =
            LinkCx { view: &mut work.views[index], tenant: &work.tenant, today, now, event_at, out: &mut work.out };
        let due = cx.refresh_due();
        let mut touched = match input {
            Input::AssignmentChanged { assignment } => cx.assignment_changed(assignment),
            Input::AssignmentDeleted { id, version, .. } => cx.assignment_deleted(id, *version),
            Input::Esp(event) => cx.esp_event(event),
            Input::Today { .. } | Input::EndConfirmed { .. } | Input::EraseOnRequest { .. } => Vec::new(),
            Input::Replan { assignment, .. } => cx.replan(assignment),
        };
        touched.extend(due);
        // Reconcile each e-mail once, in the order touched (an old address is let go before a new one).
        let mut seen = BTreeSet::new();
        for email in touched {
            if seen.insert(email.clone()) {
                cx.reconcile(&email);
            }
        }
    }
    work.spread_brevo_activations();
    work.finish(known)
}

struct Work {
    tenant: TenantSettings,
    views: Vec<LinkView>,
    out: Plan,
}

impl Work {
    fn in_scope(&self, index: usize, input: &Input) -> bool {
        let link = &self.views[index].link;
        match input {
            Input::AssignmentChanged { assignment } => link.newsletter == assignment.newsletter,
            Input::AssignmentDeleted { newsletter, .. } => &link.newsletter == newsletter,
            // R-E2: account-wide events (list None) reach every link of the account.
            Input::Esp(e) => link.esp == e.esp && e.list.as_ref().is_none_or(|list| list == &link.list),
            Input::Today { .. } => true,
            // R-A10: the settings that changed are the link's (or apply to each link of the tenant).
            Input::Replan { link: id, .. } => &link.id == id,
            Input::EndConfirmed { .. } | Input::EraseOnRequest { .. } => false,
        }
    }

    /// Brevo's blacklist is account-wide: an un-blacklisting for one link is true for all links of the
    /// account that know the contact (R-D1, R-E2).
    fn spread_brevo_activations(&mut self) {
        let activated: Vec<(EspAccount, Email)> = self
            .out
            .esp
            .iter()
            .filter(|a| a.esp.provider == Provider::Brevo && a.op == EspOp::Activate)
            .map(|a| (a.esp.clone(), a.email.clone()))
            .collect();
        for (esp, email) in activated {
            for view in self.views.iter_mut().filter(|v| v.link.esp == esp) {
                if let Some(state) = view.recipients.get_mut(&email) {
                    state.active = true;
                }
            }
        }
    }

    /// Turns the differences between the working copy and what was known into state writes.
    fn finish(mut self, known: &Known) -> Plan {
        for (view, before) in self.views.iter().zip(&known.links) {
            let link = &view.link.id;
            for (id, entry) in &view.mirror {
                if before.mirror.get(id) != Some(entry) {
                    self.out.writes.push(StateWrite::Mirror { link: link.clone(), entry: Box::new(entry.clone()) });
                }
            }
            for (email, state) in &view.recipients {
                if before.recipients.get(email) != Some(state) {
                    self.out.writes.push(StateWrite::Recipient {
                        link: link.clone(),
                        email: email.clone(),
                        state: state.clone(),
                    });
                }
            }
            for (email, entry) in &view.approvals {
                if before.approvals.get(email) != Some(entry) {
                    self.out.writes.push(StateWrite::Approval { entry: entry.clone() });
                }
            }
        }
        self.out
    }
}

/// Planning for one link.
struct LinkCx<'a> {
    view: &'a mut LinkView,
    tenant: &'a TenantSettings,
    today: NaiveDate,
    now: DateTime<Utc>,
    /// When the ESP event being planned happened, if the input is one.
    event_at: Option<DateTime<Utc>>,
    out: &'a mut Plan,
}

impl LinkCx<'_> {
    fn is_segment(&self) -> bool {
        self.view.link.segment.is_some()
    }

    /// The first sync: the ESP wins on active status (R-F3, R-F5).
    fn is_first_sync(&self) -> bool {
        self.view.link.status == crate::LinkStatus::Linking
    }

    /// Records a write of membership or active status (R-C6), dated no earlier than the ESP report it
    /// answers, so that report is recognised as superseded when it comes again.
    fn wrote(&self, state: &mut RecipientState, op: WrittenOp) {
        state.written = Some(Written { op, at: self.write_time() });
    }

    fn write_time(&self) -> DateTime<Utc> {
        self.event_at.map_or(self.now, |a| a.max(self.now))
    }

    fn source(&self, cause: UnsubscribeCause) -> UnsubscribeSource {
        UnsubscribeSource { provider: self.view.link.esp.provider, account: self.view.link.esp.account.clone(), cause }
    }

    fn esp(&mut self, email: &Email, op: EspOp) {
        let link = &self.view.link;
        self.out.esp.push(EspAction {
            link: link.id.clone(),
            esp: link.esp.clone(),
            list: link.list.clone(),
            email: email.clone(),
            op,
        });
    }

    fn members(&self, email: &Email) -> Vec<AssignmentId> {
        self.view
            .mirror
            .values()
            .filter(|e| e.snapshot.is_some() && e.email.as_ref() == Some(email))
            .map(|e| e.id.clone())
            .collect()
    }

    fn active_members(&self, email: &Email) -> Vec<AssignmentId> {
        self.members(email).into_iter().filter(|id| self.view.mirror[id].effectively_active()).collect()
    }

    /// R-A9: re-evaluates the entries whose next transition date has come; returns the e-mails touched.
    fn refresh_due(&mut self) -> BTreeSet<Email> {
        let due: Vec<AssignmentId> = self
            .view
            .mirror
            .values()
            .filter(|e| e.snapshot.is_some() && e.next_transition.is_some_and(|d| d <= self.today))
            .map(|e| e.id.clone())
            .collect();
        due.iter().filter_map(|id| self.reevaluate(id)).collect()
    }

    /// R-A10: the link's settings (or the tenant's R-A6 setting) changed since the entry was evaluated: its
    /// stored snapshot is evaluated again with them, whatever version the link has seen. Its e-mail is
    /// returned, so that the recipient is brought in step (listed, deactivated, or the newly mapped fields
    /// sent, R-D3).
    fn replan(&mut self, id: &AssignmentId) -> Vec<Email> {
        self.reevaluate(id).into_iter().collect()
    }

    /// Evaluates a mirror entry's stored snapshot again (R-A9, R-A10) and returns its e-mail; nothing for an
    /// unknown or deleted entry. Neither time nor a settings change is a deliberate subscription:
    /// `subscribed_at` stays (R-J3).
    fn reevaluate(&mut self, id: &AssignmentId) -> Option<Email> {
        let entry = self.view.mirror.get(id)?;
        let snapshot = entry.snapshot.clone()?;
        let was_active = entry.effectively_active();
        let settings = &self.view.link.settings;
        let verdict = rules::verdict(&snapshot, settings, self.tenant, self.today);
        let next = rules::next_transition(&snapshot, settings, self.today);
        let entry = self.view.mirror.get_mut(id).expect("present");
        entry.verdict = verdict;
        entry.next_transition = next;
        if !entry.verdict.is_active() {
            entry.end_requested = None;
        }
        let email = entry.email.clone()?;
        if was_active && !entry.effectively_active() {
            self.ended_in_optigem(id, &email);
        }
        Some(email)
    }

    /// R-D1…D5: a new snapshot from OPTIGEM.
    fn assignment_changed(&mut self, a: &Assignment) -> Vec<Email> {
        let old = self.view.mirror.get(&a.id).cloned();
        if old.as_ref().is_some_and(|o| o.has_seen(a.version)) {
            return Vec::new(); // an older or equal version changes nothing
        }
        let settings = &self.view.link.settings;
        let verdict = rules::verdict(a, settings, self.tenant, self.today);
        let email = rules::email_used(a).cloned();
        // R-J2, R-J3: an address erased in this link (only its keyed hash left) is not mirrored again by a
        // change of an assignment that is not active (the ended one's version after the erasure, or a
        // stale one): the entry keeps its id and version, so that no older version revives it, and no
        // snapshot, names or address. An active assignment goes on below (R-J3 decides on it).
        if !verdict.is_active() && email.as_ref().is_some_and(|e| self.view.erased.contains_key(e)) {
            let was_active = old.as_ref().is_some_and(MirrorEntry::effectively_active);
            let old_email = old.as_ref().and_then(|o| o.email.clone());
            let forgotten = crate::erasure::forgotten(a.id.clone(), a.version);
            self.view.mirror.insert(a.id.clone(), forgotten);
            if was_active
                && old_email == email
                && let Some(e) = &email
            {
                self.ended_in_optigem(&a.id, e);
            }
            // A former address that is not the erased one is brought in step as any change of e-mail.
            return old_email.filter(|o| Some(o) != email.as_ref()).into_iter().collect();
        }
        // R-J3: the last deliberate subscription. A change of e-mail is none (B7): an assignment that merely
        // took an address which unsubscribed does not re-subscribe it; `email_since` dates the change.
        let (subscribed_at, email_since) = match &old {
            None => (Some(self.approved_at(a, email.as_ref()).unwrap_or(a.created_at)), None),
            Some(o) => {
                let reactivated = verdict.is_active() && (o.snapshot.is_none() || !o.verdict.is_active());
                if reactivated {
                    (Some(a.changed_at), None)
                } else if o.email != email {
                    (o.subscribed_at, Some(a.changed_at))
                } else {
                    (o.subscribed_at, o.email_since)
                }
            }
        };
        let entry = MirrorEntry {
            id: a.id.clone(),
            version: a.version,
            snapshot: Some(a.clone()),
            email: email.clone(),
            next_transition: rules::next_transition(a, &self.view.link.settings, self.today),
            subscribed_at,
            email_since,
            // A pending end stays while OPTIGEM still shows the assignment active (stale data, R-J3).
            end_requested: if verdict.is_active() { old.as_ref().and_then(|o| o.end_requested.clone()) } else { None },
            verdict,
        };
        let was_active = old.as_ref().is_some_and(MirrorEntry::effectively_active);
        let old_email = old.and_then(|o| o.email);
        let now_active = entry.effectively_active();
        self.view.mirror.insert(a.id.clone(), entry);
        if was_active && !now_active && old_email == email {
            if let Some(e) = &email {
                self.ended_in_optigem(&a.id, e);
            }
        } else if was_active
            && !now_active
            && self.is_segment()
            && let Some(old) = &old_email
        {
            // R-G5: ended with a new address. A new address alone changes nothing in the group: the
            // segment's state overwrites it at the next sync (R-G4).
            self.deactivate_segment_recipient(old);
        }
        if now_active && let Some(e) = &email {
            self.resolve_pending_approval(e);
        }
        old_email.into_iter().chain(email).collect()
    }

    /// R-J3 (B8): a first snapshot that is the assignment an approval asked for is subscribed since the
    /// approver's decision, not since OPTIGEM carried the command out: an approval decided before the
    /// recipient revoked consent re-subscribes nobody. Recognised once per approval, by the e-mail and the
    /// person chosen; a later assignment of that e-mail is a subscription of its own.
    fn approved_at(&mut self, a: &Assignment, email: Option<&Email>) -> Option<DateTime<Utc>> {
        let entry = self.view.approvals.get_mut(email?)?;
        let Some(Decision::Approve { person, at, .. }) = &entry.decision else { return None };
        let chosen = match person {
            PersonChoice::Existing { person } => person == &a.person.id,
            PersonChoice::New { .. } => true,
        };
        if entry.status != ApprovalStatus::Approved || entry.created.is_some() || !chosen {
            return None;
        }
        let at = (*at).min(a.created_at);
        entry.created = Some(a.id.clone());
        Some(at)
    }

    /// R-A5, R-D2: the assignment was deleted in OPTIGEM.
    fn assignment_deleted(&mut self, id: &AssignmentId, version: u64) -> Vec<Email> {
        let old = self.view.mirror.get(id).cloned();
        if old.as_ref().is_some_and(|o| o.has_seen(version)) {
            return Vec::new();
        }
        let was_active = old.as_ref().is_some_and(MirrorEntry::effectively_active);
        let email = old.as_ref().and_then(|o| o.email.clone());
        if was_active && let Some(e) = &email {
            self.ended_in_optigem(id, e);
        }
        // Keep the id and version so an older snapshot arriving later cannot resurrect it; drop the rest.
        self.view.mirror.insert(
            id.clone(),
            MirrorEntry {
                id: id.clone(),
                version,
                snapshot: None,
                email: None,
                verdict: Verdict::deleted(),
                next_transition: None,
                subscribed_at: None,
                email_since: None,
                end_requested: None,
            },
        );
        email.into_iter().collect()
    }

    /// An assignment that was active is no longer, by a change, a deletion or time, without a change of
    /// e-mail.
    ///
    /// R-C4: the shared recipient is deactivated, and that ends every other assignment of the newsletter
    /// with the same e-mail. R-G5: on a segment link the receiver is deactivated in the whole group.
    fn ended_in_optigem(&mut self, ended: &AssignmentId, email: &Email) {
        if self.is_segment() {
            self.deactivate_segment_recipient(email);
        }
        let others: Vec<AssignmentId> = self.active_members(email).into_iter().filter(|id| id != ended).collect();
        let source = self.source(UnsubscribeCause::DuplicateEnded);
        for id in others {
            self.request_end(&id, source.clone(), self.today);
        }
    }

    /// R-G5: deactivation within a segment is impossible, so the receiver is deactivated in the group.
    fn deactivate_segment_recipient(&mut self, email: &Email) {
        let at = self.write_time();
        let state = self
            .view
            .recipients
            .entry(email.clone())
            .or_insert_with(|| RecipientState { listed: true, ..RecipientState::default() });
        if state.active {
            state.active = false;
            state.listed = true;
            state.written = Some(Written { op: WrittenOp::Deactivated, at });
            self.esp(email, EspOp::Deactivate);
        }
    }

    /// R-E1: asks OPTIGEM to end an assignment: end = the month before `date`'s month unless an earlier end
    /// stands; the exact date and the source go into the unsubscription record.
    fn request_end(&mut self, id: &AssignmentId, source: UnsubscribeSource, date: NaiveDate) {
        let entry = self.view.mirror.get_mut(id).expect("member of the mirror");
        let Some(snapshot) = &entry.snapshot else { return };
        let end = rules::unsubscribe_end(snapshot.end, date);
        // R-E1: the snapshot's version tells the episodes apart (an end, a re-activation in OPTIGEM, an end
        // again on one day are two commands), and keeps the id of a redelivered input the same.
        let version = entry.version.to_string();
        let command = command_id("end", &[id.as_str(), &version, &date.to_string(), &format!("{:?}", source.cause)]);
        let unsubscription = Unsubscription { date, source };
        entry.end_requested =
            Some(EndRequest { command: command.clone(), end, unsubscription: unsubscription.clone() });
        self.out.commands.push(OptigemCommand::EndAssignment {
            id: command,
            assignment: id.clone(),
            newsletter: snapshot.newsletter.clone(),
            end,
            unsubscription,
        });
    }

    fn resolve_pending_approval(&mut self, email: &Email) {
        if let Some(entry) = self.view.approvals.get_mut(email)
            && entry.status == ApprovalStatus::Pending
        {
            entry.status = ApprovalStatus::Resolved;
        }
    }

    /// Brings the recipient of one e-mail in this link's list in step with the mirror (R-C4, R-D1…D5, R-J3).
    fn reconcile(&mut self, email: &Email) {
        if self.is_segment() {
            // R-G2: a segment link never pushes OPTIGEM's state to the ESP (R-G5 is handled on the change).
            // R-G4: an active assignment is expected in the segment; the next sync's sweep ends it if the
            // recipient is not there.
            if !self.active_members(email).is_empty() {
                let mut state = self.view.recipients.get(email).cloned().unwrap_or_default();
                state.listed = true;
                state.linked = true;
                self.put_recipient(email, state);
            }
            return;
        }
        let provider = self.view.link.esp.provider;
        let mut state = self.recipient(email);
        let mut active = self.active_members(email);

        // R-J3: after an unsubscribe only a deliberate new subscription re-subscribes.
        if let Some(tombstone) = state.tombstone.clone() {
            let deliberate: Vec<_> = active
                .iter()
                .filter_map(|id| self.view.mirror[id].subscribed_at)
                .filter(|at| *at > tombstone.at)
                .collect();
            if let Some(latest) = deliberate.iter().max() {
                state.tombstone = None;
                state.subscribed_at = Some(*latest);
            } else if !active.is_empty() {
                // Stale data, an e-mail change or an approval decided before the revocation (B7, B8): ended
                // like the unsubscribe ended the others (R-E1), never as of before the assignment started.
                for id in std::mem::take(&mut active) {
                    let start = self.view.mirror[&id].started_at().map(berlin_date);
                    let date = berlin_date(tombstone.at).max(start.unwrap_or(NaiveDate::MIN));
                    self.request_end(&id, tombstone.source.clone(), date);
                }
            }
        }

        if !active.is_empty() {
            // R-C4: one recipient for all duplicates; fields from a deterministic source.
            let source = rules::field_source(active.iter().filter_map(|id| self.view.mirror[id].snapshot.as_ref()))
                .expect("active members have snapshots");
            let fields = rules::mapped_fields(source, &self.view.link.settings.mapping);
            state.linked = true;
            let listing = !state.listed;
            if listing {
                // R-D1: create if missing, put on the list.
                self.esp(email, EspOp::Upsert { fields: fields.clone() });
                self.esp(email, EspOp::AddToList);
                state.listed = true;
                state.synced_fields = Some(fields);
                state.adopt_fields = false;
                self.wrote(&mut state, WrittenOp::Listed);
                if provider == Provider::CleverReach {
                    state.active = true; // a receiver put into a group is active there
                }
                // R-D1: a recipient deactivated in the ESP that optisync never saw is activated too; not at
                // the first sync, where it stays inactive and its assignment is ended (R-F3, R-F5). Only a
                // deactivation the ESP dates before the subscription: one it does not date, or dates after
                // (an unsubscribe whose webhook was lost), is the recipient's and is never undone (R-J3);
                // the next listing ends the assignment for it.
                let subscribed = active.iter().filter_map(|id| self.view.mirror[id].subscribed_at).max();
                if !self.is_first_sync()
                    && let Some(observed) = self.view.observed.get(email)
                    && !observed.active
                    && let (Some(since), Some(subscribed)) = (observed.since, subscribed)
                    && since + CLOCK_MARGIN <= subscribed
                {
                    state.active = false;
                }
            } else {
                self.update_fields(email, &mut state, fields);
            }
            let activating = !state.active;
            if activating {
                // R-D1: CleverReach `setactive` in the group; Brevo: off the account-wide blacklist.
                self.esp(email, EspOp::Activate);
                state.active = true;
                self.wrote(&mut state, WrittenOp::Activated);
            }
            if (listing || activating) && !self.is_first_sync() {
                // R-D1, R-J3: the deliberate subscription acted on; a deactivation the ESP reports from
                // before it ends nothing.
                let latest = active.iter().filter_map(|id| self.view.mirror[id].subscribed_at).max();
                state.subscribed_at = state.subscribed_at.max(latest);
            }
        } else if state.linked && state.listed {
            // R-D2: deactivate in this list only.
            match provider {
                Provider::Brevo => {
                    self.esp(email, EspOp::RemoveFromList);
                    state.listed = false;
                    self.wrote(&mut state, WrittenOp::Removed);
                }
                Provider::CleverReach if state.active => {
                    self.esp(email, EspOp::Deactivate);
                    state.active = false;
                    self.wrote(&mut state, WrittenOp::Deactivated);
                }
                Provider::CleverReach => {}
            }
        }
        self.put_recipient(email, state);
    }

    /// R-D3 / R-C5: write the mapped fields whose OPTIGEM value changed, and only those; a signup's names
    /// are adopted as they are until then, so a changed salutation does not overwrite a first name kept
    /// different at approval.
    fn update_fields(&mut self, email: &Email, state: &mut RecipientState, fields: FieldValues) {
        if state.adopt_fields {
            state.adopt_fields = false;
            state.synced_fields = Some(fields);
        } else if state.synced_fields.as_ref() != Some(&fields) {
            let changed = match &state.synced_fields {
                Some(before) => FieldValues(
                    fields
                        .0
                        .iter()
                        .filter(|(k, v)| before.0.get(*k) != Some(*v))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ),
                None => fields.clone(),
            };
            if !changed.is_empty() {
                self.esp(email, EspOp::UpdateFields { fields: changed });
            }
            state.synced_fields = Some(fields);
        }
    }

    /// What the link holds of a recipient it keeps no state of: nothing, or for an erased one only the
    /// tombstone its keyed hash keeps (R-J2, R-J3).
    fn baseline(&self, email: &Email) -> RecipientState {
        match self.view.erased.get(email) {
            Some(tombstone) => RecipientState { tombstone: Some(tombstone.clone()), ..RecipientState::default() },
            None => RecipientState::default(),
        }
    }

    fn recipient(&self, email: &Email) -> RecipientState {
        self.view.recipients.get(email).cloned().unwrap_or_else(|| self.baseline(email))
    }

    fn put_recipient(&mut self, email: &Email, state: RecipientState) {
        if self.view.recipients.get(email) != Some(&state)
            && (state != self.baseline(email) || self.view.recipients.contains_key(email))
        {
            self.view.recipients.insert(email.clone(), state);
        }
    }

    /// R-E1…E6, R-G2…G4: something observed in the ESP.
    fn esp_event(&mut self, event: &EspEvent) -> Vec<Email> {
        let email = &event.email;
        match &event.what {
            EspEventKind::Unsubscribed => self.left(email, event.at, UnsubscribeCause::Unsubscribed),
            EspEventKind::Deactivated => self.left(email, event.at, UnsubscribeCause::Deactivated),
            EspEventKind::Deleted => self.left(email, event.at, UnsubscribeCause::Deleted),
            EspEventKind::Blacklisted => self.blacklisted(email, event.at),
            EspEventKind::BlacklistedOnList => self.blacklisted_on_list(email, event.at),
            // R-G2, R-G3 (B10): a segment link hears the whole group's receivers; only the segment listing
            // tells who belongs to its newsletter, so a group signup queues nothing there.
            EspEventKind::Signup { .. } if self.view.link.segment.is_some() => Vec::new(),
            EspEventKind::Signup { signup } => self.signup(email, signup, event.at),
            EspEventKind::EmailChanged { new_email, signup } => {
                // R-E4: a deletion of the old recipient plus a new one.
                let mut touched = self.left(email, event.at, UnsubscribeCause::Deleted);
                if self.view.link.segment.is_none() {
                    touched.extend(self.signup(new_email, signup, event.at));
                }
                touched
            }
            // R-E5: field changes inside the ESP never flow back; R-E6: bounces are not synchronised.
            EspEventKind::FieldsChanged | EspEventKind::Bounced => Vec::new(),
            EspEventKind::SegmentMembership { segment, member, signup } => {
                if self.view.link.segment.as_ref() == Some(segment) {
                    self.segment_membership(email, *member, signup, event.at);
                }
                Vec::new()
            }
        }
    }

    /// R-E2, R-E9: the address is on the account-wide blacklist (Brevo's, CleverReach's): an unsubscribe
    /// of every newsletter linked to the account.
    /// Neither a Brevo listing nor CleverReach's blacklist says who put the address there, so it is not
    /// taken as the recipient's own revocation (R-J4, B18): its cause is `blacklisted`.
    fn blacklisted(&mut self, email: &Email, at: DateTime<Utc>) -> Vec<Email> {
        self.left_as(email, at, UnsubscribeCause::Blacklisted, true)
    }

    /// R-E1/R-E2: the recipient left the list (unsubscribe, deactivation, deletion, blacklist).
    fn left(&mut self, email: &Email, at: DateTime<Utc>, cause: UnsubscribeCause) -> Vec<Email> {
        self.left_as(email, at, cause, false)
    }

    /// [`LinkCx::left`]; `account_wide` for a blacklisting of the whole ESP account (R-E2, R-E9).
    fn left_as(&mut self, email: &Email, at: DateTime<Utc>, cause: UnsubscribeCause, account_wide: bool) -> Vec<Email> {
        let provider = self.view.link.esp.provider;
        if cause == UnsubscribeCause::Deleted
            && self.view.erased.contains_key(email)
            && !self.view.recipients.contains_key(email)
        {
            return Vec::new(); // R-J2: the echo of optisync's own erasure; only the hash remains
        }
        let mut state = self.recipient(email);
        if cause != UnsubscribeCause::Deleted && echoes_own_write(&state, cause, at) {
            return Vec::new(); // R-C6: only what optisync wrote itself, or a state it has written over since
        }
        if state.subscribed_at.is_some_and(|s| s >= at + CLOCK_MARGIN) {
            // Older than a deliberate (re-)subscription the link acted on: it ends nothing (R-J3). R-D1: the
            // ESP still shows the recipient deactivated from before the subscription, so it is activated.
            if cause == UnsubscribeCause::Deleted || !state.listed {
                return Vec::new();
            }
            state.active = false;
            self.put_recipient(email, state);
            return vec![email.clone()];
        }
        match cause {
            UnsubscribeCause::Deleted => {
                state.listed = false;
                state.active = true;
            }
            _ if provider == Provider::Brevo => {
                // R-E2: blacklisted account-wide; take the contact off this list too, so that a later
                // removal from the blacklist revives no old list.
                state.active = false;
                if state.listed {
                    self.esp(email, EspOp::RemoveFromList);
                    state.listed = false;
                }
            }
            _ if account_wide && state.listed && state.active => {
                // R-E9: on CleverReach's account-wide blacklist; deactivated in this group too, so that a
                // later removal from the blacklist revives no old group (as R-E2 does at Brevo). A receiver
                // the account setting already removed from the group is not there to deactivate: the
                // gateway takes that as done.
                self.esp(email, EspOp::Deactivate);
                state.active = false;
                self.wrote(&mut state, WrittenOp::Deactivated);
            }
            _ => state.active = false,
        }
        let source = self.source(cause);
        if state.tombstone.as_ref().is_none_or(|t| t.at < at) {
            state.tombstone = Some(Tombstone { at, source: source.clone() });
        }
        // R-E1 (R-C4): every assignment of the newsletter with this e-mail is ended; one ended earlier keeps
        // its end and gets the unsubscription record, unless it holds this unsubscribe or a later one.
        // The date is never before the assignment's start (its last deliberate subscription): a
        // deactivation the ESP dates years before the assignment existed ends it as of its start.
        let to_end: Vec<(AssignmentId, NaiveDate)> = self
            .members(email)
            .into_iter()
            .filter_map(|id| {
                let e = &self.view.mirror[&id];
                let s = e.snapshot.as_ref()?;
                let start = berlin_date(e.started_at().unwrap_or(s.created_at));
                let date = berlin_date(at).max(start);
                let computed = crate::YearMonth::of(date).prev();
                let changes =
                    s.end.is_none_or(|end| end > computed) || s.unsubscription.as_ref().is_none_or(|u| u.date < date);
                (e.end_requested.is_none() && changes).then_some((id, date))
            })
            .collect();
        for (id, date) in to_end {
            self.request_end(&id, source.clone(), date);
        }
        if let Some(entry) = self.view.approvals.get_mut(email)
            && entry.status == ApprovalStatus::Pending
        {
            entry.status = ApprovalStatus::Withdrawn;
        }
        self.put_recipient(email, state);
        Vec::new()
    }

    /// R-E2 (B9): a listing showed the contact on this link's list while it is blacklisted in Brevo. Whatever
    /// the link held (nothing at a first sync; off the list, if someone put it back in Brevo), the contact
    /// is on the list: it is taken off, the blacklisting is recorded as a tombstone (R-J3), and any
    /// assignment of the newsletter still active with that address is ended as for a blacklisting. The
    /// removal is recorded as optisync's own write, so the same listing again, dated before it, changes
    /// nothing (R-C6). The listing does not say who blacklisted the contact: its cause is `Blacklisted`,
    /// never taken for the recipient's own revocation (R-J4, B18).
    fn blacklisted_on_list(&mut self, email: &Email, at: DateTime<Utc>) -> Vec<Email> {
        if self.view.link.esp.provider != Provider::Brevo {
            return Vec::new();
        }
        let state = self.view.recipients.get(email).cloned().unwrap_or_default();
        if state.listed && state.active {
            // A receiving recipient blacklisted: the listing sends these as ends (R-E2, R-F8).
            return self.left(email, at, UnsubscribeCause::Blacklisted);
        }
        if state.written.is_some_and(|w| w.at >= at && matches!(w.op, WrittenOp::Removed | WrittenOp::Activated)) {
            return Vec::new(); // R-C6: a listing from before optisync's own removal or un-blacklisting
        }
        self.view.recipients.insert(email.clone(), RecipientState { listed: true, active: false, ..state });
        let touched = self.left(email, at, UnsubscribeCause::Blacklisted);
        let written = Written { op: WrittenOp::Removed, at: self.write_time() };
        if let Some(state) = self.view.recipients.get_mut(email).filter(|s| !s.listed) {
            state.written = Some(written);
        }
        touched
    }

    /// R-E3 / R-C2: a new recipient or signup; unless an active assignment already uses the e-mail, it
    /// waits in the approval queue with its consent evidence (R-J1), and OPTIGEM is asked for suggestions.
    /// R-E8: so does a recipient re-activated in the ESP while its assignment is ended.
    fn signup(&mut self, email: &Email, signup: &Signup, at: DateTime<Utc>) -> Vec<Email> {
        let mut state = self.recipient(email);
        // R-E8: CleverReach's reports are re-read, so a receiver active now in a group where the link holds
        // it inactive was re-activated there, whatever date its first activation carries.
        let reactivated = self.view.link.esp.provider == Provider::CleverReach && state.listed && !state.active;
        if !reactivated && state.tombstone.as_ref().is_some_and(|t| t.at >= at) {
            return Vec::new(); // older than the unsubscribe: stale
        }
        // R-C6: Brevo dates a list addition when it happened, so one from before optisync took the contact
        // off the list is the echo of optisync's own earlier addition. (CleverReach's reports are re-read,
        // so they show the receiver as it is now: active there now is news, R-E8.)
        if self.view.link.esp.provider == Provider::Brevo
            && state.written.is_some_and(|w| w.op == WrittenOp::Removed && w.at >= at)
        {
            return Vec::new();
        }
        let linked_active = !self.active_members(email).is_empty();
        state.listed = true;
        state.active = true;
        if !linked_active {
            // A new opt-in after an unsubscribe is a new recipient: the sync does not take it off again
            // until an assignment is linked (R-J3).
            state.linked = false;
            state.adopt_fields = true;
            self.enqueue_approval(email, signup, at);
        }
        self.put_recipient(email, state);
        Vec::new()
    }

    fn enqueue_approval(&mut self, email: &Email, signup: &Signup, at: DateTime<Utc>) {
        let link = self.view.link.id.clone();
        match self.view.approvals.get_mut(email) {
            Some(entry) if entry.status == ApprovalStatus::Pending => {
                if at > entry.last_seen {
                    // A second signup updates the entry, never duplicates it.
                    entry.last_seen = at;
                    entry.signups += 1;
                    merge_signup(&mut entry.signup, signup);
                } else if !entry.signup.has_names() && signup.has_names() {
                    // R-E3, R-C3: the names the signup's report lacked (Brevo's `list_addition`), from a
                    // listing; OPTIGEM is asked again, now with them, and the suggestions come from that.
                    entry.signup.first_name = signup.first_name.clone();
                    entry.signup.last_name = signup.last_name.clone();
                    let id = command_id("match-names", &[link.as_str(), email.key(), &entry.last_seen.to_rfc3339()]);
                    self.out.commands.push(OptigemCommand::MatchPersons {
                        id: id.clone(),
                        link: link.clone(),
                        email: email.clone(),
                        first_name: entry.signup.first_name.clone(),
                        last_name: entry.signup.last_name.clone(),
                    });
                    entry.match_command = id;
                }
            }
            // A redelivery of a signup that was decided (or withdrawn) since changes nothing.
            Some(entry) if entry.last_seen >= at => {}
            _ => {
                // R-J1: a new signup after a decided (or withdrawn) one starts a new entry; the earlier
                // signups' evidence stays in it, the new one is added.
                let mut signup = signup.clone();
                if let Some(earlier) = self.view.approvals.get(email) {
                    let mut evidence = earlier.signup.evidence.clone();
                    evidence.add(&signup.evidence);
                    signup.evidence = evidence;
                }
                let id = command_id("match", &[link.as_str(), email.key(), &at.to_rfc3339()]);
                self.out.commands.push(OptigemCommand::MatchPersons {
                    id: id.clone(),
                    link: link.clone(),
                    email: email.clone(),
                    first_name: signup.first_name.clone(),
                    last_name: signup.last_name.clone(),
                });
                self.view.approvals.insert(
                    email.clone(),
                    ApprovalEntry {
                        link,
                        email: email.clone(),
                        signup,
                        first_seen: at,
                        last_seen: at,
                        signups: 1,
                        status: ApprovalStatus::Pending,
                        match_command: id,
                        decision: None,
                        created: None,
                    },
                );
            }
        }
    }

    /// R-G2…G4: segment membership flows CleverReach → OPTIGEM only, and the segment's state wins.
    fn segment_membership(&mut self, email: &Email, member: bool, signup: &Signup, at: DateTime<Utc>) {
        let mut state = self.view.recipients.get(email).cloned().unwrap_or_default();
        let active = self.active_members(email);
        let members = self.members(email);
        if member {
            state.listed = true;
            state.active = true;
            if !active.is_empty() {
                state.pending_create = None;
            } else if members.is_empty() {
                self.enqueue_approval(email, signup, at); // R-G3, R-J1: with the names and evidence CleverReach holds
            } else if state.pending_create.is_none() {
                // R-G4: a known member in the segment has the assignment active.
                let source =
                    rules::field_source(members.iter().filter_map(|id| self.view.mirror[id].snapshot.as_ref()))
                        .expect("members have snapshots");
                let id = command_id("segment-rejoin", &[self.view.link.id.as_str(), email.key(), &at.to_rfc3339()]);
                self.out.commands.push(OptigemCommand::CreateAssignment {
                    id: id.clone(),
                    newsletter: self.view.link.newsletter.clone(),
                    person: PersonChoice::Existing { person: source.person.id.clone() },
                    email: email.clone(),
                    email_target: self.tenant.approved_email_target,
                    consent: signup.evidence.clone(), // R-J1: what CleverReach holds of this membership
                });
                state.pending_create = Some(id);
            }
        } else {
            // R-G4: a member who left the segment has the assignment ended; on a segment link "listed"
            // means in the segment.
            let source = self.source(UnsubscribeCause::LeftSegment);
            for id in active {
                self.request_end(&id, source.clone(), berlin_date(at));
            }
            state.pending_create = None;
            state.listed = false;
        }
        self.put_recipient(email, state);
    }
}

/// R-C6: whether an ESP report that the recipient left (deactivated, unsubscribed, blacklisted) only
/// echoes optisync's own write: a deactivation optisync made and still holds (a state written before
/// `written` existed counts when it shows the recipient inactive without a tombstone), or any report dated
/// before optisync's own later activation.
fn echoes_own_write(state: &RecipientState, cause: UnsubscribeCause, at: DateTime<Utc>) -> bool {
    let own_deactivation = cause == UnsubscribeCause::Deactivated
        && state.listed
        && !state.active
        && state.written.map_or(state.tombstone.is_none(), |w| w.op == WrittenOp::Deactivated);
    let activated_since = state.written.is_some_and(|w| w.op == WrittenOp::Activated && w.at >= at);
    own_deactivation || activated_since
}

fn merge_signup(into: &mut Signup, newer: &Signup) {
    if newer.first_name.is_some() {
        into.first_name = newer.first_name.clone();
    }
    if newer.last_name.is_some() {
        into.last_name = newer.last_name.clone();
    }
    into.evidence.add(&newer.evidence); // R-J1: adds, never overwrites
}
