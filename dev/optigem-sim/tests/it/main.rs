//! The integration tests of `optisync-optigem-sim`, one module per file, linked as one test binary (one link on
//! two cores instead of one per file).

mod connector;
mod server;
mod sim;
