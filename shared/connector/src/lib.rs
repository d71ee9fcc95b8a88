//! The OPTIGEM connector contract (see `docs/connector.md`).
//!
//! * [`signature`] — every request between the connector and optisync is signed per Standard Webhooks
//!   with the tenant's secret; several secrets may be active at once for rotation.
//! * [`wire`] — change events as they arrive, parsed into planner inputs with errors that name the field.

pub mod signature;
pub mod wire;
