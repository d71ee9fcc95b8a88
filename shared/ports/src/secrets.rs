//! The secret store port.

use crate::StoreError;
use async_trait::async_trait;

/// Secrets: ESP API keys, OAuth tokens, connector signing secrets (Secrets Manager in AWS). Never in the
/// state table, never in a log.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// The secret's current value, if it exists.
    async fn get(&self, name: &str) -> Result<Option<String>, StoreError>;
    /// Creates or replaces the secret's value.
    async fn put(&self, name: &str, value: &str) -> Result<(), StoreError>;
}
