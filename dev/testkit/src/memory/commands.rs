//! The command feed and the connector's results in memory.

use super::MemoryStore;
use async_trait::async_trait;
use optisync_domain::{CommandId, CommandResult, OptigemCommand, TenantId};
use optisync_ports::*;

#[async_trait]
impl CommandFeed for MemoryStore {
    async fn commands(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, OptigemCommand)>, StoreError> {
        let now = self.now();
        let inner = self.lock();
        let feed = inner.commands.get(tenant).map(Vec::as_slice).unwrap_or_default();
        Ok(feed
            .iter()
            .filter(|(s, c)| *s > after && !inner.command_expired(tenant, c.id().as_str(), now))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn command(&self, tenant: &TenantId, id: &CommandId) -> Result<Option<(u64, OptigemCommand)>, StoreError> {
        let now = self.now();
        let inner = self.lock();
        if inner.command_expired(tenant, id.as_str(), now) {
            return Ok(None);
        }
        let feed = inner.commands.get(tenant).map(Vec::as_slice).unwrap_or_default();
        Ok(feed.iter().find(|(_, c)| c.id() == id).cloned())
    }

    async fn record_result(&self, tenant: &TenantId, id: &CommandId, result: &CommandResult) -> Result<(), StoreError> {
        let now = self.now();
        let mut inner = self.lock();
        if !inner.command_ids.contains(&(tenant.clone(), id.to_string()))
            || inner.command_expired(tenant, id.as_str(), now)
        {
            return Err(StoreError::Permanent("no such command".into()));
        }
        let key = (tenant.clone(), id.to_string());
        if !inner.results.get(&key).is_some_and(CommandResult::is_done) {
            inner.wrote(1);
            inner.results.insert(key.clone(), result.clone());
            // R-J6: an acknowledged command and its result are kept for the tenant's retention.
            let keep = inner.tenants.get(tenant).cloned().unwrap_or_default().retention.commands();
            inner.expiries.commands.insert(key, now + keep);
        }
        Ok(())
    }

    async fn command_result(&self, tenant: &TenantId, id: &CommandId) -> Result<Option<CommandResult>, StoreError> {
        let now = self.now();
        let inner = self.lock();
        if inner.command_expired(tenant, id.as_str(), now) {
            return Ok(None);
        }
        Ok(inner.results.get(&(tenant.clone(), id.to_string())).cloned())
    }
}
