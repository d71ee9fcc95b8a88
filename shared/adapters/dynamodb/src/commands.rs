//! The per-tenant command feed (numbered by a counter item, each id once by a marker item) and the
//! connector's results on the markers.

use crate::DynamoStore;
use crate::codec::{from_item, get_s, s, to_json};
use crate::error::classify;
use crate::keys::{COMMAND_SK, command_marker_pk, feed_pk, feed_sk};
use crate::retention::{epoch, is_expired};
use crate::write_units;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use optisync_domain::{CommandId, CommandResult, OptigemCommand, TenantId};
use optisync_ports::{CommandFeed, StoreError};

#[async_trait]
impl CommandFeed for DynamoStore {
    async fn commands(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, OptigemCommand)>, StoreError> {
        let items = self
            .query_all(
                None,
                "pk = :pk AND sk > :after",
                &[(":pk", s(&feed_pk(tenant))), (":after", s(&feed_sk(after)))],
                Some(limit),
            )
            .await?;
        // R-J6: acknowledged commands past their retention are skipped (TTL deletes late).
        let now = self.now();
        items
            .iter()
            .filter(|i| !is_expired(i, now))
            .map(|i| {
                let seq = get_s(i, "sk").and_then(|s| s.parse().ok()).unwrap_or(0);
                Ok((seq, from_item(i)?))
            })
            .collect()
    }

    async fn command(&self, tenant: &TenantId, id: &CommandId) -> Result<Option<(u64, OptigemCommand)>, StoreError> {
        let Some(marker) = self.get_item(&command_marker_pk(tenant, id.as_str()), COMMAND_SK).await? else {
            return Ok(None);
        };
        if is_expired(&marker, self.now()) {
            return Ok(None);
        }
        let seq = marker.get("seq").and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let Some(entry) = self.get_item(&feed_pk(tenant), &feed_sk(seq)).await? else { return Ok(None) };
        Ok(Some((seq, from_item(&entry)?)))
    }

    async fn record_result(&self, tenant: &TenantId, id: &CommandId, result: &CommandResult) -> Result<(), StoreError> {
        // On the command's marker: only an existing command not expired, and never over a `done` result.
        // R-J6: from the result on, marker and feed entry carry the TTL of the tenant's command retention.
        let value = to_json(result)?;
        let (now, keep) = (self.now(), self.retention(tenant).await?.commands());
        self.meter(0.0, write_units(256 + value.as_s().map_or(0, String::len)));
        let outcome = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&command_marker_pk(tenant, id.as_str())))
            .key("sk", s(COMMAND_SK))
            .update_expression("SET #result = :result, #done = :done, expires_at = :until")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(expires_at) OR expires_at > :now) \
                 AND (attribute_not_exists(#done) OR #done = :false)",
            )
            .expression_attribute_names("#result", "result")
            .expression_attribute_names("#done", "done")
            .expression_attribute_values(":result", value)
            .expression_attribute_values(":done", AttributeValue::Bool(result.is_done()))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":until", epoch(now + keep))
            .expression_attribute_values(":now", epoch(now))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match outcome.map_err(classify) {
            Ok(out) => {
                let seq = out.attributes.as_ref().and_then(|a| a.get("seq")).and_then(|v| v.as_n().ok());
                if let Some(seq) = seq.and_then(|v| v.parse::<u64>().ok()) {
                    self.meter(0.0, 1.0);
                    let updated = self
                        .client
                        .update_item()
                        .table_name(&self.table)
                        .key("pk", s(&feed_pk(tenant)))
                        .key("sk", s(&feed_sk(seq)))
                        .update_expression("SET expires_at = :until")
                        .condition_expression("attribute_exists(pk)")
                        .expression_attribute_values(":until", epoch(now + keep))
                        .send()
                        .await
                        .map_err(classify);
                    // A feed entry already gone (a TTL quicker than the marker's) needs no expiry.
                    match updated {
                        Ok(_) | Err(StoreError::Conflict) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
            Err(StoreError::Conflict) => {
                match self.get_item(&command_marker_pk(tenant, id.as_str()), COMMAND_SK).await? {
                    Some(marker) if !is_expired(&marker, now) => Ok(()), // already done: a later report changes nothing
                    _ => Err(StoreError::Permanent("no such command".into())),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn command_result(&self, tenant: &TenantId, id: &CommandId) -> Result<Option<CommandResult>, StoreError> {
        let Some(marker) = self.get_item(&command_marker_pk(tenant, id.as_str()), COMMAND_SK).await? else {
            return Ok(None);
        };
        if is_expired(&marker, self.now()) {
            return Ok(None);
        }
        match get_s(&marker, "result") {
            Some(raw) => serde_json::from_str(raw).map(Some).map_err(|e| StoreError::Permanent(format!("decode: {e}"))),
            None => Ok(None),
        }
    }
}
