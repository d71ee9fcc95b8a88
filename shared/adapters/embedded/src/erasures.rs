//! Erasure mode's side of the store (R-J2, R-J3): a recipient erased from a link leaves only the keyed
//! hash of its e-mail with the tombstone.

use crate::EmbeddedStore;
use crate::codec::{decode, encode};
use crate::error::db_err;
use crate::tables::{APPROVAL, ERASED, ITEMS, RECIPIENT, scope};
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
        hash: &str,
        tombstone: &Tombstone,
    ) -> Result<(), StoreError> {
        let (scope, key, tenant, hash) =
            (scope(tenant, link), email.key().to_owned(), tenant.to_string(), hash.to_owned());
        let tombstone = tombstone.clone();
        self.write(move |txn| {
            let mut items = txn.open_table(ITEMS).map_err(db_err)?;
            items.remove((scope.as_str(), RECIPIENT, key.as_str())).map_err(db_err)?;
            items.remove((scope.as_str(), APPROVAL, key.as_str())).map_err(db_err)?;
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

    async fn erased(&self, tenant: &TenantId, hash: &str) -> Result<Option<Tombstone>, StoreError> {
        let (tenant, hash) = (tenant.to_string(), hash.to_owned());
        self.read(move |txn| {
            let erased = txn.open_table(ERASED).map_err(db_err)?;
            match erased.get((tenant.as_str(), hash.as_str())).map_err(db_err)? {
                Some(bytes) => Ok(Some(decode("erased recipient", bytes.value())?)),
                None => Ok(None),
            }
        })
        .await
    }
}
