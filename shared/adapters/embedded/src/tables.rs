//! The file's layout: one redb table per kind of record, with tuple keys so that one link's items (or
//! one tenant's links and feed) are a contiguous range whatever characters the ids contain. A link's
//! records are keyed by its [`scope`], tenant and link together (R-K1).

use optisync_domain::{LinkId, TenantId};
use optisync_ports::ItemKey;
use redb::TableDefinition;

/// State items: (link scope, kind, assignment id or R-B2 e-mail key) → versioned JSON.
pub(crate) const ITEMS: TableDefinition<(&str, u8, &str), &[u8]> = TableDefinition::new("items");
/// Index of mirror entries by the e-mail they use: (link scope, e-mail key, assignment id) → ().
pub(crate) const MIRROR_BY_EMAIL: TableDefinition<(&str, &str, &str), ()> = TableDefinition::new("mirror_by_email");
/// Links: (tenant, link id) → JSON.
pub(crate) const LINKS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("links");
/// Tenant settings: tenant → JSON.
pub(crate) const TENANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenants");
/// ESP accounts: (provider, account id) → JSON (the record names its tenant).
pub(crate) const ACCOUNTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("accounts");
/// Pending OAuth authorisations (M4): (tenant, nonce hash) → JSON.
pub(crate) const AUTHORISATIONS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("oauth_pending");
/// The command feed: (tenant, sequence number) → JSON.
pub(crate) const FEED: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("feed");
/// Command ids already in a tenant's feed: (tenant, command id) → sequence number.
pub(crate) const COMMAND_IDS: TableDefinition<(&str, &str), u64> = TableDefinition::new("command_ids");
/// (tenant, command id) → the connector's result, JSON.
pub(crate) const RESULTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("results");
/// (link scope, committed at in epoch ms, sequence within that millisecond) → audit entry (JSON).
pub(crate) const AUDIT: TableDefinition<(&str, u64, u64), &[u8]> = TableDefinition::new("audit");
/// link scope → (version, run state).
pub(crate) const RUNS: TableDefinition<&str, (u64, &str)> = TableDefinition::new("runs");
/// (link scope, run, index) → (expires at in epoch seconds, chunk): a run's working data.
pub(crate) const CHUNKS: TableDefinition<(&str, &str, u64), (i64, &str)> = TableDefinition::new("run_chunks");
/// Leases: name → JSON (owner, expiry).
pub(crate) const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");
/// Local secrets: name → value.
pub(crate) const SECRETS: TableDefinition<&str, &str> = TableDefinition::new("secrets");
/// The inbox: (tenant, key) → JSON (the entry and whether it was processed).
pub(crate) const INBOX: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("inbox");

/// Erased recipients (R-J2, R-J3): (tenant, keyed hash of the e-mail) → the tombstone, JSON.
pub(crate) const ERASED: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("erased");

/// The deletion report outbox (R-J2): (tenant, report id) → the report, JSON.
pub(crate) const REPORTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("erasure_reports");
/// (tenant, report id) → when a delivered report expires (R-J6; an undelivered one has none).
pub(crate) const REPORT_EXPIRY: TableDefinition<(&str, &str), i64> = TableDefinition::new("report_expiry");

/// The kind of a state item in [`ITEMS`]: a mirror entry.
pub(crate) const MIRROR: u8 = 0;
/// A recipient state.
pub(crate) const RECIPIENT: u8 = 1;
/// An approval entry.
pub(crate) const APPROVAL: u8 = 2;

/// The key component naming one tenant's link (R-K1): the tenant's length, the tenant, then the link, so
/// no two (tenant, link) pairs share a scope whatever characters the ids contain.
pub(crate) fn scope(tenant: &TenantId, link: &LinkId) -> String {
    format!("{}:{tenant}:{link}", tenant.as_str().len())
}

/// The link an item key belongs to.
pub(crate) fn item_link(key: &ItemKey) -> &LinkId {
    match key {
        ItemKey::Mirror(l, _) | ItemKey::Recipient(l, _) | ItemKey::Approval(l, _) => l,
    }
}

/// The table key of an item key under its link's [`scope`].
pub(crate) fn item_key<'a>(scope: &'a str, key: &'a ItemKey) -> (&'a str, u8, &'a str) {
    match key {
        ItemKey::Mirror(_, id) => (scope, MIRROR, id.as_str()),
        ItemKey::Recipient(_, e) => (scope, RECIPIENT, e.as_str()),
        ItemKey::Approval(_, e) => (scope, APPROVAL, e.as_str()),
    }
}

/// The smallest string after every string that equals `s` (for ranges over one tuple element).
pub(crate) fn successor(s: &str) -> String {
    format!("{s}\0")
}

// R-J6: retention. Expiries live beside the records they belong to (epoch ms), so a purge reads only
// these tables; what outlives an expired recipient state is its tombstone under a keyed hash.

/// (link scope, kind, key) of an [`ITEMS`] record → when it expires.
pub(crate) const ITEM_EXPIRY: TableDefinition<(&str, u8, &str), i64> = TableDefinition::new("item_expiry");
/// (tenant, key) of an [`INBOX`] entry → when it expires.
pub(crate) const INBOX_EXPIRY: TableDefinition<(&str, &str), i64> = TableDefinition::new("inbox_expiry");
/// (tenant, command id) → when the command's feed entry, id and result expire.
pub(crate) const COMMAND_EXPIRY: TableDefinition<(&str, &str), i64> = TableDefinition::new("command_expiry");
/// (link scope, keyed hash of the e-mail) → the R-J3 tombstone an expired recipient state left (JSON).
pub(crate) const TOMBSTONES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("tombstones");
/// tenant → the key of its e-mail hashes (random, made on first use).
pub(crate) const HASH_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("hash_keys");
/// tenant → the last sequence number of its feed (a purge must not set it back).
pub(crate) const FEED_SEQ: TableDefinition<&str, u64> = TableDefinition::new("feed_seq");
