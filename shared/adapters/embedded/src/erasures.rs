//! Erasure mode's side of the store (R-J2, R-J3): a recipient erased from a link leaves only the keyed
//! hash of its e-mail with the tombstone. The hash is keyed with the tenant's own key (the `hash_keys`
//! table), the one of the R-J6 tombstones.

use crate::EmbeddedStore;
use crate::codec::{decode, encode};
use crate::error::db_err;
use crate::retention::{email_hash, email_hash_or_new_key};
use crate::tables::{APPROVAL, ERASED, HASH_KEYS, ITEMS, RECIPIENT, TOMBSTONES, scope};
use async_trait::async_trait;
use optisync_domain::{Email, LinkId, TenantId, Tombstone};
use optisync_ports::{Erasures, StoreError};
use redb::ReadableTable;

#[async_trait]
impl Erasures for EmbeddedStore {
    async fn erase_recipient(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        email: &Email,
        tombstone: &Tombstone,
    ) -> Result<(), StoreError> {
        let (scope, key, tenant, email) =
            (scope(tenant, link), email.key().to_owned(), tenant.to_string(), email.clone());
        let tombstone = tombstone.clone();
        self.write(move |txn| {
            let hash = email_hash_or_new_key(&mut txn.open_table(HASH_KEYS).map_err(db_err)?, &tenant, &email)?;
            let mut items = txn.open_table(ITEMS).map_err(db_err)?;
            items.remove((scope.as_str(), RECIPIENT, key.as_str())).map_err(db_err)?;
            items.remove((scope.as_str(), APPROVAL, key.as_str())).map_err(db_err)?;
            // The link's R-J3 tombstone of an expirable state goes too: the tenant's erased marker replaces it.
            txn.open_table(TOMBSTONES).map_err(db_err)?.remove((scope.as_str(), hash.as_str())).map_err(db_err)?;
            let mut erased = txn.open_table(ERASED).map_err(db_err)?;
            let kept: Option<Tombstone> = match erased.get((tenant.as_str(), hash.as_str())).map_err(db_err)? {
                Some(bytes) => Some(decode("erased recipient", bytes.value())?),
                None => None,
            };
            if kept.is_none_or(|k| k.at < tombstone.at) {
                let bytes = encode("erased recipient", &tombstone)?;
                erased.insert((tenant.as_str(), hash.as_str()), bytes.as_slice()).map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn erased(&self, tenant: &TenantId, email: &Email) -> Result<Option<Tombstone>, StoreError> {
        let (tenant, email) = (tenant.to_string(), email.clone());
        self.read(move |txn| {
            let keys = txn.open_table(HASH_KEYS).map_err(db_err)?;
            let Some(hash) = email_hash(&keys, &tenant, &email)? else { return Ok(None) };
            let erased = txn.open_table(ERASED).map_err(db_err)?;
            match erased.get((tenant.as_str(), hash.as_str())).map_err(db_err)? {
                Some(bytes) => Ok(Some(decode("erased recipient", bytes.value())?)),
                None => Ok(None),
            }
        })
        .await
    }
}
