//! A deletion report notifier that records what it was given (R-J2), with fault injection.

use async_trait::async_trait;
use optisync_domain::TenantId;
use optisync_ports::{ErasureReportRecord, NotifyError, ReportNotifier};
use std::sync::Mutex;

/// Records every report it accepts, in order; [`MemoryNotifier::fail_next`] makes publishes fail as an
/// unreachable topic would.
#[derive(Default)]
pub struct MemoryNotifier {
    published: Mutex<Vec<(TenantId, ErasureReportRecord)>>,
    failures: Mutex<u32>,
}

impl MemoryNotifier {
    /// A notifier that accepts everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next `n` publishes fail.
    pub fn fail_next(&self, n: u32) {
        *self.failures.lock().expect("lock") = n;
    }

    /// The reports accepted so far, with their tenant.
    pub fn published(&self) -> Vec<(TenantId, ErasureReportRecord)> {
        self.published.lock().expect("lock").clone()
    }
}

#[async_trait]
impl ReportNotifier for MemoryNotifier {
    async fn publish(&self, tenant: &TenantId, report: &ErasureReportRecord) -> Result<(), NotifyError> {
        {
            let mut failures = self.failures.lock().expect("lock");
            if *failures > 0 {
                *failures -= 1;
                return Err(NotifyError::Unavailable("the topic is unreachable".into()));
            }
        }
        self.published.lock().expect("lock").push((tenant.clone(), report.clone()));
        Ok(())
    }
}
