//! Leases, decided inside one write transaction.

use crate::EmbeddedStore;
use crate::codec::{encode, get_json};
use crate::error::db_err;
use crate::tables::LEASES;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optisync_ports::{Leases, StoreError};
use serde::{Deserialize, Serialize};

/// A lease as stored: who holds it and until when.
#[derive(Serialize, Deserialize)]
struct Lease {
    owner: String,
    until: DateTime<Utc>,
}

#[async_trait]
impl Leases for EmbeddedStore {
    async fn try_lease(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        self.write(move |txn| {
            let mut leases = txn.open_table(LEASES).map_err(db_err)?;
            if let Some(held) = get_json::<Lease>(&leases, &name, "lease")?
                && held.owner != owner
                && held.until > now
            {
                return Ok(false);
            }
            leases.insert(name.as_str(), encode("lease", &Lease { owner, until })?.as_slice()).map_err(db_err)?;
            Ok(true)
        })
        .await
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        self.write(move |txn| {
            let mut leases = txn.open_table(LEASES).map_err(db_err)?;
            if get_json::<Lease>(&leases, &name, "lease")?.is_some_and(|held| held.owner == owner) {
                leases.remove(name.as_str()).map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }
}
