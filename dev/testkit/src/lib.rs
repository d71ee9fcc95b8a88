//! Dev only, never shipped to Lambda: what the test suites, the benchmarks and the local sandbox share.
//!
//! * [`memory`]: in-memory implementations of every port, good enough to run the whole engine in tests.
//! * [`conformance`]: the one suite every [`StateStore`](optisync_ports::StateStore) implementation runs
//!   (memory here, the embedded store, DynamoDB on moto).

pub mod conformance;
pub mod memory;
