//! The product's metrics: one name per thing an operator watches, recorded through the `metrics`
//! facade. In Lambda the functions emit them as CloudWatch Embedded Metric Format lines after each
//! invocation (namespace from `METRICS_NAMESPACE`, see `optisync_lambda::telemetry`); the dashboard and
//! the alarms in `template.yaml` refer to these names, and `infra/template_checks.py` checks that every
//! metric they use is one of the constants below, with the dimensions and values the functions below
//! record it with (it reads this file: keep one `metrics::counter!`/`gauge!`/`histogram!` call per
//! recording and the allowed values in backticks in the dimension's doc comment).
//!
//! Dimensions carry only fixed words (a source, a provider, an outcome), never a tenant's data, an
//! e-mail or a name (R-J5).

/// The dimension names used by the metrics below.
pub mod dimension {
    /// Who sent a webhook: `brevo`, `cleverreach` or `optigem`.
    pub const SOURCE: &str = "Source";
    /// Which ESP an API call or a recipient change went to: `brevo` or `cleverreach`.
    pub const PROVIDER: &str = "Provider";
    /// How a reconciliation run ended: `completed`, `failed` or `held`.
    pub const OUTCOME: &str = "Outcome";
}

/// Webhooks (and OPTIGEM change batches) stored for the worker, by `Source`.
pub const WEBHOOKS_ACCEPTED: &str = "WebhooksAccepted";
/// Webhooks refused with a 4xx (bad signature, unknown account, malformed body), by `Source`.
pub const WEBHOOKS_REJECTED: &str = "WebhooksRejected";
/// Webhooks answered 429 (busy: the sender retries) or with a 5xx, by `Source` (M7): nothing was stored, so
/// a steady count means the hooks cannot store what the senders deliver (the store, a secret, a limit).
pub const WEBHOOKS_FAILED: &str = "WebhooksFailed";
/// Inbox entries the worker applied.
pub const EVENTS_PROCESSED: &str = "EventsProcessed";
/// Inbox entries the worker could not apply (they stay pending and are re-driven).
pub const EVENTS_FAILED: &str = "EventsFailed";
/// HTTP requests sent to an ESP API, by `Provider` (retries included).
pub const ESP_CALLS: &str = "EspCalls";
/// ESP answers 429 (rate limited), by `Provider`.
pub const ESP_RATE_LIMITED: &str = "EspRateLimited";
/// OPTIGEM assignments optisync asked the connector to end (unsubscribe, blacklist, expiry).
pub const ASSIGNMENTS_ENDED: &str = "AssignmentsEnded";
/// Recipients optisync subscribed or re-activated on an ESP list, by `Provider`.
pub const RECIPIENTS_ACTIVATED: &str = "RecipientsActivated";
/// Recipients optisync removed from or deactivated on an ESP list, by `Provider`.
pub const RECIPIENTS_DEACTIVATED: &str = "RecipientsDeactivated";
/// Signups waiting in the approval queues (gauge, set by every scheduled tick).
pub const APPROVALS_PENDING: &str = "ApprovalsPending";
/// Age of the oldest signup waiting for a decision, in seconds (gauge, set by every scheduled tick).
pub const APPROVALS_OLDEST_AGE: &str = "ApprovalsOldestAge";
/// Reconciliation invocations, by `Outcome` (`completed`: the run finished; `failed`; `held`: waiting
/// for an admin's confirmation, R-F8).
pub const RECONCILE_RUNS: &str = "ReconcileRuns";
/// Duration of one reconciliation invocation, in milliseconds.
pub const RECONCILE_DURATION: &str = "ReconcileDuration";
/// CleverReach access-token refreshes that failed (the account needs a new authorisation), by `Provider`.
pub const OAUTH_REFRESH_FAILED: &str = "OAuthRefreshFailed";

/// Every metric name, for checks and documentation.
pub const ALL: [&str; 15] = [
    WEBHOOKS_ACCEPTED,
    WEBHOOKS_REJECTED,
    WEBHOOKS_FAILED,
    EVENTS_PROCESSED,
    EVENTS_FAILED,
    ESP_CALLS,
    ESP_RATE_LIMITED,
    ASSIGNMENTS_ENDED,
    RECIPIENTS_ACTIVATED,
    RECIPIENTS_DEACTIVATED,
    APPROVALS_PENDING,
    APPROVALS_OLDEST_AGE,
    RECONCILE_RUNS,
    RECONCILE_DURATION,
    OAUTH_REFRESH_FAILED,
];

/// Registers units, so that the EMF documents say `Count`, `Seconds` or `Milliseconds`.
pub fn describe() {
    use metrics::Unit;
    for name in ALL {
        let unit = match name {
            APPROVALS_OLDEST_AGE => Unit::Seconds,
            RECONCILE_DURATION => Unit::Milliseconds,
            _ => Unit::Count,
        };
        match name {
            APPROVALS_PENDING | APPROVALS_OLDEST_AGE => metrics::describe_gauge!(name, unit, ""),
            RECONCILE_DURATION => metrics::describe_histogram!(name, unit, ""),
            _ => metrics::describe_counter!(name, unit, ""),
        }
    }
}

/// A webhook stored (`accepted`) or refused with a 4xx, from `source` (`brevo`, `cleverreach`, `optigem`).
pub fn webhook(source: &'static str, accepted: bool) {
    let name = if accepted { WEBHOOKS_ACCEPTED } else { WEBHOOKS_REJECTED };
    metrics::counter!(name, dimension::SOURCE => source).increment(1);
}

/// A webhook answered 429 or with a 5xx (nothing stored), from `source` (M7).
pub fn webhook_failed(source: &'static str) {
    metrics::counter!(WEBHOOKS_FAILED, dimension::SOURCE => source).increment(1);
}

/// An inbox entry applied or not.
pub fn event(processed: bool) {
    metrics::counter!(if processed { EVENTS_PROCESSED } else { EVENTS_FAILED }).increment(1);
}

/// One HTTP request to `provider`'s API, and whether it was answered 429.
pub fn esp_call(provider: &'static str, rate_limited: bool) {
    metrics::counter!(ESP_CALLS, dimension::PROVIDER => provider).increment(1);
    if rate_limited {
        metrics::counter!(ESP_RATE_LIMITED, dimension::PROVIDER => provider).increment(1);
    }
}

/// `count` OPTIGEM assignments asked to end.
pub fn assignments_ended(count: u64) {
    if count > 0 {
        metrics::counter!(ASSIGNMENTS_ENDED).increment(count);
    }
}

/// `count` recipients activated (`true`) or deactivated on a list of `provider`.
pub fn recipients(provider: &'static str, activated: bool, count: u64) {
    if count > 0 {
        let name = if activated { RECIPIENTS_ACTIVATED } else { RECIPIENTS_DEACTIVATED };
        metrics::counter!(name, dimension::PROVIDER => provider).increment(count);
    }
}

/// The approval queues' size and the age of their oldest entry (zero when empty).
pub fn approvals(pending: u64, oldest_age_secs: u64) {
    metrics::gauge!(APPROVALS_PENDING).set(pending as f64);
    metrics::gauge!(APPROVALS_OLDEST_AGE).set(oldest_age_secs as f64);
}

/// One reconciliation invocation ended with `outcome` (`completed`, `failed`, `held`; a run that goes on
/// in a new invocation records only its duration) after `millis`.
pub fn reconcile(outcome: Option<&'static str>, millis: u64) {
    if let Some(outcome) = outcome {
        metrics::counter!(RECONCILE_RUNS, dimension::OUTCOME => outcome).increment(1);
    }
    metrics::histogram!(RECONCILE_DURATION).record(millis as f64);
}

/// A failed OAuth token refresh at `provider`.
pub fn oauth_refresh_failed(provider: &'static str) {
    metrics::counter!(OAUTH_REFRESH_FAILED, dimension::PROVIDER => provider).increment(1);
}
