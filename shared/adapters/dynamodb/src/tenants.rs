//! Tenant settings, ESP accounts and pending OAuth authorisations.

use crate::DynamoStore;
use crate::codec::{from_item, key_pairs, n, s, to_json};
use crate::error::classify;
use crate::keys::{
    ACCOUNT_SK, AUTHORISATION_SK, SETTINGS_SK, account_pk, accounts_pk, accounts_sk, authorisation_pk, tenant_pk,
};
use crate::{item_size, write_units};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use optisync_domain::{AccountRecord, EspAccount, TenantId, TenantSettings};
use optisync_ports::{PendingAuthorisation, StoreError, Tenants};
use std::collections::HashMap;

#[async_trait]
impl Tenants for DynamoStore {
    async fn tenant_settings(&self, tenant: &TenantId) -> Result<TenantSettings, StoreError> {
        match self.get_item(&tenant_pk(tenant), SETTINGS_SK).await? {
            Some(item) => from_item(&item),
            None => Ok(TenantSettings::default()),
        }
    }

    async fn put_tenant_settings(&self, tenant: &TenantId, settings: &TenantSettings) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(&tenant_pk(tenant))),
            ("sk".to_owned(), s(SETTINGS_SK)),
            ("v".to_owned(), to_json(settings)?),
        ]);
        self.meter(0.0, write_units(item_size(&item)));
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(classify)?;
        Ok(())
    }

    async fn accounts(&self, tenant: &TenantId) -> Result<Vec<AccountRecord>, StoreError> {
        let keys = self.query_all(Some("gsi2"), "gsi2pk = :pk", &[(":pk", s(&accounts_pk(tenant)))], None).await?;
        let mut accounts: Vec<AccountRecord> =
            self.batch_get(key_pairs(&keys)).await?.iter().map(from_item).collect::<Result<_, _>>()?;
        // The index is eventually consistent: the consistent read decides whose account it is.
        accounts.retain(|a| &a.tenant == tenant);
        accounts.sort_by(|a, b| a.esp.cmp(&b.esp));
        Ok(accounts)
    }

    async fn account(&self, esp: &EspAccount) -> Result<Option<AccountRecord>, StoreError> {
        match self.get_item(&account_pk(esp), ACCOUNT_SK).await? {
            Some(item) => Ok(Some(from_item(&item)?)),
            None => Ok(None),
        }
    }

    async fn put_account(&self, record: &AccountRecord) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(&account_pk(&record.esp))),
            ("sk".to_owned(), s(ACCOUNT_SK)),
            ("tenant".to_owned(), s(record.tenant.as_str())),
            ("v".to_owned(), to_json(record)?),
            ("gsi2pk".to_owned(), s(&accounts_pk(&record.tenant))),
            ("gsi2sk".to_owned(), s(&accounts_sk(&record.esp))),
        ]);
        self.meter(0.0, write_units(item_size(&item)));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // An account id names its secrets, so it belongs to one tenant (R-H1).
            .condition_expression("attribute_not_exists(pk) OR tenant = :t")
            .expression_attribute_values(":t", s(record.tenant.as_str()))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn put_authorisation(&self, pending: &PendingAuthorisation) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(&authorisation_pk(&pending.tenant, &pending.nonce_hash))),
            ("sk".to_owned(), s(AUTHORISATION_SK)),
            ("v".to_owned(), to_json(pending)?),
            // Let DynamoDB drop it a day after it ran out; take_authorisation's caller checks the expiry.
            ("expires_at".to_owned(), n((pending.expires_at.timestamp() + 86_400).max(0) as u64)),
        ]);
        self.meter(0.0, write_units(item_size(&item)));
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(classify)?;
        Ok(())
    }

    async fn take_authorisation(
        &self,
        tenant: &TenantId,
        nonce_hash: &str,
    ) -> Result<Option<PendingAuthorisation>, StoreError> {
        self.meter(0.0, 1.0);
        // A conditional delete: of two takes of one nonce, the second finds nothing (M4).
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(&authorisation_pk(tenant, nonce_hash)))
            .key("sk", s(AUTHORISATION_SK))
            .condition_expression("attribute_exists(pk)")
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result.map_err(classify) {
            Ok(output) => match output.attributes {
                Some(item) => Ok(Some(from_item(&item)?)),
                None => Err(StoreError::Permanent("DeleteItem returned no attributes".into())),
            },
            Err(StoreError::Conflict) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
