//! The integration tests of `optisync-cleverreach`, one module per file, linked as one test binary (one link on
//! two cores instead of one per file).

mod client;
mod fake;
mod gateway;
mod lister;
mod webhook;
