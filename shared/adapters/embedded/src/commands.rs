//! The per-tenant command feed and the connector's results.

use crate::EmbeddedStore;
use crate::codec::{decode, encode};
use crate::error::db_err;
use crate::retention::{expired, ms};
use crate::tables::{COMMAND_EXPIRY, COMMAND_IDS, FEED, RESULTS, TENANTS};
use async_trait::async_trait;
use optisync_domain::{CommandId, CommandResult, OptigemCommand, TenantId, TenantSettings};
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
        let (tenant, now) = (tenant.to_string(), ms(self.now()));
        self.read(move |txn| {
            let feed = txn.open_table(FEED).map_err(db_err)?;
            let expiry = txn.open_table(COMMAND_EXPIRY).map_err(db_err)?;
            let mut out = Vec::new();
            for entry in feed.range((tenant.as_str(), first)..=(tenant.as_str(), u64::MAX)).map_err(db_err)? {
                if out.len() >= limit {
                    break;
                }
                let (key, bytes) = entry.map_err(db_err)?;
                let command: OptigemCommand = decode("command", bytes.value())?;
                // R-J6: an expired command is skipped.
                if !expired(&expiry, (tenant.as_str(), command.id().as_str()), now)? {
                    out.push((key.value().1, command));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn command(&self, tenant: &TenantId, id: &CommandId) -> Result<Option<(u64, OptigemCommand)>, StoreError> {
        let (tenant, id, now) = (tenant.to_string(), id.to_string(), ms(self.now()));
        self.read(move |txn| {
            if expired(&txn.open_table(COMMAND_EXPIRY).map_err(db_err)?, (tenant.as_str(), id.as_str()), now)? {
                return Ok(None);
            }
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
        let (tenant, id, now) = (tenant.to_string(), id.to_string(), self.now());
        self.write(move |txn| {
            let key = (tenant.as_str(), id.as_str());
            let mut expiry = txn.open_table(COMMAND_EXPIRY).map_err(db_err)?;
            if txn.open_table(COMMAND_IDS).map_err(db_err)?.get(key).map_err(db_err)?.is_none()
                || expired(&expiry, key, ms(now))?
            {
                return Err(StoreError::Permanent("no such command".into()));
            }
            let mut results = txn.open_table(RESULTS).map_err(db_err)?;
            let recorded_done = match results.get(key).map_err(db_err)? {
                Some(bytes) => decode::<CommandResult>("command result", bytes.value())?.is_done(),
                None => false,
            };
            if !recorded_done {
                results.insert(key, bytes.as_slice()).map_err(db_err)?;
                // R-J6: an acknowledged command and its result are kept for the tenant's retention.
                let settings: TenantSettings =
                    match txn.open_table(TENANTS).map_err(db_err)?.get(tenant.as_str()).map_err(db_err)? {
                        Some(bytes) => decode("tenant settings", bytes.value())?,
                        None => TenantSettings::default(),
                    };
                expiry.insert(key, ms(now + settings.retention.commands())).map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn command_result(&self, tenant: &TenantId, id: &CommandId) -> Result<Option<CommandResult>, StoreError> {
        let (tenant, id, now) = (tenant.to_string(), id.to_string(), ms(self.now()));
        self.read(move |txn| {
            if expired(&txn.open_table(COMMAND_EXPIRY).map_err(db_err)?, (tenant.as_str(), id.as_str()), now)? {
                return Ok(None);
            }
            let results = txn.open_table(RESULTS).map_err(db_err)?;
            match results.get((tenant.as_str(), id.as_str())).map_err(db_err)? {
                Some(bytes) => Ok(Some(decode("command result", bytes.value())?)),
                None => Ok(None),
            }
        })
        .await
    }
}
