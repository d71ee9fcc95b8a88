//! Retention in memory (R-J6), as the other stores keep it: expiries dated by the store's clock and
//! kept beside the records, expired records read as absent, [`MemoryStore::purge_expired`] forgets
//! them, and the R-J3 tombstone of an expirable recipient kept under a keyed hash.

use super::{MemoryStore, StoreInner};
use chrono::{DateTime, Utc};
use optisync_domain::{Email, EmailHasher, LinkId, TenantId, TombstoneRecord};
use optisync_ports::ItemKey;
use std::collections::{BTreeMap, HashMap};

/// When each expirable record is forgotten, and what outlives it.
#[derive(Default)]
pub(super) struct Expiries {
    pub(super) items: HashMap<(TenantId, ItemKey), DateTime<Utc>>,
    pub(super) inbox: HashMap<(TenantId, String), DateTime<Utc>>,
    /// A command's feed entry, id marker and result, by command id.
    pub(super) commands: HashMap<(TenantId, String), DateTime<Utc>>,
    /// The R-J3 tombstones of expirable recipients, by link and keyed hash of the e-mail.
    pub(super) tombstones: BTreeMap<(TenantId, LinkId, String), TombstoneRecord>,
    /// The key of each tenant's e-mail hashes (random, made on first use).
    pub(super) hash_keys: HashMap<TenantId, Vec<u8>>,
    /// The last sequence number of each tenant's feed, which a purge must not set back.
    pub(super) last_seq: HashMap<TenantId, u64>,
}

impl StoreInner {
    pub(super) fn item_expired(&self, tenant: &TenantId, key: &ItemKey, now: DateTime<Utc>) -> bool {
        self.expiries.items.get(&(tenant.clone(), key.clone())).is_some_and(|at| *at <= now)
    }

    pub(super) fn inbox_expired(&self, tenant: &TenantId, key: &str, now: DateTime<Utc>) -> bool {
        self.expiries.inbox.get(&(tenant.clone(), key.to_owned())).is_some_and(|at| *at <= now)
    }

    pub(super) fn command_expired(&self, tenant: &TenantId, id: &str, now: DateTime<Utc>) -> bool {
        self.expiries.commands.get(&(tenant.clone(), id.to_owned())).is_some_and(|at| *at <= now)
    }

    /// The keyed hash of an e-mail in a tenant, making the tenant's key on first use.
    pub(super) fn email_hash(&mut self, tenant: &TenantId, email: &Email) -> String {
        let key = self.expiries.hash_keys.entry(tenant.clone()).or_insert_with(|| rand::random::<[u8; 32]>().to_vec());
        EmailHasher::new(key.clone()).hash(email)
    }

    /// The tombstone an expired recipient state of a link left, if any.
    pub(super) fn tombstone(&self, tenant: &TenantId, link: &LinkId, email: &Email) -> Option<TombstoneRecord> {
        let key = self.expiries.hash_keys.get(tenant)?;
        let hash = EmailHasher::new(key.clone()).hash(email);
        self.expiries.tombstones.get(&(tenant.clone(), link.clone(), hash)).cloned()
    }
}

impl MemoryStore {
    /// The store's time: its clock's, else the system's.
    pub(super) fn now(&self) -> DateTime<Utc> {
        self.clock.as_ref().map_or_else(Utc::now, |c| c.now())
    }

    /// Forgets every record whose expiry has passed (R-J6), as DynamoDB's TTL does some time after it;
    /// returns how many records went. Tombstones stay.
    pub fn purge_expired(&self) -> usize {
        let now = self.now();
        let mut inner = self.lock();
        let inner = &mut *inner;
        let mut gone = 0;
        let items: Vec<(TenantId, ItemKey)> =
            inner.expiries.items.iter().filter(|(_, at)| **at <= now).map(|(k, _)| k.clone()).collect();
        for key in items {
            inner.expiries.items.remove(&key);
            if let Some((_, super::Item::Mirror(entry))) = inner.items.remove(&key) {
                let (tenant, ItemKey::Mirror(link, _)) = &key else { continue };
                if let Some(email) = &entry.email
                    && let Some(ids) = inner.by_email.get_mut(&(tenant.clone(), link.clone(), email.key().to_owned()))
                {
                    ids.remove(&entry.id);
                }
            }
            gone += 1;
        }
        let inbox: Vec<(TenantId, String)> =
            inner.expiries.inbox.iter().filter(|(_, at)| **at <= now).map(|(k, _)| k.clone()).collect();
        for key in inbox {
            inner.expiries.inbox.remove(&key);
            gone += usize::from(inner.inbox.remove(&key).is_some());
        }
        let commands: Vec<(TenantId, String)> =
            inner.expiries.commands.iter().filter(|(_, at)| **at <= now).map(|(k, _)| k.clone()).collect();
        for (tenant, id) in commands {
            inner.forget_command(&tenant, &id);
            gone += 1;
        }
        gone
    }
}

impl StoreInner {
    /// Sets or clears the expiry of an item a commit wrote, and keeps the tombstone of an expirable
    /// recipient under its keyed hash (R-J3, R-J6).
    pub(super) fn keep_written(
        &mut self,
        tenant: &TenantId,
        write: &optisync_domain::StateWrite,
        expiry: &optisync_ports::Expiry,
        now: DateTime<Utc>,
    ) {
        let key = ItemKey::of(write);
        let Some(keep) = expiry.items.get(&key) else {
            self.expiries.items.remove(&(tenant.clone(), key));
            return;
        };
        self.expiries.items.insert((tenant.clone(), key), now + *keep);
        if let optisync_domain::StateWrite::Recipient { link, email, state } = write
            && let Some(record) = TombstoneRecord::of(state)
        {
            let hash = self.email_hash(tenant, email);
            self.expiries.tombstones.insert((tenant.clone(), link.clone(), hash), record);
        }
    }

    /// Drops an expired command's feed entry, id marker and result.
    pub(super) fn forget_command(&mut self, tenant: &TenantId, id: &str) {
        self.expiries.commands.remove(&(tenant.clone(), id.to_owned()));
        self.command_ids.remove(&(tenant.clone(), id.to_owned()));
        self.results.remove(&(tenant.clone(), id.to_owned()));
        if let Some(feed) = self.commands.get_mut(tenant) {
            feed.retain(|(_, c)| c.id().as_str() != id);
        }
    }
}
