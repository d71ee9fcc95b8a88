//! A link's versioned state in memory; the commit checks every version first, as a transaction does.

use super::{Item, MemoryStore};
use async_trait::async_trait;
use chrono::NaiveDate;
use optisync_domain::{AssignmentId, Email, Link, LinkId, LinkView, RecipientState, StateWrite, TenantId};
use optisync_ports::*;
use std::collections::{BTreeMap, BTreeSet};

#[async_trait]
impl SyncState for MemoryStore {
    async fn load(&self, link: &Link, slice: &Slice) -> Result<LoadedView, StoreError> {
        let now = self.now();
        let inner = self.lock();
        let mut loaded = LoadedView { view: LinkView::new(link.clone()), versions: BTreeMap::new() };
        let keys: BTreeSet<&str> = slice.emails.iter().map(Email::key).collect();
        let mut ids: BTreeSet<&AssignmentId> = slice.assignments.iter().collect();
        for k in &keys {
            if let Some(found) = inner.by_email.get(&(link.tenant.clone(), link.id.clone(), (*k).to_owned())) {
                ids.extend(found);
            }
        }
        let mut wanted: Vec<ItemKey> = ids.into_iter().map(|id| ItemKey::Mirror(link.id.clone(), id.clone())).collect();
        for k in &keys {
            wanted.push(ItemKey::Recipient(link.id.clone(), (*k).to_owned()));
            wanted.push(ItemKey::Approval(link.id.clone(), (*k).to_owned()));
        }
        for key in wanted {
            // R-J6: an expired item reads as absent.
            if inner.item_expired(&link.tenant, &key, now) {
                continue;
            }
            let Some((version, item)) = inner.items.get(&(link.tenant.clone(), key.clone())) else { continue };
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
        // R-J3, R-J6: an expired recipient state left its tombstone under the keyed hash.
        for email in &slice.emails {
            if !loaded.view.recipients.contains_key(email)
                && let Some(record) = inner.tombstone(&link.tenant, &link.id, email)
            {
                loaded.view.recipients.insert(email.clone(), record.into_state());
            }
        }
        Ok(loaded)
    }

    async fn due(&self, link: &Link, date: NaiveDate, limit: usize) -> Result<Vec<AssignmentId>, StoreError> {
        Ok(self
            .lock()
            .items
            .iter()
            .filter_map(|((t, key), (_, item))| match (key, item) {
                (ItemKey::Mirror(l, _), Item::Mirror(e))
                    if t == &link.tenant && l == &link.id && e.next_transition.is_some_and(|d| d <= date) =>
                {
                    Some(e.id.clone())
                }
                _ => None,
            })
            .take(limit)
            .collect())
    }

    async fn commit(&self, tenant: &TenantId, commit: Commit) -> Result<(), StoreError> {
        let now = self.now();
        let mut inner = self.lock();
        match inner.commits_before_failure {
            Some(0) => {
                inner.commits_before_failure = None;
                return Err(StoreError::Transient("the connection was lost".into()));
            }
            Some(n) => inner.commits_before_failure = Some(n - 1),
            None => {}
        }
        // H4: DynamoDB's bound on one transaction, counted as the DynamoDB store counts it (commands
        // already in the feed write nothing).
        let mut ids = BTreeSet::new();
        let new_commands = commit
            .commands
            .iter()
            .map(|c| c.id().to_string())
            .filter(|id| ids.insert(id.clone()))
            .filter(|id| {
                inner.command_expired(tenant, id, now) || !inner.command_ids.contains(&(tenant.clone(), id.clone()))
            })
            .count();
        commit.check_size(new_commands)?;
        let mut items = commit.writes.len() as u64 + commit.audit.len() as u64;
        for (write, expected) in &commit.writes {
            let key = ItemKey::of(write);
            // An expired item counts as absent (R-J6).
            let current = match inner.item_expired(tenant, &key, now) {
                true => None,
                false => inner.items.get(&(tenant.clone(), key)).map(|(v, _)| *v),
            };
            if current != *expected {
                return Err(StoreError::Conflict);
            }
        }
        for (write, expected) in commit.writes {
            if let StateWrite::Mirror { link, entry } = &write {
                let old = match inner.items.get(&(tenant.clone(), ItemKey::of(&write))) {
                    Some((_, Item::Mirror(old))) => old.email.as_ref().map(|e| e.key().to_owned()),
                    _ => None,
                };
                if let Some(old) = old
                    && let Some(ids) = inner.by_email.get_mut(&(tenant.clone(), link.clone(), old))
                {
                    ids.remove(&entry.id);
                }
                if let Some(email) = &entry.email {
                    inner
                        .by_email
                        .entry((tenant.clone(), link.clone(), email.key().to_owned()))
                        .or_default()
                        .insert(entry.id.clone());
                }
            }
            let item = match &write {
                StateWrite::Mirror { entry, .. } => Item::Mirror(entry.clone()),
                StateWrite::Recipient { email, state, .. } => Item::Recipient(email.clone(), state.clone()),
                StateWrite::Approval { entry } => Item::Approval(entry.clone()),
            };
            inner.items.insert((tenant.clone(), ItemKey::of(&write)), (expected.unwrap_or(0) + 1, item));
            inner.keep_written(tenant, &write, &commit.expiry, now);
        }
        for entry in commit.audit {
            inner.audit.entry((tenant.clone(), entry.link.clone())).or_default().push(entry);
        }
        let mut new_commands = 0;
        for command in commit.commands {
            let id = command.id().to_string();
            if inner.command_expired(tenant, &id, now) {
                inner.forget_command(tenant, &id); // R-J6: an expired id is issued anew
            }
            if inner.command_ids.insert((tenant.clone(), id.clone())) {
                new_commands += 1;
                let seq = inner.expiries.last_seq.get(tenant).copied().unwrap_or(0) + 1;
                inner.expiries.last_seq.insert(tenant.clone(), seq);
                // R-J2: a new erasure report is kept in the outbox until delivered (not a dry run's).
                if commit.expiry.commands.is_none()
                    && let Some(report) = optisync_ports::ErasureReportRecord::of(tenant, &command)
                {
                    items += 1;
                    inner.reports.insert((tenant.clone(), id.clone()), (report, None));
                }
                inner.commands.entry(tenant.clone()).or_default().push((seq, command));
                if let Some(keep) = commit.expiry.commands {
                    inner.expiries.commands.insert((tenant.clone(), id), now + keep);
                }
            }
        }
        // As the DynamoDB table counts them: a marker and a feed entry per new command, and the counter.
        items += 2 * new_commands + u64::from(new_commands > 0);
        if items > 0 {
            inner.wrote(items);
        }
        Ok(())
    }

    async fn assignments(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        after: Option<&AssignmentId>,
        limit: usize,
    ) -> Result<Vec<AssignmentId>, StoreError> {
        let inner = self.lock();
        let start = after.cloned().unwrap_or_else(|| AssignmentId::new(""));
        let from = (tenant.clone(), ItemKey::Mirror(link.clone(), start));
        Ok(inner
            .items
            .range(from..)
            .take_while(|((t, key), _)| t == tenant && matches!(key, ItemKey::Mirror(l, _) if l == link))
            .filter_map(|((_, _), (_, item))| match item {
                Item::Mirror(e) if e.snapshot.is_some() && after.is_none_or(|a| &e.id > a) => Some(e.id.clone()),
                _ => None,
            })
            .take(limit)
            .collect())
    }

    async fn recipients(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(Email, RecipientState)>, StoreError> {
        let now = self.now();
        let inner = self.lock();
        let from = (tenant.clone(), ItemKey::Recipient(link.clone(), after.unwrap_or("").to_owned()));
        Ok(inner
            .items
            .range(from..)
            .take_while(|((t, key), _)| t == tenant && matches!(key, ItemKey::Recipient(l, _) if l == link))
            .filter(|((t, key), _)| !inner.item_expired(t, key, now))
            .filter_map(|((_, key), (_, item))| match (key, item) {
                (ItemKey::Recipient(_, k), Item::Recipient(email, state)) if after.is_none_or(|a| k.as_str() > a) => {
                    Some((email.clone(), state.clone()))
                }
                _ => None,
            })
            .take(limit)
            .collect())
    }
}
