//! Tenant settings, ESP accounts and pending OAuth authorisations.

use crate::EmbeddedStore;
use crate::codec::{decode, encode, get_json};
use crate::error::db_err;
use crate::tables::{ACCOUNTS, AUTHORISATIONS, TENANTS};
use async_trait::async_trait;
use optisync_domain::{AccountRecord, EspAccount, TenantId, TenantSettings};
use optisync_ports::{PendingAuthorisation, StoreError, Tenants};
use redb::ReadableTable;

#[async_trait]
impl Tenants for EmbeddedStore {
    async fn tenant_settings(&self, tenant: &TenantId) -> Result<TenantSettings, StoreError> {
        let tenant = tenant.to_string();
        self.read(move |txn| {
            let table = txn.open_table(TENANTS).map_err(db_err)?;
            Ok(get_json(&table, &tenant, "tenant's settings")?.unwrap_or_default())
        })
        .await
    }

    async fn put_tenant_settings(&self, tenant: &TenantId, settings: &TenantSettings) -> Result<(), StoreError> {
        let bytes = encode("tenant's settings", settings)?;
        let tenant = tenant.to_string();
        self.write(move |txn| {
            txn.open_table(TENANTS).map_err(db_err)?.insert(tenant.as_str(), bytes.as_slice()).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn accounts(&self, tenant: &TenantId) -> Result<Vec<AccountRecord>, StoreError> {
        let tenant = tenant.clone();
        self.read(move |txn| {
            let table = txn.open_table(ACCOUNTS).map_err(db_err)?;
            let mut out = Vec::new();
            for row in table.iter().map_err(db_err)? {
                let (_, bytes) = row.map_err(db_err)?;
                let record: AccountRecord = decode("account", bytes.value())?;
                if record.tenant == tenant {
                    out.push(record);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn account(&self, esp: &EspAccount) -> Result<Option<AccountRecord>, StoreError> {
        let esp = esp.clone();
        self.read(move |txn| {
            let table = txn.open_table(ACCOUNTS).map_err(db_err)?;
            match table.get((esp.provider.as_str(), esp.account.as_str())).map_err(db_err)? {
                Some(bytes) => Ok(Some(decode("account", bytes.value())?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn put_account(&self, record: &AccountRecord) -> Result<(), StoreError> {
        let bytes = encode("account", record)?;
        let record = record.clone();
        self.write(move |txn| {
            let mut table = txn.open_table(ACCOUNTS).map_err(db_err)?;
            let key = (record.esp.provider.as_str(), record.esp.account.as_str());
            let held: Option<AccountRecord> = match table.get(key).map_err(db_err)? {
                Some(bytes) => Some(decode("account", bytes.value())?),
                None => None,
            };
            if held.is_some_and(|held| held.tenant != record.tenant) {
                return Err(StoreError::Conflict);
            }
            table.insert(key, bytes.as_slice()).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn put_authorisation(&self, pending: &PendingAuthorisation) -> Result<(), StoreError> {
        let bytes = encode("authorisation", pending)?;
        let key = (pending.tenant.to_string(), pending.nonce_hash.clone());
        self.write(move |txn| {
            let mut table = txn.open_table(AUTHORISATIONS).map_err(db_err)?;
            table.insert((key.0.as_str(), key.1.as_str()), bytes.as_slice()).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn take_authorisation(
        &self,
        tenant: &TenantId,
        nonce_hash: &str,
    ) -> Result<Option<PendingAuthorisation>, StoreError> {
        let key = (tenant.to_string(), nonce_hash.to_owned());
        // One write transaction at a time: the first remove wins, a later one finds nothing (M4).
        self.write(move |txn| {
            let mut table = txn.open_table(AUTHORISATIONS).map_err(db_err)?;
            let removed = table.remove((key.0.as_str(), key.1.as_str())).map_err(db_err)?;
            match removed {
                Some(bytes) => Ok(Some(decode("authorisation", bytes.value())?)),
                None => Ok(None),
            }
        })
        .await
    }
}
