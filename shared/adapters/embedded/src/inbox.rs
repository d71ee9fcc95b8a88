//! The durable inbox between the hooks and the worker.

use crate::EmbeddedStore;
use crate::codec::{decode, encode};
use crate::error::db_err;
use crate::retention::{expired, ms};
use crate::tables::{INBOX, INBOX_EXPIRY, TENANTS};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optisync_domain::{TenantId, TenantSettings};
use optisync_ports::{Inbox, InboxEntry, InboxPut, StoreError};
use redb::ReadableTable;

/// An inbox entry as stored: the entry and whether the worker has applied it.
type StoredInbox = (InboxEntry, bool);

#[async_trait]
impl Inbox for EmbeddedStore {
    async fn put(&self, entry: &InboxEntry) -> Result<InboxPut, StoreError> {
        let bytes = encode("inbox entry", &(entry, false))?;
        let (tenant, key, fingerprint) = (entry.tenant.to_string(), entry.key.clone(), entry.fingerprint.clone());
        let now = ms(self.now());
        self.write(move |txn| {
            let mut inbox = txn.open_table(INBOX).map_err(db_err)?;
            let mut expiry = txn.open_table(INBOX_EXPIRY).map_err(db_err)?;
            let key = (tenant.as_str(), key.as_str());
            let existing = match inbox.get(key).map_err(db_err)? {
                Some(v) => Some(decode::<StoredInbox>("inbox entry", v.value())?),
                None => None,
            };
            // R-J6: an expired entry counts as absent.
            let existing = match expired(&expiry, key, now)? {
                true => {
                    expiry.remove(key).map_err(db_err)?;
                    None
                }
                false => existing,
            };
            Ok(match existing {
                Some((e, _)) if e.fingerprint == fingerprint => InboxPut::Duplicate,
                Some(_) => InboxPut::Mismatch,
                None => {
                    inbox.insert(key, bytes.as_slice()).map_err(db_err)?;
                    InboxPut::Stored
                }
            })
        })
        .await
    }

    async fn get(&self, tenant: &TenantId, key: &str) -> Result<Option<InboxEntry>, StoreError> {
        let (tenant, key, now) = (tenant.to_string(), key.to_owned(), ms(self.now()));
        self.read(move |txn| {
            let inbox = txn.open_table(INBOX).map_err(db_err)?;
            if expired(&txn.open_table(INBOX_EXPIRY).map_err(db_err)?, (tenant.as_str(), key.as_str()), now)? {
                return Ok(None);
            }
            match inbox.get((tenant.as_str(), key.as_str())).map_err(db_err)? {
                Some(v) => Ok(Some(decode::<StoredInbox>("inbox entry", v.value())?.0)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn mark_done(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError> {
        let (tenant, key, now) = (tenant.to_string(), key.to_owned(), self.now());
        self.write(move |txn| {
            let mut inbox = txn.open_table(INBOX).map_err(db_err)?;
            // R-J6: kept for the tenant's inbox retention to answer duplicates, then forgotten.
            let settings: TenantSettings =
                match txn.open_table(TENANTS).map_err(db_err)?.get(tenant.as_str()).map_err(db_err)? {
                    Some(bytes) => decode("tenant settings", bytes.value())?,
                    None => TenantSettings::default(),
                };
            let found = match inbox.get((tenant.as_str(), key.as_str())).map_err(db_err)? {
                Some(v) => Some(decode::<StoredInbox>("inbox entry", v.value())?),
                None => None,
            };
            if let Some((entry, _)) = found {
                let bytes = encode("inbox entry", &(entry, true))?;
                inbox.insert((tenant.as_str(), key.as_str()), bytes.as_slice()).map_err(db_err)?;
                let until = ms(now + settings.retention.inbox());
                txn.open_table(INBOX_EXPIRY)
                    .map_err(db_err)?
                    .insert((tenant.as_str(), key.as_str()), until)
                    .map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn pending(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<(TenantId, String)>, StoreError> {
        self.read(move |txn| {
            let inbox = txn.open_table(INBOX).map_err(db_err)?;
            let mut waiting = Vec::new();
            for row in inbox.iter().map_err(db_err)? {
                let (_, v) = row.map_err(db_err)?;
                let (entry, done): StoredInbox = decode("inbox entry", v.value())?;
                if !done && entry.received_at < before {
                    waiting.push((entry.received_at, entry.tenant, entry.key));
                }
            }
            waiting.sort();
            Ok(waiting.into_iter().take(limit).map(|(_, t, k)| (t, k)).collect())
        })
        .await
    }
}
