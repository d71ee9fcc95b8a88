//! CleverReach adapter for optisync.
//!
//! * [`client`] — [`CleverReachClient`]: OAuth (authorization code with `grant=basic`, refresh
//!   before expiry and once on 401, rotated refresh tokens handed to a [`TokenStore`]), group
//!   receivers (get, upsert in halving batches, set active/inactive, paging), groups, global
//!   attributes, filters, delete, the account's blacklist and bounces (R-E9); a shared rate limit, `Retry-After`, full-jitter backoff for
//!   idempotent calls.
//! * [`webhook`] — verification handshake, `X-CR-Calltoken` check, tolerant event parsing.
//! * [`intake`] — [`CleverReachSource`], CleverReach's specifics for the one intake use case
//!   (hook-cleverreach): tokens from the secret store, call token, re-read, key; the handshake.
//! * [`gateway`] — [`CleverReachGateway`]: the ESP port (`optisync_ports::EspGateway`) over the client.
//!
//! Privacy: e-mail addresses never appear in error messages or logs (see [`mask_email`]);
//! tokens and secrets are [`Secret`]s whose `Debug` prints `<redacted>`.
//!

pub mod client;
pub mod error;
pub mod gateway;
pub mod intake;
pub mod model;
pub mod oauth;
pub mod secret;
pub mod webhook;

pub use client::{CleverReachClient, ClientConfig, MAX_PAGE_SIZE, WebhookRegistration, shared_http_client};
pub use error::{Error, Result};
pub use gateway::CleverReachGateway;
pub use intake::CleverReachSource;
pub use model::{
    Attribute, BlacklistEntry, Bounce, Deactivation, Filter, FilterRule, Group, Receiver, ReceiverEvent, ReceiverType,
    ReceiverUpsert, StateChange, UpsertOutcome,
};
pub use oauth::{MemoryTokenStore, OAuthConfig, SecretTokenStore, TokenSet, TokenStore};
pub use secret::{Secret, mask_email, redact_emails};
pub use webhook::{ReceiverChanged, ReceiverEventKind, WebhookError, WebhookEvent};
