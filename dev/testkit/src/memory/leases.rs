//! Leases in memory.

use super::MemoryStore;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optisync_ports::*;

#[async_trait]
impl Leases for MemoryStore {
    async fn try_lease(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        match inner.leases.get(name) {
            Some((holder, expires)) if holder != owner && *expires > now => Ok(false),
            _ => {
                inner.wrote(1);
                inner.leases.insert(name.to_owned(), (owner.to_owned(), until));
                Ok(true)
            }
        }
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.leases.get(name).is_some_and(|(holder, _)| holder == owner) {
            inner.wrote(1);
            inner.leases.remove(name);
        }
        Ok(())
    }
}
