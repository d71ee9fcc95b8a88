//! The approval queue through the pending index, re-read consistently.

use crate::DynamoStore;
use crate::codec::{from_item, get_s, key_pairs, s};
use crate::keys::pending_pk;
use async_trait::async_trait;
use optisync_domain::{ApprovalEntry, LinkId, TenantId};
use optisync_ports::{ApprovalQueue, StoreError};

#[async_trait]
impl ApprovalQueue for DynamoStore {
    async fn pending_approvals(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ApprovalEntry>, StoreError> {
        let mut position = after.map(str::to_owned);
        let mut out = Vec::new();
        while out.len() < limit {
            let (condition, mut values) = (
                if position.is_some() { "gsi1pk = :p AND gsi1sk > :after" } else { "gsi1pk = :p" },
                vec![(":p", s(&pending_pk(tenant, link)))],
            );
            if let Some(p) = &position {
                values.push((":after", s(p)));
            }
            let want = limit - out.len();
            let named = self.query_all(Some("gsi1"), condition, &values, Some(want)).await?;
            let Some(last) = named.last() else { break };
            position = get_s(last, "gsi1sk").map(str::to_owned);
            let entries: Vec<ApprovalEntry> =
                self.batch_get(key_pairs(&named)).await?.iter().map(from_item).collect::<Result<_, _>>()?;
            // The index lags behind: an entry decided a moment ago may still be named in it.
            out.extend(optisync_ports::queue_page(entries, None, want));
            if named.len() < want || position.is_none() {
                break;
            }
        }
        out.truncate(limit);
        Ok(out)
    }
}
