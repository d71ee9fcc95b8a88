//! A link's versioned state and the commit: every expected version checked and everything written in
//! one write transaction.

use crate::EmbeddedStore;
use crate::codec::{GotItem, ItemHeader, PutItem, decode, encode, epoch_ms, get_item, json_err};
use crate::error::db_err;
use crate::retention::{expired, keep_tombstone, ms, tombstone};
use crate::tables::{
    APPROVAL, AUDIT, COMMAND_EXPIRY, COMMAND_IDS, FEED, FEED_SEQ, ITEM_EXPIRY, ITEMS, MIRROR, MIRROR_BY_EMAIL,
    RECIPIENT, REPORT_EXPIRY, REPORTS, RESULTS, item_key, item_link, scope, successor,
};
use async_trait::async_trait;
use chrono::NaiveDate;
use optisync_domain::{
    ApprovalEntry, AssignmentId, Email, Link, LinkId, LinkView, MirrorEntry, RecipientState, StateWrite, TenantId,
};
use optisync_ports::{Commit, ItemKey, LoadedView, Slice, StoreError, SyncState};
use redb::ReadableTable;
use std::collections::{BTreeMap, BTreeSet};

/// One state write, encoded outside the transaction.
struct EncodedWrite {
    key: ItemKey,
    /// The [`scope`] of the item's link.
    scope: String,
    expected: Option<u64>,
    /// For mirror entries: the e-mail key it uses (the index entry).
    email: Option<String>,
    value: serde_json::Value,
    /// How long it is kept (R-J6); `None`: for good.
    keep: Option<chrono::Duration>,
    /// The tombstone an expirable recipient state leaves under the keyed hash of its e-mail (R-J3).
    tombstone: Option<(Email, optisync_domain::TombstoneRecord)>,
}

#[async_trait]
impl SyncState for EmbeddedStore {
    async fn load(&self, link: &Link, slice: &Slice) -> Result<LoadedView, StoreError> {
        let (link, slice, now) = (link.clone(), slice.clone(), ms(self.now()));
        self.read(move |txn| {
            let items = txn.open_table(ITEMS).map_err(db_err)?;
            let expiry = txn.open_table(ITEM_EXPIRY).map_err(db_err)?;
            let by_email = txn.open_table(MIRROR_BY_EMAIL).map_err(db_err)?;
            let scoped = scope(&link.tenant, &link.id);
            let l = scoped.as_str();
            let mut ids: BTreeSet<String> = slice.assignments.iter().map(|a| a.as_str().to_owned()).collect();
            let keys: BTreeSet<&str> = slice.emails.iter().map(Email::key).collect();
            for key in &keys {
                let upper = successor(key);
                for entry in by_email.range((l, *key, "")..(l, upper.as_str(), "")).map_err(db_err)? {
                    let (k, _) = entry.map_err(db_err)?;
                    ids.insert(k.value().2.to_owned());
                }
            }
            let mut loaded = LoadedView { view: LinkView::new(link.clone()), versions: BTreeMap::new() };
            for id in &ids {
                if expired(&expiry, (l, MIRROR, id.as_str()), now)? {
                    continue; // R-J6: an expired item reads as absent
                }
                if let Some(got) = get_item::<MirrorEntry>(&items, (l, MIRROR, id), "mirror entry")? {
                    loaded.versions.insert(ItemKey::Mirror(link.id.clone(), got.value.id.clone()), got.version);
                    loaded.view.mirror.insert(got.value.id.clone(), got.value);
                }
            }
            for key in &keys {
                let recipient = match expired(&expiry, (l, RECIPIENT, *key), now)? {
                    true => None,
                    false => get_item::<(Email, RecipientState)>(&items, (l, RECIPIENT, key), "recipient state")?,
                };
                if let Some(GotItem { version, value: (email, state) }) = recipient {
                    loaded.versions.insert(ItemKey::Recipient(link.id.clone(), (*key).to_owned()), version);
                    loaded.view.recipients.insert(email, state);
                }
                if expired(&expiry, (l, APPROVAL, *key), now)? {
                    continue;
                }
                if let Some(got) = get_item::<ApprovalEntry>(&items, (l, APPROVAL, key), "approval entry")? {
                    loaded.versions.insert(ItemKey::Approval(link.id.clone(), (*key).to_owned()), got.version);
                    loaded.view.approvals.insert(got.value.email.clone(), got.value);
                }
            }
            // R-J3, R-J6: an expired recipient state left its tombstone under the keyed hash.
            for email in &slice.emails {
                if !loaded.view.recipients.contains_key(email)
                    && let Some(record) = tombstone(txn, link.tenant.as_str(), l, email)?
                {
                    loaded.view.recipients.insert(email.clone(), record.into_state());
                }
            }
            Ok(loaded)
        })
        .await
    }

    async fn due(&self, link: &Link, date: NaiveDate, limit: usize) -> Result<Vec<AssignmentId>, StoreError> {
        let link = scope(&link.tenant, &link.id);
        self.read(move |txn| {
            let items = txn.open_table(ITEMS).map_err(db_err)?;
            let mut due = Vec::new();
            let range = (link.as_str(), MIRROR, "")..(link.as_str(), MIRROR + 1, "");
            for entry in items.range(range).map_err(db_err)? {
                if due.len() >= limit {
                    break;
                }
                let (_, bytes) = entry.map_err(db_err)?;
                let got: GotItem<MirrorEntry> = decode("mirror entry", bytes.value())?;
                if got.value.next_transition.is_some_and(|d| d <= date) {
                    due.push(got.value.id);
                }
            }
            Ok(due)
        })
        .await
    }

    async fn commit(&self, tenant: &TenantId, commit: Commit) -> Result<(), StoreError> {
        // H4: DynamoDB's bound on one transaction, so the local runner shows what AWS would refuse
        // (every distinct command counted as new: a retried commit is counted as its first try).
        let distinct: std::collections::BTreeSet<String> = commit.commands.iter().map(|c| c.id().to_string()).collect();
        commit.check_size(distinct.len())?;
        let mut writes = Vec::with_capacity(commit.writes.len());
        for (write, expected) in &commit.writes {
            let (email, value) = match write {
                StateWrite::Mirror { entry, .. } => {
                    (entry.email.as_ref().map(|e| e.key().to_owned()), serde_json::to_value(entry))
                }
                StateWrite::Recipient { email, state, .. } => (None, serde_json::to_value((email, state))),
                StateWrite::Approval { entry } => (None, serde_json::to_value(entry)),
            };
            let value = value.map_err(|e| json_err("state item", &e))?;
            let key = ItemKey::of(write);
            let keep = commit.expiry.items.get(&key).copied();
            let tombstone = match write {
                StateWrite::Recipient { email, state, .. } if keep.is_some() => {
                    optisync_domain::TombstoneRecord::of(state).map(|r| (email.clone(), r))
                }
                _ => None,
            };
            writes.push(EncodedWrite {
                scope: scope(tenant, item_link(&key)),
                key,
                expected: *expected,
                email,
                value,
                keep,
                tombstone,
            });
        }
        let commands = commit
            .commands
            .iter()
            .map(|c| {
                // R-J2: a new erasure report also goes to the outbox (not a dry run's, whose commands expire).
                let report = match optisync_ports::ErasureReportRecord::of(tenant, c) {
                    Some(r) if commit.expiry.commands.is_none() => Some(encode("erasure report", &r)?),
                    _ => None,
                };
                Ok((c.id().to_string(), encode("command", c)?, report))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let audit = commit
            .audit
            .iter()
            .map(|e| Ok((scope(tenant, &e.link), epoch_ms(e.at), encode("audit entry", e)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let tenant = tenant.to_string();
        let (now, keep_commands) = (self.now(), commit.expiry.commands);
        self.write(move |txn| {
            let mut trail = txn.open_table(AUDIT).map_err(db_err)?;
            for (link, at, bytes) in &audit {
                let last = match trail
                    .range((link.as_str(), *at, 0)..=(link.as_str(), *at, u64::MAX))
                    .map_err(db_err)?
                    .next_back()
                {
                    Some(last) => Some(last.map_err(db_err)?.0.value().2),
                    None => None,
                };
                let seq = last.map_or(0, |s| s + 1);
                trail.insert((link.as_str(), *at, seq), bytes.as_slice()).map_err(db_err)?;
            }
            let mut items = txn.open_table(ITEMS).map_err(db_err)?;
            let mut by_email = txn.open_table(MIRROR_BY_EMAIL).map_err(db_err)?;
            let mut expiry = txn.open_table(ITEM_EXPIRY).map_err(db_err)?;
            // Every expected version is checked against the state before the commit, then all is written.
            let mut previous = Vec::with_capacity(writes.len());
            for w in &writes {
                let header: Option<ItemHeader> = match items.get(item_key(&w.scope, &w.key)).map_err(db_err)? {
                    Some(bytes) => Some(decode("state item", bytes.value())?),
                    None => None,
                };
                // An expired item counts as absent (R-J6); its index entry still goes.
                let header = match expired(&expiry, item_key(&w.scope, &w.key), ms(now))? {
                    true => {
                        previous.push(header.and_then(|h| h.email));
                        if w.expected.is_some() {
                            return Err(StoreError::Conflict);
                        }
                        continue;
                    }
                    false => header,
                };
                if header.as_ref().map(|h| h.version) != w.expected {
                    return Err(StoreError::Conflict);
                }
                previous.push(header.and_then(|h| h.email));
            }
            for (w, old_email) in writes.iter().zip(previous) {
                let key = item_key(&w.scope, &w.key);
                let item = PutItem { version: w.expected.unwrap_or(0) + 1, email: w.email.as_deref(), value: &w.value };
                items.insert(key, encode("state item", &item)?.as_slice()).map_err(db_err)?;
                if let ItemKey::Mirror(_, id) = &w.key {
                    if let Some(old) = old_email {
                        by_email.remove((w.scope.as_str(), old.as_str(), id.as_str())).map_err(db_err)?;
                    }
                    if let Some(new) = &w.email {
                        by_email.insert((w.scope.as_str(), new.as_str(), id.as_str()), ()).map_err(db_err)?;
                    }
                }
                match w.keep {
                    Some(keep) => expiry.insert(key, ms(now + keep)).map_err(db_err)?,
                    None => expiry.remove(key).map_err(db_err)?,
                };
                if let Some((email, record)) = &w.tombstone {
                    keep_tombstone(txn, &tenant, &w.scope, email, record)?;
                }
            }
            let mut feed = txn.open_table(FEED).map_err(db_err)?;
            let mut ids = txn.open_table(COMMAND_IDS).map_err(db_err)?;
            let mut command_expiry = txn.open_table(COMMAND_EXPIRY).map_err(db_err)?;
            let mut last_seq = txn.open_table(FEED_SEQ).map_err(db_err)?;
            // The counter survives a purge of the feed's last entries; files from before it have none.
            let mut seq = match last_seq.get(tenant.as_str()).map_err(db_err)? {
                Some(seq) => seq.value(),
                None => {
                    match feed.range((tenant.as_str(), 0)..=(tenant.as_str(), u64::MAX)).map_err(db_err)?.next_back() {
                        Some(last) => last.map_err(db_err)?.0.value().1,
                        None => 0,
                    }
                }
            };
            let first = seq;
            let mut reports = txn.open_table(REPORTS).map_err(db_err)?;
            let mut report_expiry = txn.open_table(REPORT_EXPIRY).map_err(db_err)?;
            for (id, bytes, report) in &commands {
                let key = (tenant.as_str(), id.as_str());
                if let Some(old) = ids.get(key).map_err(db_err)?.map(|s| s.value()) {
                    if !expired(&command_expiry, key, ms(now))? {
                        continue;
                    }
                    // R-J6: an expired id is issued anew.
                    feed.remove((tenant.as_str(), old)).map_err(db_err)?;
                    txn.open_table(RESULTS).map_err(db_err)?.remove(key).map_err(db_err)?;
                    command_expiry.remove(key).map_err(db_err)?;
                }
                seq += 1;
                ids.insert(key, seq).map_err(db_err)?;
                feed.insert((tenant.as_str(), seq), bytes.as_slice()).map_err(db_err)?;
                if let Some(report) = report {
                    reports.insert(key, report.as_slice()).map_err(db_err)?;
                    report_expiry.remove(key).map_err(db_err)?;
                }
                if let Some(keep) = keep_commands {
                    command_expiry.insert(key, ms(now + keep)).map_err(db_err)?;
                }
            }
            if seq != first {
                last_seq.insert(tenant.as_str(), seq).map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn assignments(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        after: Option<&AssignmentId>,
        limit: usize,
    ) -> Result<Vec<AssignmentId>, StoreError> {
        let (link, after) = (scope(tenant, link), after.map(|a| a.as_str().to_owned()));
        self.read(move |txn| {
            let items = txn.open_table(ITEMS).map_err(db_err)?;
            let l = link.as_str();
            let from = after.as_deref().unwrap_or("");
            let mut out = Vec::new();
            for row in items.range((l, MIRROR, from)..(l, MIRROR + 1, "")).map_err(db_err)? {
                if out.len() >= limit {
                    break;
                }
                let (key, value) = row.map_err(db_err)?;
                if after.as_deref().is_some_and(|a| key.value().2 <= a) {
                    continue;
                }
                let got: GotItem<MirrorEntry> = decode("mirror entry", value.value())?;
                if got.value.snapshot.is_some() {
                    out.push(got.value.id);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn recipients(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(Email, RecipientState)>, StoreError> {
        let (link, after, now) = (scope(tenant, link), after.map(str::to_owned), ms(self.now()));
        self.read(move |txn| {
            let items = txn.open_table(ITEMS).map_err(db_err)?;
            let expiry = txn.open_table(ITEM_EXPIRY).map_err(db_err)?;
            let l = link.as_str();
            let from = after.as_deref().unwrap_or("");
            let mut out = Vec::new();
            for row in items.range((l, RECIPIENT, from)..(l, RECIPIENT + 1, "")).map_err(db_err)? {
                if out.len() >= limit {
                    break;
                }
                let (key, value) = row.map_err(db_err)?;
                if after.as_deref().is_some_and(|a| key.value().2 <= a) || expired(&expiry, key.value(), now)? {
                    continue;
                }
                let got: GotItem<(Email, RecipientState)> = decode("recipient state", value.value())?;
                out.push(got.value);
            }
            Ok(out)
        })
        .await
    }
}
