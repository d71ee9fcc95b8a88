//! Brevo (ex-Sendinblue) adapter of optisync.
//!
//! The production side of Brevo: what runs in Lambda (the stateful fake of the API lives in the dev-only
//! `optisync-fakes`, `dev/fakes`).
//!
//! * [`client`] — [`BrevoClient`], the HTTP client for the contact, list, attribute and webhook
//!   endpoints the newsletter sync needs. It paces requests below Brevo's limits with a limiter shared
//!   by all clones (10 req/s on `/contacts…`, 100 req/h elsewhere, configurable), honours 429 and
//!   `x-sib-ratelimit-reset`, retries 5xx/timeouts with full-jitter backoff for idempotent requests
//!   only, chunks list add/remove to 150 e-mails and pages listings with `modifiedSince`. Upserts never
//!   send `emailBlacklisted`; only [`BrevoClient::set_blacklisted`] touches the blacklist.
//! * [`webhook`] — tolerant parsing of Brevo marketing webhooks into [`webhook::WebhookEvent`], a
//!   content-derived deduplication key without e-mail addresses, and constant-time bearer-token checks.
//! * [`intake`] — [`BrevoSource`], Brevo's specifics for the one intake use case (hook-brevo).
//!
//! Privacy: e-mail addresses and the API key never appear in log lines or in error `Display`;
//! [`ApiKey`] and [`BrevoContact`] have redacting `Debug` implementations.

pub mod client;
pub mod gateway;
pub mod intake;
mod limiter;
pub mod types;
pub mod webhook;

pub use client::{BrevoClient, BrevoConfig, BrevoError};
pub use gateway::BrevoGateway;
pub use intake::BrevoSource;
pub use types::{ApiKey, AttributeCategory, BrevoAttribute, BrevoContact, BrevoList, mask_email};
