//! In-memory implementations of the ports, for tests and for running the engine without AWS.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use optisync_domain::{
    AccountRecord, ApprovalEntry, AssignmentId, AuditEntry, CommandId, CommandResult, Email, EspAccount, EspAction,
    EspEvent, EspOp, Link, LinkId, LinkView, ListId, MirrorEntry, OptigemCommand, Provider, RecipientState, StateWrite,
    TenantId, TenantSettings,
};
use optisync_ports::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

#[derive(Debug, Clone)]
enum Item {
    Mirror(Box<MirrorEntry>),
    Recipient(Email, RecipientState),
    Approval(ApprovalEntry),
}

#[derive(Default)]
struct StoreInner {
    tenants: HashMap<TenantId, TenantSettings>,
    accounts: BTreeMap<(Provider, String), AccountRecord>,
    links: BTreeMap<LinkId, Link>,
    items: BTreeMap<ItemKey, (u64, Item)>,
    /// Mirror entries by link and e-mail key (as the table's index serves them).
    by_email: BTreeMap<(LinkId, String), BTreeSet<AssignmentId>>,
    commands: HashMap<TenantId, Vec<(u64, OptigemCommand)>>,
    command_ids: BTreeSet<(TenantId, String)>,
    results: HashMap<(TenantId, String), CommandResult>,
    leases: HashMap<String, (String, DateTime<Utc>)>,
    inbox: BTreeMap<(TenantId, String), (InboxEntry, bool)>,
    audit: BTreeMap<LinkId, Vec<AuditEntry>>,
    runs: HashMap<LinkId, (String, u64)>,
    chunks: BTreeMap<(LinkId, String, u64), String>,
    fail_next_put: Option<StoreError>,
    /// Commits left before one fails (fault injection).
    commits_before_failure: Option<u64>,
    writes: WriteCount,
}

/// Writes a store received, as a DynamoDB table would count them: one request per write call, and the
/// items it writes (a commit is one transaction of its state writes, audit entries, two items per new
/// command and the feed counter).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteCount {
    /// Write requests.
    pub requests: u64,
    /// Items written.
    pub items: u64,
}

impl StoreInner {
    fn wrote(&mut self, items: u64) {
        self.writes.requests += 1;
        self.writes.items += items;
    }
}

/// The state store in memory; conditional writes behave as in DynamoDB.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<StoreInner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next inbox `put` fail with this error (fault injection, e.g. throttling).
    pub fn fail_next_inbox_put(&self, error: StoreError) {
        self.lock().fail_next_put = Some(error);
    }

    /// Makes the commit after the next `n` fail as a lost connection would (fault injection: a process
    /// killed in the middle of a page).
    pub fn fail_commit_after(&self, n: u64) {
        self.lock().commits_before_failure = Some(n);
    }

    /// The writes received so far.
    pub fn writes(&self) -> WriteCount {
        self.lock().writes
    }

    /// Sets a tenant's settings.
    pub fn set_tenant(&self, tenant: TenantId, settings: TenantSettings) {
        self.inner.lock().expect("lock").tenants.insert(tenant, settings);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StoreInner> {
        self.inner.lock().expect("store lock")
    }
}

#[async_trait]
impl Tenants for MemoryStore {
    async fn tenant_settings(&self, tenant: &TenantId) -> Result<TenantSettings, StoreError> {
        Ok(self.lock().tenants.get(tenant).copied().unwrap_or_default())
    }

    async fn put_tenant_settings(&self, tenant: &TenantId, settings: &TenantSettings) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.wrote(1);
        inner.tenants.insert(tenant.clone(), *settings);
        Ok(())
    }

    async fn accounts(&self, tenant: &TenantId) -> Result<Vec<AccountRecord>, StoreError> {
        Ok(self.lock().accounts.values().filter(|a| &a.tenant == tenant).cloned().collect())
    }

    async fn account(&self, esp: &EspAccount) -> Result<Option<AccountRecord>, StoreError> {
        Ok(self.lock().accounts.get(&(esp.provider, esp.account.as_str().to_owned())).cloned())
    }

    async fn put_account(&self, record: &AccountRecord) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let key = (record.esp.provider, record.esp.account.as_str().to_owned());
        if inner.accounts.get(&key).is_some_and(|held| held.tenant != record.tenant) {
            return Err(StoreError::Conflict);
        }
        inner.wrote(1);
        inner.accounts.insert(key, record.clone());
        Ok(())
    }
}

#[async_trait]
impl Links for MemoryStore {
    async fn put_link(&self, link: &Link) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.wrote(1);
        inner.links.insert(link.id.clone(), link.clone());
        Ok(())
    }

    async fn links(&self, tenant: &TenantId) -> Result<Vec<Link>, StoreError> {
        Ok(self.lock().links.values().filter(|l| &l.tenant == tenant).cloned().collect())
    }

    async fn all_links(&self) -> Result<Vec<Link>, StoreError> {
        let mut links: Vec<Link> = self.lock().links.values().cloned().collect();
        links.sort_by(|a, b| (&a.tenant, &a.id).cmp(&(&b.tenant, &b.id)));
        Ok(links)
    }
}

#[async_trait]
impl SyncState for MemoryStore {
    async fn load(&self, link: &Link, slice: &Slice) -> Result<LoadedView, StoreError> {
        let inner = self.lock();
        let mut loaded = LoadedView { view: LinkView::new(link.clone()), versions: BTreeMap::new() };
        let keys: BTreeSet<&str> = slice.emails.iter().map(Email::key).collect();
        let mut ids: BTreeSet<&AssignmentId> = slice.assignments.iter().collect();
        for k in &keys {
            if let Some(found) = inner.by_email.get(&(link.id.clone(), (*k).to_owned())) {
                ids.extend(found);
            }
        }
        let mut wanted: Vec<ItemKey> = ids.into_iter().map(|id| ItemKey::Mirror(link.id.clone(), id.clone())).collect();
        for k in &keys {
            wanted.push(ItemKey::Recipient(link.id.clone(), (*k).to_owned()));
            wanted.push(ItemKey::Approval(link.id.clone(), (*k).to_owned()));
        }
        for key in wanted {
            let Some((version, item)) = inner.items.get(&key) else { continue };
            loaded.versions.insert(key, *version);
            match item {
                Item::Mirror(e) => {
                    loaded.view.mirror.insert(e.id.clone(), (**e).clone());
                }
                Item::Recipient(email, r) => {
                    loaded.view.recipients.insert(email.clone(), r.clone());
                }
                Item::Approval(a) => {
                    loaded.view.approvals.insert(a.email.clone(), a.clone());
                }
            }
        }
        Ok(loaded)
    }

    async fn due(&self, link: &Link, date: NaiveDate, limit: usize) -> Result<Vec<AssignmentId>, StoreError> {
        Ok(self
            .lock()
            .items
            .iter()
            .filter_map(|(key, (_, item))| match (key, item) {
                (ItemKey::Mirror(l, _), Item::Mirror(e))
                    if l == &link.id && e.next_transition.is_some_and(|d| d <= date) =>
                {
                    Some(e.id.clone())
                }
                _ => None,
            })
            .take(limit)
            .collect())
    }

    async fn commit(&self, tenant: &TenantId, commit: Commit) -> Result<(), StoreError> {
        let mut inner = self.lock();
        match inner.commits_before_failure {
            Some(0) => {
                inner.commits_before_failure = None;
                return Err(StoreError::Transient("the connection was lost".into()));
            }
            Some(n) => inner.commits_before_failure = Some(n - 1),
            None => {}
        }
        let mut items = commit.writes.len() as u64 + commit.audit.len() as u64;
        for (write, expected) in &commit.writes {
            let current = inner.items.get(&ItemKey::of(write)).map(|(v, _)| *v);
            if current != *expected {
                return Err(StoreError::Conflict);
            }
        }
        for (write, expected) in commit.writes {
            if let StateWrite::Mirror { link, entry } = &write {
                let old = match inner.items.get(&ItemKey::of(&write)) {
                    Some((_, Item::Mirror(old))) => old.email.as_ref().map(|e| e.key().to_owned()),
                    _ => None,
                };
                if let Some(old) = old
                    && let Some(ids) = inner.by_email.get_mut(&(link.clone(), old))
                {
                    ids.remove(&entry.id);
                }
                if let Some(email) = &entry.email {
                    inner.by_email.entry((link.clone(), email.key().to_owned())).or_default().insert(entry.id.clone());
                }
            }
            let item = match &write {
                StateWrite::Mirror { entry, .. } => Item::Mirror(entry.clone()),
                StateWrite::Recipient { email, state, .. } => Item::Recipient(email.clone(), state.clone()),
                StateWrite::Approval { entry } => Item::Approval(entry.clone()),
            };
            inner.items.insert(ItemKey::of(&write), (expected.unwrap_or(0) + 1, item));
        }
        for entry in commit.audit {
            inner.audit.entry(entry.link.clone()).or_default().push(entry);
        }
        let mut new_commands = 0;
        for command in commit.commands {
            if inner.command_ids.insert((tenant.clone(), command.id().to_string())) {
                new_commands += 1;
                let feed = inner.commands.entry(tenant.clone()).or_default();
                let seq = feed.last().map_or(1, |(s, _)| s + 1);
                feed.push((seq, command));
            }
        }
        // As the DynamoDB table counts them: a marker and a feed entry per new command, and the counter.
        items += 2 * new_commands + u64::from(new_commands > 0);
        if items > 0 {
            inner.wrote(items);
        }
        Ok(())
    }

    async fn recipients(
        &self,
        link: &LinkId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(Email, RecipientState)>, StoreError> {
        let inner = self.lock();
        let from = ItemKey::Recipient(link.clone(), after.unwrap_or("").to_owned());
        Ok(inner
            .items
            .range(from..)
            .take_while(|(key, _)| matches!(key, ItemKey::Recipient(l, _) if l == link))
            .filter_map(|(key, (_, item))| match (key, item) {
                (ItemKey::Recipient(_, k), Item::Recipient(email, state)) if after.is_none_or(|a| k.as_str() > a) => {
                    Some((email.clone(), state.clone()))
                }
                _ => None,
            })
            .take(limit)
            .collect())
    }
}

#[async_trait]
impl Leases for MemoryStore {
    async fn try_lease(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        match inner.leases.get(name) {
            Some((holder, expires)) if holder != owner && *expires > now => Ok(false),
            _ => {
                inner.wrote(1);
                inner.leases.insert(name.to_owned(), (owner.to_owned(), until));
                Ok(true)
            }
        }
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.leases.get(name).is_some_and(|(holder, _)| holder == owner) {
            inner.wrote(1);
            inner.leases.remove(name);
        }
        Ok(())
    }
}

#[async_trait]
impl CommandFeed for MemoryStore {
    async fn commands(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, OptigemCommand)>, StoreError> {
        let inner = self.lock();
        let feed = inner.commands.get(tenant).map(Vec::as_slice).unwrap_or_default();
        Ok(feed.iter().filter(|(s, _)| *s > after).take(limit).cloned().collect())
    }

    async fn command(&self, tenant: &TenantId, id: &CommandId) -> Result<Option<(u64, OptigemCommand)>, StoreError> {
        let inner = self.lock();
        let feed = inner.commands.get(tenant).map(Vec::as_slice).unwrap_or_default();
        Ok(feed.iter().find(|(_, c)| c.id() == id).cloned())
    }

    async fn record_result(&self, tenant: &TenantId, id: &CommandId, result: &CommandResult) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if !inner.command_ids.contains(&(tenant.clone(), id.to_string())) {
            return Err(StoreError::Permanent("no such command".into()));
        }
        let key = (tenant.clone(), id.to_string());
        if !inner.results.get(&key).is_some_and(CommandResult::is_done) {
            inner.wrote(1);
            inner.results.insert(key, result.clone());
        }
        Ok(())
    }

    async fn command_result(&self, tenant: &TenantId, id: &CommandId) -> Result<Option<CommandResult>, StoreError> {
        Ok(self.lock().results.get(&(tenant.clone(), id.to_string())).cloned())
    }
}

#[async_trait]
impl RunStore for MemoryStore {
    async fn run_state(&self, link: &LinkId) -> Result<Option<(String, u64)>, StoreError> {
        Ok(self.lock().runs.get(link).cloned())
    }

    async fn save_run_state(&self, link: &LinkId, value: &str, expected: Option<u64>) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.runs.get(link).map(|(_, v)| *v) != expected {
            return Err(StoreError::Conflict);
        }
        inner.wrote(1);
        inner.runs.insert(link.clone(), (value.to_owned(), expected.unwrap_or(0) + 1));
        Ok(())
    }

    async fn put_run_chunk(
        &self,
        link: &LinkId,
        run: &str,
        index: u64,
        value: &str,
        _expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.wrote(1);
        inner.chunks.insert((link.clone(), run.to_owned(), index), value.to_owned());
        Ok(())
    }

    async fn run_chunks(
        &self,
        link: &LinkId,
        run: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let from = after.map_or(0, |a| a.saturating_add(1));
        if after == Some(u64::MAX) {
            return Ok(Vec::new());
        }
        let inner = self.lock();
        Ok(inner
            .chunks
            .range((link.clone(), run.to_owned(), from)..=(link.clone(), run.to_owned(), u64::MAX))
            .take(limit)
            .map(|((_, _, i), v)| (*i, v.clone()))
            .collect())
    }
}

#[async_trait]
impl AuditLog for MemoryStore {
    async fn audit(&self, link: &LinkId, now: DateTime<Utc>, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let inner = self.lock();
        let entries = inner.audit.get(link).map(Vec::as_slice).unwrap_or_default();
        Ok(entries.iter().rev().filter(|e| e.expires_at() > now).take(limit).cloned().collect())
    }
}

#[async_trait]
impl ApprovalQueue for MemoryStore {
    async fn pending_approvals(
        &self,
        link: &LinkId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ApprovalEntry>, StoreError> {
        let inner = self.lock();
        let entries = inner.items.iter().filter_map(|(key, (_, item))| match (key, item) {
            (ItemKey::Approval(l, _), Item::Approval(entry)) if l == link => Some(entry.clone()),
            _ => None,
        });
        Ok(optisync_ports::queue_page(entries, after, limit))
    }
}

#[async_trait]
impl Inbox for MemoryStore {
    async fn put(&self, entry: &InboxEntry) -> Result<InboxPut, StoreError> {
        let mut inner = self.lock();
        if let Some(error) = inner.fail_next_put.take() {
            return Err(error);
        }
        let key = (entry.tenant.clone(), entry.key.clone());
        Ok(match inner.inbox.get(&key) {
            Some((stored, _)) if stored.fingerprint == entry.fingerprint => InboxPut::Duplicate,
            Some(_) => InboxPut::Mismatch,
            None => {
                inner.wrote(1);
                inner.inbox.insert(key, (entry.clone(), false));
                InboxPut::Stored
            }
        })
    }

    async fn get(&self, tenant: &TenantId, key: &str) -> Result<Option<InboxEntry>, StoreError> {
        Ok(self.lock().inbox.get(&(tenant.clone(), key.to_owned())).map(|(e, _)| e.clone()))
    }

    async fn mark_done(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if let Some((_, done)) = inner.inbox.get_mut(&(tenant.clone(), key.to_owned())) {
            *done = true;
            inner.wrote(1);
        }
        Ok(())
    }

    async fn pending(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<(TenantId, String)>, StoreError> {
        let inner = self.lock();
        let mut waiting: Vec<&InboxEntry> =
            inner.inbox.values().filter(|(e, done)| !done && e.received_at < before).map(|(e, _)| e).collect();
        waiting.sort_by(|a, b| (a.received_at, &a.tenant, &a.key).cmp(&(b.received_at, &b.tenant, &b.key)));
        Ok(waiting.into_iter().take(limit).map(|e| (e.tenant.clone(), e.key.clone())).collect())
    }
}

/// A recipient as the in-memory ESP holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryContact {
    /// Brevo: on the account-wide blacklist.
    pub blacklisted: bool,
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
    segments: BTreeSet<(EspAccount, ListId, String, String)>,
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

    /// Makes the `apply` that would perform mutating operation number `call` (counting from 1 over the
    /// ESP's life) fail with this error, as a crash in the middle of a run would.
    pub fn fail_at(&self, call: u64, error: EspError) {
        self.inner.lock().expect("esp lock").fail_at = Some((call, error));
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
                changed_at: None,
                signup: optisync_domain::Signup::default(),
            });
        }
        let next = if more { members.last().map(|m| m.email.key().to_owned()) } else { None };
        Ok(ListPage { members, next })
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
impl EspGateway for MemoryEsp {
    async fn apply(&self, actions: &[EspAction]) -> Result<(), EspError> {
        let mut inner = self.inner.lock().expect("esp lock");
        if let Some(error) = inner.fail_next.pop() {
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
            let contact_key = (a.esp.clone(), a.email.key().to_owned());
            let member_key = (a.esp.clone(), a.list.clone(), a.email.key().to_owned());
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
                EspOp::Activate => inner.contacts.entry(contact_key).or_default().blacklisted = false,
                EspOp::Deactivate => {
                    if let Some(active) = inner.members.get_mut(&member_key) {
                        *active = false;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The event bus in memory: remembers what was published.
#[derive(Default)]
pub struct MemoryBus {
    events: Mutex<Vec<BusEvent>>,
}

impl MemoryBus {
    /// Takes the events published so far.
    pub fn drain(&self) -> Vec<BusEvent> {
        std::mem::take(&mut *self.events.lock().expect("bus lock"))
    }
}

#[async_trait]
impl EventPublisher for MemoryBus {
    async fn publish(&self, events: &[BusEvent]) -> Result<(), StoreError> {
        self.events.lock().expect("bus lock").extend_from_slice(events);
        Ok(())
    }
}

/// A clock that stands still until told otherwise.
pub struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    /// A clock at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self(Mutex::new(now))
    }
    /// Moves the clock.
    pub fn set(&self, now: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = now;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}

/// Secrets in memory, for tests and the sandbox.
#[derive(Default)]
pub struct MemorySecrets {
    values: Mutex<HashMap<String, String>>,
}

#[async_trait]
impl SecretStore for MemorySecrets {
    async fn get(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.values.lock().expect("secrets lock").get(name).cloned())
    }

    async fn put(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.values.lock().expect("secrets lock").insert(name.to_owned(), value.to_owned());
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
