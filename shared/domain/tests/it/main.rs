//! The integration tests of `optisync-domain`, one module per file, linked as one test binary (one link on
//! two cores instead of one per file).

mod audit;
mod common;
mod consent;
mod drift;
mod erasure;
mod fidelity;
mod ids;
mod planner;
mod properties;
mod rules;
mod safety_net;
mod suggest;
