//! The ESP in memory (both providers' semantics) and a re-reader that answers from what a test told it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optisync_domain::{Email, EspAccount, EspAction, EspEvent, EspOp, Link, ListId, Provider};
use optisync_ports::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

/// A recipient as the in-memory ESP holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryContact {
    /// Brevo: on the account-wide blacklist.
    pub blacklisted: bool,
    /// Brevo: when it was blacklisted, where a test said ([`MemoryEsp::blacklist_at`]; the contact's
    /// statistics).
    pub blacklisted_since: Option<DateTime<Utc>>,
    /// Attribute values (exposed: this is the ESP's own data).
    pub fields: BTreeMap<String, String>,
}

#[derive(Default)]
struct EspInner {
    contacts: BTreeMap<(EspAccount, String), MemoryContact>,
    members: BTreeMap<(EspAccount, ListId, String), bool>,
    mutating_calls: u64,
    fail_next: Vec<EspError>,
    page_size: usize,
    list_reads: u64,
    fail_at: Option<(u64, EspError)>,
    /// Addresses whose next `apply` fails, with the error (a batch answer listing one address as failed).
    fail_for: BTreeMap<String, EspError>,
    segments: BTreeSet<(EspAccount, ListId, String, String)>,
    applied: Vec<EspAction>,
    /// How many recipients were read ahead of a first listing (R-D1).
    observations: u64,
    /// When the ESP's own users last changed a member's state, where a test said (CleverReach's
    /// `activated`/`deactivated` stamps); listed as the member's `changed_at`.
    changed: BTreeMap<(EspAccount, ListId, String), DateTime<Utc>>,
    /// CleverReach: the account-wide blacklist and the hard bounces it blocks (R-E9), with their times.
    cleverreach_blacklist: BTreeMap<(EspAccount, String), DateTime<Utc>>,
    hard_bounces: BTreeMap<(EspAccount, String), DateTime<Utc>>,
    contact_reads: u64,
}

/// An ESP in memory that follows both providers' semantics: Brevo's account-wide blacklist with
/// add/remove list membership, CleverReach's active flag per group.
#[derive(Default)]
pub struct MemoryEsp {
    inner: Mutex<EspInner>,
}

impl MemoryEsp {
    /// An empty ESP.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a list holds the member: whether it is active there (Brevo: listed and not blacklisted), and
    /// the stamp of its state where a test gave one ([`Self::set_member_at`]).
    pub fn member(&self, esp: &EspAccount, list: &ListId, email: &str) -> Option<(bool, Option<DateTime<Utc>>)> {
        let inner = self.inner.lock().expect("esp lock");
        let key = (esp.clone(), list.clone(), email.to_lowercase());
        let active = *inner.members.get(&key)?;
        let blacklisted = esp.provider == Provider::Brevo
            && inner.contacts.get(&(esp.clone(), email.to_lowercase())).is_some_and(|c| c.blacklisted);
        Some((active && !blacklisted, inner.changed.get(&key).copied()))
    }

    /// How many times optisync read a recipient before it first listed it ([`EspGateway::observe`]).
    pub fn observations(&self) -> u64 {
        self.inner.lock().expect("esp lock").observations
    }

    /// Every write applied so far, in order (what the ESP would report back as echoes, R-C6).
    pub fn applied(&self) -> Vec<EspAction> {
        self.inner.lock().expect("esp lock").applied.clone()
    }

    /// The e-mails (R-B2 keys) that receive mail from a list: Brevo: listed and not blacklisted;
    /// CleverReach: active in the group.
    pub fn receiving(&self, esp: &EspAccount, list: &ListId) -> BTreeSet<String> {
        let inner = self.inner.lock().expect("esp lock");
        inner
            .members
            .iter()
            .filter(|((acc, l, _), active)| acc == esp && l == list && **active)
            .filter(|((acc, _, key), _)| {
                esp.provider != Provider::Brevo
                    || !inner.contacts.get(&(acc.clone(), key.clone())).is_some_and(|c| c.blacklisted)
            })
            .map(|((_, _, key), _)| key.clone())
            .collect()
    }

    /// A contact, if the account has it.
    pub fn contact(&self, esp: &EspAccount, email: &str) -> Option<MemoryContact> {
        self.inner.lock().expect("esp lock").contacts.get(&(esp.clone(), email.to_lowercase())).cloned()
    }

    /// Puts a Brevo contact on the blacklist, as an unsubscribe in Brevo does.
    pub fn blacklist(&self, esp: &EspAccount, email: &str) {
        self.inner
            .lock()
            .expect("esp lock")
            .contacts
            .entry((esp.clone(), email.to_lowercase()))
            .or_default()
            .blacklisted = true;
    }

    /// [`Self::blacklist`] on a known date (what the contact's statistics then show, R-D1).
    pub fn blacklist_at(&self, esp: &EspAccount, email: &str, at: DateTime<Utc>) {
        let mut inner = self.inner.lock().expect("esp lock");
        let contact = inner.contacts.entry((esp.clone(), email.to_lowercase())).or_default();
        contact.blacklisted = true;
        contact.blacklisted_since = Some(at);
    }

    /// Puts an address on a CleverReach account's blacklist at `at` (R-E9): its receivers stay in their
    /// groups as they are, and the account lists it among its blocked addresses.
    pub fn cleverreach_blacklist(&self, esp: &EspAccount, email: &str, at: DateTime<Utc>) {
        self.inner.lock().expect("esp lock").cleverreach_blacklist.insert((esp.clone(), email.to_lowercase()), at);
    }

    /// A hard bounce at `at` that the CleverReach account blocks without deactivating the receiver (R-E9).
    pub fn hard_bounce(&self, esp: &EspAccount, email: &str, at: DateTime<Utc>) {
        self.inner.lock().expect("esp lock").hard_bounces.insert((esp.clone(), email.to_lowercase()), at);
    }

    /// How many mutating operations were applied.
    pub fn mutating_calls(&self) -> u64 {
        self.inner.lock().expect("esp lock").mutating_calls
    }

    /// Sets a member's state in a list as the ESP's own users would (an admin deactivating a receiver, a
    /// form signup), without optisync's involvement.
    pub fn set_member(&self, esp: &EspAccount, list: &ListId, email: &str, active: bool) {
        let mut inner = self.inner.lock().expect("esp lock");
        inner.contacts.entry((esp.clone(), email.to_lowercase())).or_default();
        inner.members.insert((esp.clone(), list.clone(), email.to_lowercase()), active);
    }

    /// [`Self::set_member`] with the date the ESP shows for the change (a receiver deactivated years ago).
    pub fn set_member_at(&self, esp: &EspAccount, list: &ListId, email: &str, active: bool, at: DateTime<Utc>) {
        self.set_member(esp, list, email, active);
        let key = (esp.clone(), list.clone(), email.to_lowercase());
        self.inner.lock().expect("esp lock").changed.insert(key, at);
    }

    /// Sets an attribute of a contact as the ESP's own users would.
    pub fn set_field(&self, esp: &EspAccount, email: &str, name: &str, value: &str) {
        let mut inner = self.inner.lock().expect("esp lock");
        let contact = inner.contacts.entry((esp.clone(), email.to_lowercase())).or_default();
        contact.fields.insert(name.to_owned(), value.to_owned());
    }

    /// Takes a member off a list (or deletes a receiver from a group) as the ESP's own users would.
    pub fn remove_member(&self, esp: &EspAccount, list: &ListId, email: &str) {
        self.inner.lock().expect("esp lock").members.remove(&(esp.clone(), list.clone(), email.to_lowercase()));
    }

    /// Puts a receiver in or out of a CleverReach segment (a filter of the group): a segment link lists the
    /// receivers in it that are active in the group (R-G1).
    pub fn set_segment_member(&self, esp: &EspAccount, list: &ListId, segment: &str, email: &str, member: bool) {
        let key = (esp.clone(), list.clone(), segment.to_owned(), email.to_lowercase());
        let mut inner = self.inner.lock().expect("esp lock");
        if member {
            inner.segments.insert(key);
        } else {
            inner.segments.remove(&key);
        }
    }

    /// Members per page of [`EspLister::list_page`] (default 100).
    pub fn set_page_size(&self, size: usize) {
        self.inner.lock().expect("esp lock").page_size = size.max(1);
    }

    /// How many list pages were read.
    pub fn list_reads(&self) -> u64 {
        self.inner.lock().expect("esp lock").list_reads
    }

    /// How many single contacts were read back for a signup ([`EspReader::signup`]).
    pub fn contact_reads(&self) -> u64 {
        self.inner.lock().expect("esp lock").contact_reads
    }

    /// Makes the `apply` that would perform mutating operation number `call` (counting from 1 over the
    /// ESP's life) fail with this error, as a crash in the middle of a run would.
    pub fn fail_at(&self, call: u64, error: EspError) {
        self.inner.lock().expect("esp lock").fail_at = Some((call, error));
    }

    /// Makes the next `apply` naming this address fail with this error (fault injection: the ESP refusing
    /// one recipient of a batch).
    pub fn fail_for(&self, email: &str, error: EspError) {
        self.inner.lock().expect("esp lock").fail_for.insert(email.to_owned(), error);
    }

    /// Makes the next `apply` fail with this error (fault injection).
    pub fn fail_next(&self, error: EspError) {
        self.inner.lock().expect("esp lock").fail_next.push(error);
    }
}

#[async_trait]
impl EspLister for MemoryEsp {
    /// Members in address order; the cursor is the last address of the previous page. Brevo members
    /// count as listed while they are on the list (blacklisted ones are listed but inactive); CleverReach
    /// members while they are in the group, active or not; a segment link's members are the receivers
    /// in the segment that are active in the group.
    async fn list_page(
        &self,
        link: &Link,
        _since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<ListPage, EspError> {
        let mut inner = self.inner.lock().expect("esp lock");
        if let Some(error) = inner.fail_next.pop() {
            return Err(error);
        }
        inner.list_reads += 1;
        let size = if inner.page_size == 0 { 100 } else { inner.page_size };
        let after = cursor.unwrap_or("").to_owned();
        let mut members = Vec::new();
        let mut more = false;
        for ((acc, list, key), active) in inner.members.range((link.esp.clone(), link.list.clone(), after.clone())..) {
            if acc != &link.esp || list != &link.list {
                break;
            }
            if key.as_str() <= after.as_str() && cursor.is_some() {
                continue;
            }
            if members.len() == size {
                more = true;
                break;
            }
            if let Some(segment) = &link.segment {
                let in_segment = (acc.clone(), list.clone(), segment.as_str().to_owned(), key.clone());
                if !*active || !inner.segments.contains(&in_segment) {
                    continue;
                }
            }
            let blacklisted = link.esp.provider == Provider::Brevo
                && inner.contacts.get(&(acc.clone(), key.clone())).is_some_and(|c| c.blacklisted);
            let Ok(email) = Email::parse(key) else { continue };
            members.push(ListedMember {
                email,
                active: *active && !blacklisted,
                blacklisted,
                changed_at: inner.changed.get(&(acc.clone(), list.clone(), key.clone())).copied(),
                signup: optisync_domain::Signup::default(),
            });
        }
        let next = if more { members.last().map(|m| m.email.key().to_owned()) } else { None };
        Ok(ListPage { members, next })
    }

    /// CleverReach: the account's blacklist as the first page, its blocked hard bounces as the second
    /// (cursor `bounces`); Brevo has none (its blacklist shows in the listing).
    async fn blocked_page(&self, link: &Link, cursor: Option<&str>) -> Result<BlockedPage, EspError> {
        let mut inner = self.inner.lock().expect("esp lock");
        if let Some(error) = inner.fail_next.pop() {
            return Err(error);
        }
        if link.esp.provider != Provider::CleverReach {
            return Ok(BlockedPage::default());
        }
        let (entries, block, next) = match cursor {
            None => (&inner.cleverreach_blacklist, Block::Blacklisted, Some("bounces".to_owned())),
            Some(_) => (&inner.hard_bounces, Block::HardBounce, None),
        };
        let blocked = entries
            .iter()
            .filter(|((acc, _), _)| acc == &link.esp)
            .filter_map(|((_, key), at)| Some(BlockedAddress { email: Email::parse(key).ok()?, block, at: Some(*at) }))
            .collect();
        Ok(BlockedPage { blocked, next })
    }

    async fn is_listed(&self, link: &Link, email: &Email) -> Result<bool, EspError> {
        let inner = self.inner.lock().expect("esp lock");
        let member = inner.members.get(&(link.esp.clone(), link.list.clone(), email.key().to_owned()));
        Ok(match &link.segment {
            Some(segment) => {
                member == Some(&true)
                    && inner.segments.contains(&(
                        link.esp.clone(),
                        link.list.clone(),
                        segment.as_str().to_owned(),
                        email.key().to_owned(),
                    ))
            }
            None => member.is_some(),
        })
    }
}

#[async_trait]
impl EspReader for MemoryEsp {
    /// Nothing to re-read: the events the tests feed carry what they mean.
    async fn reread(&self, _: &Reread) -> Result<Vec<EspEvent>, EspError> {
        Ok(Vec::new())
    }

    /// A Brevo contact's names from the attributes the link maps them to, as Brevo's `GET /contacts/{email}`
    /// gives them; `None` for an unknown contact or another provider.
    async fn signup(&self, link: &Link, email: &Email) -> Result<Option<optisync_domain::Signup>, EspError> {
        let mut inner = self.inner.lock().expect("esp lock");
        if link.esp.provider != Provider::Brevo {
            return Ok(None);
        }
        inner.contact_reads += 1;
        let Some(contact) = inner.contacts.get(&(link.esp.clone(), email.key().to_owned())) else { return Ok(None) };
        let name = |attribute: &Option<optisync_domain::AttributeName>| {
            let value = contact.fields.get(attribute.as_ref()?.as_str())?;
            Some(optisync_domain::PersonalText::new(value.as_str()))
        };
        let mapping = &link.settings.mapping;
        Ok(Some(optisync_domain::Signup {
            first_name: name(&mapping.first_name),
            last_name: name(&mapping.last_name),
            ..Default::default()
        }))
    }
}

#[async_trait]
impl EspGateway for MemoryEsp {
    async fn observe(&self, link: &Link, email: &Email) -> Result<Option<optisync_domain::Observed>, EspError> {
        let mut inner = self.inner.lock().expect("esp lock");
        if let Some(error) = inner.fail_next.pop() {
            return Err(error);
        }
        inner.observations += 1;
        let contact = inner.contacts.get(&(link.esp.clone(), email.key().to_owned()));
        Ok(match link.esp.provider {
            Provider::Brevo => {
                contact.map(|c| optisync_domain::Observed { active: !c.blacklisted, since: c.blacklisted_since })
            }
            Provider::CleverReach => {
                let key = (link.esp.clone(), link.list.clone(), email.key().to_owned());
                let since = inner.changed.get(&key).copied();
                inner.members.get(&key).map(|active| optisync_domain::Observed { active: *active, since })
            }
        })
    }

    async fn apply(&self, actions: &[EspAction]) -> Result<(), EspError> {
        let mut inner = self.inner.lock().expect("esp lock");
        if let Some(error) = inner.fail_next.pop() {
            return Err(error);
        }
        if let Some(email) = actions.iter().map(|a| a.email.key().to_owned()).find(|e| inner.fail_for.contains_key(e))
            && let Some(error) = inner.fail_for.remove(&email)
        {
            return Err(error);
        }
        if let Some((call, _)) = &inner.fail_at
            && *call <= inner.mutating_calls + actions.len() as u64
            && let Some((_, error)) = inner.fail_at.take()
        {
            return Err(error);
        }
        for a in actions {
            inner.mutating_calls += 1;
            inner.applied.push(a.clone());
            let contact_key = (a.esp.clone(), a.email.key().to_owned());
            let member_key = (a.esp.clone(), a.list.clone(), a.email.key().to_owned());
            // optisync's own change of the member's state replaces the stamp (an addition of a member
            // already in the list changes nothing).
            if matches!(a.op, EspOp::Activate | EspOp::Deactivate | EspOp::RemoveFromList | EspOp::Delete) {
                inner.changed.remove(&member_key);
            }
            let cleverreach = a.esp.provider == Provider::CleverReach;
            match &a.op {
                EspOp::Upsert { fields } | EspOp::UpdateFields { fields } => {
                    let contact = inner.contacts.entry(contact_key).or_default();
                    for (k, v) in &fields.0 {
                        contact.fields.insert(k.to_string(), v.expose().to_owned());
                    }
                    if cleverreach && matches!(a.op, EspOp::Upsert { .. }) {
                        // A new receiver in a group is active; an existing one keeps its state.
                        inner.members.entry(member_key).or_insert(true);
                    }
                }
                EspOp::AddToList => {
                    inner.contacts.entry(contact_key).or_default();
                    inner.members.entry(member_key).or_insert(true);
                }
                EspOp::RemoveFromList => {
                    inner.members.remove(&member_key);
                }
                EspOp::Activate if cleverreach => {
                    inner.members.insert(member_key, true);
                }
                EspOp::Activate => {
                    let contact = inner.contacts.entry(contact_key).or_default();
                    contact.blacklisted = false;
                    contact.blacklisted_since = None;
                }
                EspOp::Deactivate => {
                    if let Some(active) = inner.members.get_mut(&member_key) {
                        *active = false;
                    }
                }
                // R-J2: CleverReach deletes the receiver from the group (a receiver belongs to its group);
                // Brevo deletes the contact account-wide, with every list membership.
                EspOp::Delete if cleverreach => {
                    inner.members.remove(&member_key);
                    let elsewhere = inner.members.keys().any(|(esp, _, e)| esp == &a.esp && e == &contact_key.1);
                    if !elsewhere {
                        inner.contacts.remove(&contact_key);
                    }
                }
                EspOp::Delete => {
                    inner.members.retain(|(esp, _, e), _| !(esp == &a.esp && e == &contact_key.1));
                    inner.contacts.remove(&contact_key);
                }
            }
        }
        Ok(())
    }
}

/// An [`EspReader`] that answers re-reads from what a test told it.
#[derive(Default)]
pub struct MemoryReader {
    answers: Mutex<HashMap<(ListId, String), Vec<EspEvent>>>,
}

impl MemoryReader {
    /// A reader that knows nothing yet (every re-read finds nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// What a re-read of this receiver in this list yields from now on.
    pub fn answer(&self, list: ListId, receiver: &str, events: Vec<EspEvent>) {
        self.answers.lock().expect("reader lock").insert((list, receiver.to_owned()), events);
    }
}

#[async_trait]
impl EspReader for MemoryReader {
    async fn reread(&self, reread: &Reread) -> Result<Vec<EspEvent>, EspError> {
        let answers = self.answers.lock().expect("reader lock");
        Ok(answers.get(&(reread.list.clone(), reread.receiver.clone())).cloned().unwrap_or_default())
    }
}
