//! The inbox: the keys its entries are named by, and the worker's use case, which applies one entry
//! whatever hook accepted it.

use crate::engine::{Engine, ProcessError};
use optisync_domain::{CommandId, Input, TenantId};
use optisync_ports::{EspReader, Inbox, InboxItem};

/// The inbox key of snapshot page `page` (counting from 1) of the export `snapshot`.
pub fn snapshot_page_key(snapshot: &CommandId, page: u64) -> String {
    optisync_ports::names::InboxKey::snapshot(snapshot, page).into()
}

/// Applies an inbox entry's items in order through the engine, then marks it done. A CleverReach
/// receiver event is re-read from the API first and its observations applied. Run again after a failure,
/// it repeats only what is left to do: every input is exactly-once by itself. Returns the inputs applied.
pub async fn process_inbox_entry(
    engine: &Engine,
    inbox: &dyn Inbox,
    reader: &dyn EspReader,
    tenant: &TenantId,
    key: &str,
) -> Result<usize, ProcessError> {
    let Some(entry) = inbox.get(tenant, key).await? else {
        tracing::warn!("inbox entry not found; nothing to do");
        return Ok(0);
    };
    let mut applied = 0;
    for item in &entry.items {
        match item {
            InboxItem::Input { input } => {
                engine.process(tenant, input).await?;
                applied += 1;
            }
            InboxItem::Reread { reread } => {
                for event in reader.reread(reread).await? {
                    engine.process(tenant, &Input::Esp(event)).await?;
                    applied += 1;
                }
            }
        }
    }
    inbox.mark_done(tenant, key).await?;
    Ok(applied)
}

/// Re-drives inbox entries that stayed unprocessed: every entry received before `before` and not yet
/// done is announced to the worker again (the scheduler runs this; an entry whose worker invocation went
/// to the dead-letter queue comes back this way). Returns how many were announced.
pub async fn redrive_pending(
    inbox: &dyn Inbox,
    publisher: &dyn optisync_ports::EventPublisher,
    before: chrono::DateTime<chrono::Utc>,
    limit: usize,
) -> Result<usize, optisync_ports::StoreError> {
    let pending = inbox.pending(before, limit).await?;
    let events: Vec<optisync_ports::BusEvent> =
        pending.into_iter().map(|(tenant, key)| optisync_ports::BusEvent::InboxReady { tenant, key }).collect();
    publisher.publish(&events).await?;
    if !events.is_empty() {
        tracing::info!(entries = events.len(), "unprocessed inbox entries re-driven");
    }
    Ok(events.len())
}
