//! The durable inbox between the hooks and the worker.

use crate::EmbeddedStore;
use crate::codec::{decode, encode};
use crate::error::db_err;
use crate::tables::INBOX;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optisync_domain::TenantId;
use optisync_ports::{Inbox, InboxEntry, InboxPut, StoreError};
use redb::ReadableTable;

/// An inbox entry as stored: the entry and whether the worker has applied it.
type StoredInbox = (InboxEntry, bool);

#[async_trait]
impl Inbox for EmbeddedStore {
    async fn put(&self, entry: &InboxEntry) -> Result<InboxPut, StoreError> {
        let bytes = encode("inbox entry", &(entry, false))?;
        let (tenant, key, fingerprint) = (entry.tenant.to_string(), entry.key.clone(), entry.fingerprint.clone());
        self.write(move |txn| {
            let mut inbox = txn.open_table(INBOX).map_err(db_err)?;
            let key = (tenant.as_str(), key.as_str());
            let existing = match inbox.get(key).map_err(db_err)? {
                Some(v) => Some(decode::<StoredInbox>("inbox entry", v.value())?),
                None => None,
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
        let (tenant, key) = (tenant.to_string(), key.to_owned());
        self.read(move |txn| {
            let inbox = txn.open_table(INBOX).map_err(db_err)?;
            match inbox.get((tenant.as_str(), key.as_str())).map_err(db_err)? {
                Some(v) => Ok(Some(decode::<StoredInbox>("inbox entry", v.value())?.0)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn mark_done(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError> {
        let (tenant, key) = (tenant.to_string(), key.to_owned());
        self.write(move |txn| {
            let mut inbox = txn.open_table(INBOX).map_err(db_err)?;
            let found = match inbox.get((tenant.as_str(), key.as_str())).map_err(db_err)? {
                Some(v) => Some(decode::<StoredInbox>("inbox entry", v.value())?),
                None => None,
            };
            if let Some((entry, _)) = found {
                let bytes = encode("inbox entry", &(entry, true))?;
                inbox.insert((tenant.as_str(), key.as_str()), bytes.as_slice()).map_err(db_err)?;
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
