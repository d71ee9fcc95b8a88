//! The local secrets.

use crate::EmbeddedStore;
use crate::error::db_err;
use crate::tables::SECRETS;
use async_trait::async_trait;
use optisync_ports::{SecretStore, StoreError};

/// Locally, secrets (OAuth tokens, API keys) live in the same file; in AWS they go to Secrets Manager.
#[async_trait]
impl SecretStore for EmbeddedStore {
    async fn get(&self, name: &str) -> Result<Option<String>, StoreError> {
        let name = name.to_owned();
        self.read(move |txn| {
            let secrets = txn.open_table(SECRETS).map_err(db_err)?;
            Ok(secrets.get(name.as_str()).map_err(db_err)?.map(|v| v.value().to_owned()))
        })
        .await
    }

    async fn put(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let (name, value) = (name.to_owned(), value.to_owned());
        self.write(move |txn| {
            txn.open_table(SECRETS).map_err(db_err)?.insert(name.as_str(), value.as_str()).map_err(db_err)?;
            Ok(())
        })
        .await
    }
}
