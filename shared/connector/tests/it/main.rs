//! The integration tests of `optisync-connector`, one module per file, linked as one test binary (one link on
//! two cores instead of one per file).

mod signature;
mod wire;
