//! The key schema of the table (`docs/state.md` is the contract): partition and sort keys of every
//! item kind, and the index partitions that name them.

use chrono::NaiveDate;
use optisync_domain::{AssignmentId, EspAccount, LinkId, TenantId};
use optisync_ports::ItemKey;

pub(crate) fn tenant_pk(t: &TenantId) -> String {
    format!("TENANT#{t}")
}
pub(crate) fn account_pk(esp: &EspAccount) -> String {
    format!("ACCOUNT#{}#{}", esp.provider, esp.account)
}
/// The partition of a link's state (R-K1: ids are unique only within a tenant, so the tenant is part of
/// every link-scoped key; neither id holds a `#`, R-K2).
pub(crate) fn link_pk(t: &TenantId, l: &LinkId) -> String {
    format!("LINK#{t}#{l}")
}
pub(crate) fn mirror_sk(id: &AssignmentId) -> String {
    format!("MIRROR#{id}")
}
pub(crate) fn recipient_sk(key: &str) -> String {
    format!("RECIPIENT#{key}")
}
pub(crate) fn approval_sk(key: &str) -> String {
    format!("APPROVAL#{key}")
}
pub(crate) fn by_email(t: &TenantId, l: &LinkId, key: &str) -> String {
    format!("{}#EMAIL#{key}", link_pk(t, l))
}
pub(crate) fn due_pk(t: &TenantId, l: &LinkId) -> String {
    format!("DUE#{t}#{l}")
}
pub(crate) fn feed_pk(t: &TenantId) -> String {
    format!("TENANT#{t}#FEED")
}
pub(crate) fn command_marker_pk(t: &TenantId, id: &str) -> String {
    format!("TENANT#{t}#COMMAND#{id}")
}
pub(crate) const SEQ_SK: &str = "COMMAND-SEQUENCE";
/// The partition of a pending OAuth authorisation (M4), by its tenant and the SHA-256 of its nonce.
pub(crate) fn authorisation_pk(t: &TenantId, nonce_hash: &str) -> String {
    format!("TENANT#{t}#OAUTH#{nonce_hash}")
}
/// The sort key of a pending OAuth authorisation (under [`authorisation_pk`]).
pub(crate) const AUTHORISATION_SK: &str = "OAUTH";

/// The table keys of a state item of a tenant's link.
pub(crate) fn item_keys(t: &TenantId, key: &ItemKey) -> (String, String) {
    match key {
        ItemKey::Mirror(l, id) => (link_pk(t, l), mirror_sk(id)),
        ItemKey::Recipient(l, k) => (link_pk(t, l), recipient_sk(k)),
        ItemKey::Approval(l, k) => (link_pk(t, l), approval_sk(k)),
    }
}

/// The highest chunk index (the sort key keeps 12 digits, so chunks sort by index).
pub(crate) const CHUNK_INDEX_MAX: u64 = 999_999_999_999;

/// The sort key of chunk `index` of a run's working data.
pub(crate) fn chunk_sk(run: &str, index: u64) -> String {
    format!("CHUNK#{run}#{:012}", index.min(CHUNK_INDEX_MAX))
}

/// The sort key of a link's run state (checkpoint and last result of the scheduled run).
pub(crate) const RUN_SK: &str = "RUN";

/// The index partition (gsi2) naming every link.
pub(crate) const ALL_LINKS: &str = "LINKS";

/// The sort key prefix of a link's audit entries (`AUDIT#{committed ms}#{hash}`).
pub(crate) const AUDIT_PREFIX: &str = "AUDIT#";

pub(crate) fn inbox_pk(tenant: &TenantId, key: &str) -> String {
    format!("INBOX#{tenant}#{key}")
}

/// The sort key of an erased recipient's tombstone under [`tenant_pk`], by the keyed hash of its e-mail
/// (R-J2, R-J3): no address in the key.
pub(crate) fn erased_sk(hash: &str) -> String {
    format!("ERASED#{hash}")
}
/// The sort-key prefix of a tenant's deletion reports (R-J2, under [`tenant_pk`]): `REPORT#{id}`, the id of
/// the report's `erasure_report` command (a hash, no address).
pub(crate) const REPORT_PREFIX: &str = "REPORT#";
pub(crate) fn report_sk(id: &str) -> String {
    format!("{REPORT_PREFIX}{id}")
}
/// The sort key of a tenant's e-mail hash key (under [`tenant_pk`], R-J3).
pub(crate) const HASH_KEY_SK: &str = "EMAIL-HASH-KEY";

/// The sort key of a tenant's settings (under [`tenant_pk`]).
pub(crate) const SETTINGS_SK: &str = "SETTINGS";

/// The sort key of an ESP account record (under [`account_pk`]).
pub(crate) const ACCOUNT_SK: &str = "ACCOUNT";

/// The index partition (gsi2) naming a tenant's ESP accounts.
pub(crate) fn accounts_pk(t: &TenantId) -> String {
    format!("ACCOUNTS#{t}")
}

/// An account's index sort key in [`accounts_pk`].
pub(crate) fn accounts_sk(esp: &EspAccount) -> String {
    format!("{}#{}", esp.provider, esp.account)
}

/// The sort-key prefix of a tenant's links (under [`tenant_pk`]).
pub(crate) const LINK_PREFIX: &str = "LINK#";

/// The sort key of a link under its tenant.
pub(crate) fn link_sk(l: &LinkId) -> String {
    format!("{LINK_PREFIX}{l}")
}

/// A link's index sort key in [`ALL_LINKS`].
pub(crate) fn all_links_sk(t: &TenantId, l: &LinkId) -> String {
    format!("{t}#{l}")
}

/// The index partition (gsi1) of a link's pending approval entries.
pub(crate) fn pending_pk(t: &TenantId, l: &LinkId) -> String {
    format!("{}#PENDING", link_pk(t, l))
}

/// A mirror entry's index sort key in [`due_pk`]: its next transition date, then its id.
pub(crate) fn due_sk(date: NaiveDate, id: &AssignmentId) -> String {
    format!("{date}#{id}")
}

/// The partition of a lease.
pub(crate) fn lease_pk(name: &str) -> String {
    format!("LEASE#{name}")
}

/// The sort key of a lease.
pub(crate) const LEASE_SK: &str = "LEASE";

/// The sort key of a command id marker (under [`command_marker_pk`]).
pub(crate) const COMMAND_SK: &str = "COMMAND";

/// The sort key of a feed entry (under [`feed_pk`]): the sequence number, 20 digits.
pub(crate) fn feed_sk(seq: u64) -> String {
    format!("{seq:020}")
}

/// The sort key of an inbox entry (under [`inbox_pk`]).
pub(crate) const INBOX_SK: &str = "INBOX";

/// The index partition (gsi2) of the inbox entries not processed yet.
pub(crate) const INBOX_PENDING: &str = "INBOX-PENDING";

/// An inbox entry's index sort key in [`INBOX_PENDING`]: received at (epoch ms, 20 digits), then its pk.
pub(crate) fn inbox_pending_sk(received_ms: i64, pk: &str) -> String {
    format!("{received_ms:020}#{pk}")
}
