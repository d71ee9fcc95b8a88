//! The integration tests of `optisync-brevo`, one module per file, linked as one test binary (one link on
//! two cores instead of one per file).

mod batch;
mod client;
mod contract;
mod gateway;
mod lister;
mod webhook;
