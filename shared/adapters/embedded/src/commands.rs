//! The per-tenant command feed and the connector's results.

use crate::EmbeddedStore;
use crate::codec::{decode, encode};
use crate::error::db_err;
use crate::tables::{COMMAND_IDS, FEED, RESULTS};
use async_trait::async_trait;
use optisync_domain::{CommandId, CommandResult, OptigemCommand, TenantId};
use optisync_ports::{CommandFeed, StoreError};
use redb::ReadableTable;

#[async_trait]
impl CommandFeed for EmbeddedStore {
    async fn commands(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, OptigemCommand)>, StoreError> {
        let Some(first) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let tenant = tenant.to_string();
        self.read(move |txn| {
            let feed = txn.open_table(FEED).map_err(db_err)?;
            let mut out = Vec::new();
            for entry in feed.range((tenant.as_str(), first)..=(tenant.as_str(), u64::MAX)).map_err(db_err)?.take(limit)
            {
                let (key, bytes) = entry.map_err(db_err)?;
                out.push((key.value().1, decode("command", bytes.value())?));
            }
            Ok(out)
        })
        .await
    }

    async fn command(&self, tenant: &TenantId, id: &CommandId) -> Result<Option<(u64, OptigemCommand)>, StoreError> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.read(move |txn| {
            let Some(seq) =
                txn.open_table(COMMAND_IDS).map_err(db_err)?.get((tenant.as_str(), id.as_str())).map_err(db_err)?
            else {
                return Ok(None);
            };
            let seq = seq.value();
            let feed = txn.open_table(FEED).map_err(db_err)?;
            let Some(bytes) = feed.get((tenant.as_str(), seq)).map_err(db_err)? else { return Ok(None) };
            Ok(Some((seq, decode("command", bytes.value())?)))
        })
        .await
    }

    async fn record_result(&self, tenant: &TenantId, id: &CommandId, result: &CommandResult) -> Result<(), StoreError> {
        let bytes = encode("command result", result)?;
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.write(move |txn| {
            let key = (tenant.as_str(), id.as_str());
            if txn.open_table(COMMAND_IDS).map_err(db_err)?.get(key).map_err(db_err)?.is_none() {
                return Err(StoreError::Permanent("no such command".into()));
            }
            let mut results = txn.open_table(RESULTS).map_err(db_err)?;
            let recorded_done = match results.get(key).map_err(db_err)? {
                Some(bytes) => decode::<CommandResult>("command result", bytes.value())?.is_done(),
                None => false,
            };
            if !recorded_done {
                results.insert(key, bytes.as_slice()).map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn command_result(&self, tenant: &TenantId, id: &CommandId) -> Result<Option<CommandResult>, StoreError> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.read(move |txn| {
            let results = txn.open_table(RESULTS).map_err(db_err)?;
            match results.get((tenant.as_str(), id.as_str())).map_err(db_err)? {
                Some(bytes) => Ok(Some(decode("command result", bytes.value())?)),
                None => Ok(None),
            }
        })
        .await
    }
}
