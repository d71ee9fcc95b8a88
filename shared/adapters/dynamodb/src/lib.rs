//! The state store on DynamoDB: one table (`pk`/`sk`, two sparse GSIs, a TTL attribute), conditional
//! writes with version numbers, `TransactWriteItems` for commits, leases by conditional put.
//!
//! The key design and every access pattern are in `docs/state.md`. Items keep their value as JSON in
//! `v` and their version in `ver`.

mod approvals;
mod audit;
mod codec;
mod commands;
mod erasures;
mod error;
mod inbox;
mod keys;
mod leases;
mod links;
mod reports;
mod retention;
mod runs;
#[cfg(feature = "test-util")]
mod schema;
mod sync_state;
mod table;
mod tenants;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// One table item, as the SDK hands it over.
type Item = HashMap<String, AttributeValue>;

/// Most actions one `TransactWriteItems` takes.
pub const MAX_TRANSACTION_ITEMS: usize = optisync_ports::MAX_COMMIT_ITEMS;
/// Most keys one `BatchGetItem` takes.
const MAX_BATCH_GET: usize = 100;

/// Read and write capacity units consumed, by DynamoDB's sizing rules: a read unit per 4 KB read
/// consistently (half for an eventually consistent read), a write unit per 1 KB written, both doubled
/// inside a transaction. Counted here because emulators do not report them faithfully.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Read capacity units.
    pub read_units: f64,
    /// Write capacity units.
    pub write_units: f64,
    /// Requests sent.
    pub requests: u64,
}

/// The DynamoDB state store.
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    page_size: Option<i32>,
    usage: std::sync::Arc<std::sync::Mutex<Usage>>,
    /// The clock expiries are dated and checked by (R-J6); the system clock when none is given.
    clock: Option<std::sync::Arc<dyn optisync_ports::Clock>>,
    /// Each tenant's e-mail hash key, once read (R-J3); it never changes.
    hash_keys: std::sync::Arc<std::sync::Mutex<HashMap<optisync_domain::TenantId, Vec<u8>>>>,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore").field("table", &self.table).finish_non_exhaustive()
    }
}

impl DynamoStore {
    /// A store on an existing table.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            page_size: None,
            usage: Default::default(),
            clock: None,
            hash_keys: Default::default(),
        }
    }

    /// A store that dates and checks expiries (R-J6) by `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: std::sync::Arc<dyn optisync_ports::Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Capacity used since the store was made or [`DynamoStore::take_usage`] was last called.
    pub fn take_usage(&self) -> Usage {
        std::mem::take(&mut *self.usage.lock().expect("usage lock"))
    }

    fn meter(&self, read_units: f64, write_units: f64) {
        let mut usage = self.usage.lock().expect("usage lock");
        usage.read_units += read_units;
        usage.write_units += write_units;
        usage.requests += 1;
    }

    /// Limits every query page to `n` items (tests use it to make paging visible).
    pub fn with_page_size(mut self, n: i32) -> Self {
        self.page_size = Some(n);
        self
    }
}

/// An item's size as DynamoDB counts it: attribute names plus values.
fn item_size(item: &Item) -> usize {
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => n.len().div_ceil(2) + 1,
            AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
            AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value(v)).sum::<usize>(),
            AttributeValue::M(m) => 3 + m.iter().map(|(k, v)| 1 + k.len() + value(v)).sum::<usize>(),
            _ => 8,
        }
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum()
}

fn read_units(bytes: usize, consistent: bool) -> f64 {
    let units = bytes.div_ceil(4096).max(1) as f64;
    if consistent { units } else { units / 2.0 }
}

fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}
