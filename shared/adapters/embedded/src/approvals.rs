//! The approval queue of a link.

use crate::EmbeddedStore;
use crate::codec::{GotItem, decode};
use crate::error::db_err;
use crate::tables::{APPROVAL, ITEMS};
use async_trait::async_trait;
use optisync_domain::{ApprovalEntry, LinkId, TenantId};
use optisync_ports::{ApprovalQueue, StoreError};

#[async_trait]
impl ApprovalQueue for EmbeddedStore {
    async fn pending_approvals(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ApprovalEntry>, StoreError> {
        let (link, after) = (crate::tables::scope(tenant, link), after.map(str::to_owned));
        self.read(move |txn| {
            let items = txn.open_table(ITEMS).map_err(db_err)?;
            let l = link.as_str();
            let mut entries = Vec::new();
            for row in items.range((l, APPROVAL, "")..(l, APPROVAL + 1, "")).map_err(db_err)? {
                let (_, value) = row.map_err(db_err)?;
                let got: GotItem<ApprovalEntry> = decode("approval entry", value.value())?;
                entries.push(got.value);
            }
            Ok(optisync_ports::queue_page(entries, after.as_deref(), limit))
        })
        .await
    }
}
