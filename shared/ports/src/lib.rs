//! Ports: the small async traits the use cases talk through.
//!
//! Adapters (DynamoDB, Brevo, CleverReach, EventBridge) implement them; the in-memory doubles and the
//! conformance suite every store runs live in the dev-only `optisync-testkit` (`dev/testkit`).
//!
//! The state store is sized to its users: one trait per capability (`capabilities`), over the state
//! vocabulary (`state`); [`StateStore`] is all of them at once. Beside it: the inbox, the ESP side, the
//! secret store, the event bus and the clock. Everything is re-exported here.

mod bus;
mod capabilities;
mod clock;
mod esp;
mod inbox;
pub mod intake;
pub mod metrics;
pub mod names;
mod reports;
mod secrets;
mod state;
pub mod tokens;

pub use bus::{BusEvent, EventPublisher};
pub use capabilities::{
    ApprovalQueue, AuditLog, CommandFeed, Erasures, Leases, Links, RunStore, StateStore, SyncState, Tenants,
};
pub use clock::{Clock, SystemClock};
pub use esp::{
    Block, BlockedAddress, BlockedPage, EspCatalog, EspDirectory, EspError, EspGateway, EspList, EspLister, EspReader,
    EspSegment, ListPage, ListedMember,
};
pub use inbox::{Inbox, InboxEntry, InboxItem, InboxPut, Reread};
pub use reports::{
    ErasureReportRecord, ErasureReports, NotifyError, ReportNotifier, ReportSubscriptions, reports_page,
    undelivered_page,
};
pub use secrets::SecretStore;
pub use state::{
    Commit, Expiry, ItemKey, LoadedView, MAX_COMMIT_ITEMS, PendingAuthorisation, Slice, StoreError, queue_page,
};

/// Every state capability trait, for code that calls them on a concrete store: `use
/// optisync_ports::prelude::*;`.
pub mod prelude {
    pub use crate::{
        ApprovalQueue, AuditLog, CommandFeed, ErasureReports, Erasures, Leases, Links, RunStore, StateStore, SyncState,
        Tenants,
    };
}
