//! The integration tests of `optisync-app`, one module per file, linked as one test binary (one link on
//! two cores instead of one per file).

mod approvals;
mod common;
mod due;
mod engine;
mod observe;
mod optigem;
mod reconcile;
mod reconcile_properties;
mod reports;
mod settings;
mod subjects;
