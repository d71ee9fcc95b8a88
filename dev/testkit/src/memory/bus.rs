//! The event bus in memory.

use async_trait::async_trait;
use optisync_ports::*;
use std::sync::Mutex;

/// The event bus in memory: remembers what was published.
#[derive(Default)]
pub struct MemoryBus {
    events: Mutex<Vec<BusEvent>>,
}

impl MemoryBus {
    /// Takes the events published so far.
    pub fn drain(&self) -> Vec<BusEvent> {
        std::mem::take(&mut *self.events.lock().expect("bus lock"))
    }
}

#[async_trait]
impl EventPublisher for MemoryBus {
    async fn publish(&self, events: &[BusEvent]) -> Result<(), StoreError> {
        self.events.lock().expect("bus lock").extend_from_slice(events);
        Ok(())
    }
}
