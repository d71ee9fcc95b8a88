//! Secrets in memory.

use async_trait::async_trait;
use optisync_ports::*;
use std::collections::HashMap;
use std::sync::Mutex;

/// Secrets in memory, for tests and the sandbox.
#[derive(Default)]
pub struct MemorySecrets {
    values: Mutex<HashMap<String, String>>,
}

#[async_trait]
impl SecretStore for MemorySecrets {
    async fn get(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.values.lock().expect("secrets lock").get(name).cloned())
    }

    async fn put(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.values.lock().expect("secrets lock").insert(name.to_owned(), value.to_owned());
        Ok(())
    }
}
