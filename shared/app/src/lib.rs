//! Use cases, one module each, over the ports.
//!
//! * [`engine`] — [`Engine::process`], the one path every input takes: OPTIGEM change events, ESP
//!   observations and the scheduled run's "today is D", with exactly-once effects.
//! * [`inbox`] — the worker's use case: applying an inbox entry, whatever hook accepted it.
//! * [`intake`] — one intake for the three hooks (verify → parse → observe → inbox), and
//!   [`optigem`]: the connector's signed change events, results and snapshot pages.
//! * [`connector_requests`] — connector-api's requests signed over what they do, executed once (M1).
//! * [`reconcile`] — the scheduled run of one link: first sync, reconciliation, dry run.
//! * [`approvals`] — the approval queue of signups (R-C3).
//! * [`admin`] — the admin's use cases: tenants, accounts, links, approvals.
//! * [`schedule`] — the scheduler's tick.
//! * [`reports`] — delivering the deletion reports of erasures (R-J2).
//! * [`retention`] — which records of a commit may expire, and when (R-J6).

pub mod admin;
pub mod approvals;
pub mod connector_requests;
pub mod engine;
pub mod inbox;
pub mod intake;
pub use intake::optigem;
pub mod reconcile;
pub mod reports;
pub mod retention;
pub mod schedule;

pub use engine::{DUE_PAGE, DuePage, Engine, LEASE_TTL, MAX_ATTEMPTS, Outcome, ProcessError};
