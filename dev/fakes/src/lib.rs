//! Dev only, never shipped to Lambda: stateful fakes of the two ESP APIs (and of Cognito's hosted sign-in for the console), each an axum server on
//! loopback that behaves like the public API described in `../shared/reference` (request recording, rate
//! limits, failure injection, webhook emission). The tests, the benchmarks and the local sandbox use them.

pub mod brevo;
pub mod cleverreach;
pub mod cognito;
