//! The file's layout: one redb table per kind of record, with tuple keys so that one link's items (or
//! one tenant's links and feed) are a contiguous range whatever characters the ids contain.

use optisync_ports::ItemKey;
use redb::TableDefinition;

/// State items: (link, kind, assignment id or R-B2 e-mail key) → versioned JSON.
pub(crate) const ITEMS: TableDefinition<(&str, u8, &str), &[u8]> = TableDefinition::new("items");
/// Index of mirror entries by the e-mail they use: (link, e-mail key, assignment id) → ().
pub(crate) const MIRROR_BY_EMAIL: TableDefinition<(&str, &str, &str), ()> = TableDefinition::new("mirror_by_email");
/// Links: (tenant, link id) → JSON.
pub(crate) const LINKS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("links");
/// The tenant a link id is stored under, so a link that changes tenant is not listed twice.
pub(crate) const LINK_TENANT: TableDefinition<&str, &str> = TableDefinition::new("link_tenant");
/// Tenant settings: tenant → JSON.
pub(crate) const TENANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenants");
/// ESP accounts: (provider, account id) → JSON (the record names its tenant).
pub(crate) const ACCOUNTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("accounts");
/// The command feed: (tenant, sequence number) → JSON.
pub(crate) const FEED: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("feed");
/// Command ids already in a tenant's feed: (tenant, command id) → sequence number.
pub(crate) const COMMAND_IDS: TableDefinition<(&str, &str), u64> = TableDefinition::new("command_ids");
/// (tenant, command id) → the connector's result, JSON.
pub(crate) const RESULTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("results");
/// (link, committed at in epoch ms, sequence within that millisecond) → audit entry (JSON).
pub(crate) const AUDIT: TableDefinition<(&str, u64, u64), &[u8]> = TableDefinition::new("audit");
/// link → (version, run state).
pub(crate) const RUNS: TableDefinition<&str, (u64, &str)> = TableDefinition::new("runs");
/// (link, run, index) → (expires at in epoch seconds, chunk): a run's working data.
pub(crate) const CHUNKS: TableDefinition<(&str, &str, u64), (i64, &str)> = TableDefinition::new("run_chunks");
/// Leases: name → JSON (owner, expiry).
pub(crate) const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");
/// Local secrets: name → value.
pub(crate) const SECRETS: TableDefinition<&str, &str> = TableDefinition::new("secrets");
/// The inbox: (tenant, key) → JSON (the entry and whether it was processed).
pub(crate) const INBOX: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("inbox");

/// The kind of a state item in [`ITEMS`]: a mirror entry.
pub(crate) const MIRROR: u8 = 0;
/// A recipient state.
pub(crate) const RECIPIENT: u8 = 1;
/// An approval entry.
pub(crate) const APPROVAL: u8 = 2;

/// The table key of an item key.
pub(crate) fn item_key(key: &ItemKey) -> (&str, u8, &str) {
    match key {
        ItemKey::Mirror(l, id) => (l.as_str(), MIRROR, id.as_str()),
        ItemKey::Recipient(l, e) => (l.as_str(), RECIPIENT, e.as_str()),
        ItemKey::Approval(l, e) => (l.as_str(), APPROVAL, e.as_str()),
    }
}

/// The smallest string after every string that equals `s` (for ranges over one tuple element).
pub(crate) fn successor(s: &str) -> String {
    format!("{s}\0")
}
