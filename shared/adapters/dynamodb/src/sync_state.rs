//! A link's versioned state: consistent loads through the keys-only indexes, the due index, and the
//! commit as one `TransactWriteItems` (state items, audit entries, command markers, feed and counter).

use crate::DynamoStore;
use crate::codec::{from_item, get_s, key_pairs, n, s, to_json, version_of, write_item};
use crate::error::classify_transaction;
use crate::keys::{
    AUDIT_PREFIX, COMMAND_SK, SEQ_SK, approval_sk, by_email, command_marker_pk, due_pk, feed_pk, feed_sk, link_pk,
    mirror_sk, recipient_sk, report_sk, tenant_pk,
};
use crate::retention::{ABSENT_OR_EXPIRED, EXPIRES_AT, epoch, hash, is_expired, tombstone_of, tombstone_sk};
use crate::{MAX_TRANSACTION_ITEMS, item_size, write_units};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::NaiveDate;
use optisync_domain::{
    ApprovalEntry, AssignmentId, Email, Link, LinkId, LinkView, MirrorEntry, OptigemCommand, RecipientState,
    StateWrite, TenantId,
};
use optisync_ports::{Commit, ItemKey, LoadedView, Slice, StoreError, SyncState};
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[async_trait]
impl SyncState for DynamoStore {
    async fn load(&self, link: &Link, slice: &Slice) -> Result<LoadedView, StoreError> {
        let pk = link_pk(&link.tenant, &link.id);
        let now = self.now();
        let mut keys: Vec<(String, String)> = slice.assignments.iter().map(|id| (pk.clone(), mirror_sk(id))).collect();
        // R-J3, R-J6: the tombstone an expired recipient state left, read in the same batch.
        let mut tombstones = HashMap::new();
        if !slice.emails.is_empty() {
            let hasher = self.hasher(&link.tenant).await?;
            for email in &slice.emails {
                let sk = tombstone_sk(&hash(&hasher, email));
                keys.push((pk.clone(), sk.clone()));
                tombstones.insert(sk, email.clone());
            }
        }
        for email in &slice.emails {
            keys.push((pk.clone(), recipient_sk(email.key())));
            keys.push((pk.clone(), approval_sk(email.key())));
            // The index is eventually consistent and keys-only: it names the entries, the consistent
            // batch read below fetches them with their versions.
            let named = self
                .query_all(
                    Some("gsi1"),
                    "gsi1pk = :e",
                    &[(":e", s(&by_email(&link.tenant, &link.id, email.key())))],
                    None,
                )
                .await?;
            keys.extend(key_pairs(&named));
        }
        let mut loaded = LoadedView { view: LinkView::new(link.clone()), versions: BTreeMap::new() };
        let mut left = Vec::new();
        for item in self.batch_get(keys).await? {
            let sk = get_s(&item, "sk").unwrap_or_default();
            let version = version_of(&item);
            if is_expired(&item, now) {
                continue; // R-J6: TTL deletes late; an expired item reads as absent
            }
            if let Some(email) = tombstones.get(sk) {
                left.push((email.clone(), tombstone_of(&item)?));
            } else if sk.starts_with("MIRROR#") {
                let entry: MirrorEntry = from_item(&item)?;
                loaded.versions.insert(ItemKey::Mirror(link.id.clone(), entry.id.clone()), version);
                loaded.view.mirror.insert(entry.id.clone(), entry);
            } else if sk.starts_with("RECIPIENT#") {
                let (email, state): (Email, RecipientState) = from_item(&item)?;
                loaded.versions.insert(ItemKey::Recipient(link.id.clone(), email.key().to_owned()), version);
                loaded.view.recipients.insert(email, state);
            } else if sk.starts_with("APPROVAL#") {
                let entry: ApprovalEntry = from_item(&item)?;
                loaded.versions.insert(ItemKey::Approval(link.id.clone(), entry.email.key().to_owned()), version);
                loaded.view.approvals.insert(entry.email.clone(), entry);
            }
        }
        for (email, record) in left {
            loaded.view.recipients.entry(email).or_insert_with(|| record.into_state());
        }
        Ok(loaded)
    }

    async fn due(&self, link: &Link, date: NaiveDate, limit: usize) -> Result<Vec<AssignmentId>, StoreError> {
        let items = self
            .query_all(
                Some("gsi2"),
                "gsi2pk = :d AND gsi2sk <= :until",
                &[(":d", s(&due_pk(&link.tenant, &link.id))), (":until", s(&format!("{date}#\u{10ffff}")))],
                Some(limit),
            )
            .await?;
        Ok(items.iter().filter_map(|i| get_s(i, "sk")?.strip_prefix("MIRROR#").map(AssignmentId::new)).collect())
    }

    async fn commit(&self, tenant: &TenantId, commit: Commit) -> Result<(), StoreError> {
        let mut actions = Vec::new();
        let now = self.now();
        for (write, expected) in &commit.writes {
            let mut item = write_item(tenant, write, expected.unwrap_or(0) + 1)?;
            // R-J6: an expirable item carries the TTL attribute; an expired one counts as absent.
            let keep = commit.expiry.items.get(&ItemKey::of(write));
            if let Some(keep) = keep {
                item.insert(EXPIRES_AT.into(), epoch(now + *keep));
            }
            let condition = match expected {
                None => (ABSENT_OR_EXPIRED, vec![(":now", epoch(now))]),
                Some(v) => ("ver = :expected", vec![(":expected", n(*v))]),
            };
            actions.push(self.put(item, Some(condition))?);
            // R-J3: an expirable recipient's tombstone outlives it under the keyed hash of its e-mail.
            if let (Some(_), StateWrite::Recipient { link, email, state }) = (keep, write)
                && let Some(record) = optisync_domain::TombstoneRecord::of(state)
            {
                let hasher = self.hasher(tenant).await?;
                let tombstone = HashMap::from([
                    ("pk".to_owned(), s(&link_pk(tenant, link))),
                    ("sk".to_owned(), s(&tombstone_sk(&hash(&hasher, email)))),
                    ("v".to_owned(), to_json(&record)?),
                ]);
                actions.push(self.put(tombstone, None)?);
            }
        }
        // Audit entries: one item each, forgotten by TTL (and filtered on read, as TTL deletes late).
        for entry in &commit.audit {
            let value = serde_json::to_string(entry).map_err(|e| StoreError::Permanent(format!("encode: {e}")))?;
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(&value, &mut hasher);
            let sk = format!(
                "{AUDIT_PREFIX}{:013}#{:016x}",
                entry.at.timestamp_millis().max(0),
                std::hash::Hasher::finish(&hasher)
            );
            let item = HashMap::from([
                ("pk".to_owned(), s(&link_pk(tenant, &entry.link))),
                ("sk".to_owned(), s(&sk)),
                ("v".to_owned(), AttributeValue::S(value)),
                ("expires_at".to_owned(), n(entry.expires_at().timestamp().max(0) as u64)),
            ]);
            actions.push(self.put(item, None)?);
        }
        // Commands: each id once (markers), numbered by a per-tenant counter guarded by its value.
        let mut ids = BTreeSet::new();
        let fresh: Vec<&OptigemCommand> = commit.commands.iter().filter(|c| ids.insert(c.id().to_string())).collect();
        let known = self
            .batch_get(
                fresh.iter().map(|c| (command_marker_pk(tenant, c.id().as_str()), COMMAND_SK.to_owned())).collect(),
            )
            .await?;
        // R-J6: an expired id is issued anew.
        let known: BTreeSet<String> =
            known.iter().filter(|i| !is_expired(i, now)).filter_map(|i| get_s(i, "pk").map(str::to_owned)).collect();
        let fresh: Vec<&OptigemCommand> =
            fresh.into_iter().filter(|c| !known.contains(&command_marker_pk(tenant, c.id().as_str()))).collect();
        if !fresh.is_empty() {
            let seq_item = self.get_item(&tenant_pk(tenant), SEQ_SK).await?;
            let current = seq_item.as_ref().map(version_of).unwrap_or(0);
            for (offset, command) in fresh.iter().enumerate() {
                let seq = current + offset as u64 + 1;
                let mut marker = HashMap::from([
                    ("pk".to_owned(), s(&command_marker_pk(tenant, command.id().as_str()))),
                    ("sk".to_owned(), s(COMMAND_SK)),
                    ("seq".to_owned(), n(seq)),
                ]);
                let mut entry = HashMap::from([
                    ("pk".to_owned(), s(&feed_pk(tenant))),
                    ("sk".to_owned(), s(&feed_sk(seq))),
                    ("v".to_owned(), to_json(command)?),
                ]);
                if let Some(keep) = commit.expiry.commands {
                    marker.insert(EXPIRES_AT.into(), epoch(now + keep));
                    entry.insert(EXPIRES_AT.into(), epoch(now + keep));
                }
                actions.push(self.put(marker, Some((ABSENT_OR_EXPIRED, vec![(":now", epoch(now))])))?);
                actions.push(self.put(entry, None)?);
                // R-J2: a new erasure report also goes to the outbox (not a dry run's, whose commands expire).
                if commit.expiry.commands.is_none()
                    && let Some(report) = optisync_ports::ErasureReportRecord::of(tenant, command)
                {
                    let item = HashMap::from([
                        ("pk".to_owned(), s(&tenant_pk(tenant))),
                        ("sk".to_owned(), s(&report_sk(command.id().as_str()))),
                        ("v".to_owned(), to_json(&report)?),
                    ]);
                    actions.push(self.put(item, None)?);
                }
            }
            let counter = HashMap::from([
                ("pk".to_owned(), s(&tenant_pk(tenant))),
                ("sk".to_owned(), s(SEQ_SK)),
                ("ver".to_owned(), n(current + fresh.len() as u64)),
            ]);
            let condition = if seq_item.is_some() {
                ("ver = :expected", vec![(":expected", n(current))])
            } else {
                ("attribute_not_exists(pk)", vec![])
            };
            actions.push(self.put(counter, Some(condition))?);
        }
        if actions.is_empty() {
            return Ok(());
        }
        if actions.len() > MAX_TRANSACTION_ITEMS {
            return Err(StoreError::Permanent(format!(
                "a commit of {} items exceeds one transaction ({MAX_TRANSACTION_ITEMS}); plan in smaller pages",
                actions.len()
            )));
        }
        let units: f64 =
            actions.iter().filter_map(|a| a.put.as_ref()).map(|p| 2.0 * write_units(item_size(&p.item))).sum();
        self.meter(0.0, units);
        self.client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await
            .map_err(classify_transaction)?;
        Ok(())
    }

    async fn assignments(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        after: Option<&AssignmentId>,
        limit: usize,
    ) -> Result<Vec<AssignmentId>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // BETWEEN is inclusive: a NUL after the last id read starts just past it.
        let from = after
            .map_or_else(|| mirror_sk(&AssignmentId::new("")), |a| mirror_sk(&AssignmentId::new(format!("{a}\u{0}"))));
        let to = mirror_sk(&AssignmentId::new("\u{10ffff}"));
        let condition = "pk = :pk AND sk BETWEEN :from AND :to";
        let values = [(":pk", s(&link_pk(tenant, link))), (":from", s(&from)), (":to", s(&to))];
        self.query_until(condition, &values, true, limit, |item| {
            let entry: MirrorEntry = from_item(item)?;
            Ok(entry.snapshot.is_some().then_some(entry.id))
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
        if limit == 0 {
            return Ok(Vec::new());
        }
        // BETWEEN is inclusive: a NUL after the last key read starts just past it.
        let from = after.map_or_else(|| recipient_sk(""), |a| recipient_sk(&format!("{a}\u{0}")));
        let condition = "pk = :pk AND sk BETWEEN :from AND :to";
        let values = [(":pk", s(&link_pk(tenant, link))), (":from", s(&from)), (":to", s(&recipient_sk("\u{10ffff}")))];
        let now = self.now();
        self.query_until(condition, &values, true, limit, |item| {
            if is_expired(item, now) {
                return Ok(None); // R-J6
            }
            from_item::<(Email, RecipientState)>(item).map(Some)
        })
        .await
    }
}
