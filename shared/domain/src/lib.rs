//! optisync's domain layer: no I/O, no AWS, no HTTP.
//!
//! * [`model`] — types parsed at the edge (ids, [`Email`], [`YearMonth`], persons, assignments, links).
//! * [`rules`] — the rules of `RULES.md` as pure functions (R-A1…A9, R-B1/B2, R-C4, R-D6, R-E1).
//! * [`plan`] — the effects the planner can ask for and the state it keeps.
//! * [`planner`] — one function from (known state, input) to a [`Plan`]; every entry point uses it.
//! * [`drift`] — the scheduled run's decisions: which differences between a link and its ESP list become
//!   inputs, and the mass-deactivation guard (R-E1…E4, R-F4, R-F5, R-F8, R-G3, R-G4).
//! * [`erasure`] — erasure mode: what an `end_assignment` result erases, and the deletion report (R-J2).
//! * [`suggest`] — ranking OPTIGEM's candidate persons for a signup (R-C3).
//! * [`audit`] — the audit trail entries of a plan, without personal data.
//! * [`privacy`] — masking and keyed hashing so personal data never reaches logs (R-J5).
//! * [`retention`] — how long records of personal data are kept once expirable (R-J6).

pub mod audit;
pub mod calendar;
pub mod drift;
pub mod email;
pub mod erasure;
pub mod ids;
pub mod model;
pub mod plan;
pub mod planner;
pub mod privacy;
pub mod retention;
pub mod rules;
pub mod suggest;

pub use audit::{AuditEntry, audit_entries};
pub use calendar::{YearMonth, berlin_date};
pub use drift::ListedMember;
pub use email::{Email, EmailError};
pub use ids::*;
pub use model::*;
pub use plan::*;
pub use planner::plan;
pub use privacy::{EmailHasher, PersonalText, decode_path, decode_problem};
pub use retention::{Retention, RetentionError, TombstoneRecord};
