//! Dev only, never shipped to Lambda: what the test suites, the benchmarks and the local sandbox share.
//!
//! * [`build`]: builders for the persons, assignments and links every suite makes.
//! * [`memory`]: in-memory implementations of every port, good enough to run the whole engine in tests.
//! * [`conformance`]: the one suite every [`StateStore`](optisync_ports::StateStore) implementation runs
//!   (memory here, the embedded store, DynamoDB on moto).

pub mod build;
pub mod conformance;
pub mod memory;
