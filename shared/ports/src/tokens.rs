//! The Brevo webhook token of an account as the secret `brevo/{account}/webhook-token` keeps it (M3):
//! the current token and, for a while after a rotation, the previous one, so that Brevo's calls made
//! before its webhook carried the new token are still accepted.
//!
//! Stored as JSON `{"current": "…", "previous": "…", "previous_until": "2024-09-26T12:00:00Z"}`. A plain
//! string (the form before rotation existed) is the current token only.
//!
//! The admin API writes it (`Admin::rotate_brevo_webhook_token`, `…::retire_previous_…`), the ESP
//! directory reads the current one when it registers a webhook, hook-brevo accepts any token
//! [`BrevoHookTokens::valid_at`] names.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// How long the previous token stays valid after a rotation (M3).
pub const BREVO_TOKEN_OVERLAP_HOURS: i64 = 24;

/// The current Brevo webhook token and the one it replaced, valid until `previous_until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrevoHookTokens {
    /// The token Brevo's webhooks are registered with.
    pub current: String,
    /// The token before the last rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// When `previous` stops being accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_until: Option<DateTime<Utc>>,
}

impl BrevoHookTokens {
    /// Just a current token.
    pub fn new(current: impl Into<String>) -> Self {
        Self { current: current.into(), previous: None, previous_until: None }
    }

    /// From the secret's value: the JSON form, or a plain string as the current token. `None` for a
    /// value that is neither (or an empty token).
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        let parsed = if raw.starts_with('{') { serde_json::from_str::<Self>(raw).ok()? } else { Self::new(raw) };
        (!parsed.current.is_empty()).then_some(parsed)
    }

    /// The secret's value (JSON).
    pub fn to_secret(&self) -> String {
        serde_json::to_string(self).expect("strings and a date serialise")
    }

    /// Until when the previous token is accepted, if it still is at `now`.
    pub fn previous_valid_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match (&self.previous, self.previous_until) {
            (Some(p), Some(until)) if !p.is_empty() && now < until => Some(until),
            _ => None,
        }
    }

    /// The tokens accepted at `now`: always the current one, the previous one during its overlap. Always
    /// two entries (an expired previous is empty, which never authenticates), so that checking them
    /// takes the same time whether an overlap runs or not.
    pub fn valid_at(&self, now: DateTime<Utc>) -> [&str; 2] {
        let previous = match self.previous_valid_until(now) {
            Some(_) => self.previous.as_deref().unwrap_or_default(),
            None => "",
        };
        [self.current.as_str(), previous]
    }

    /// `next` becomes current; the current one stays valid for [`BREVO_TOKEN_OVERLAP_HOURS`] from `now`.
    pub fn rotated(&self, next: impl Into<String>, now: DateTime<Utc>) -> Self {
        Self {
            current: next.into(),
            previous: Some(self.current.clone()),
            previous_until: Some(now + Duration::hours(BREVO_TOKEN_OVERLAP_HOURS)),
        }
    }

    /// Only the current token.
    pub fn without_previous(&self) -> Self {
        Self::new(self.current.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 9, 25, hour, 0, 0).unwrap()
    }

    #[test]
    fn m3_a_plain_string_is_the_current_token_only() {
        let tokens = BrevoHookTokens::parse("abc123").unwrap();
        assert_eq!(tokens, BrevoHookTokens::new("abc123"));
        assert_eq!(tokens.valid_at(at(12)), ["abc123", ""]);
        assert_eq!(BrevoHookTokens::parse(""), None);
        assert_eq!(BrevoHookTokens::parse("{\"current\": \"\"}"), None);
        assert_eq!(BrevoHookTokens::parse("{not json"), None);
    }

    #[test]
    fn m3_after_a_rotation_both_are_valid_until_the_overlap_ends() {
        let rotated = BrevoHookTokens::new("old").rotated("new", at(0));
        assert_eq!(BrevoHookTokens::parse(&rotated.to_secret()), Some(rotated.clone()));
        assert_eq!(rotated.valid_at(at(23)), ["new", "old"]);
        assert_eq!(rotated.previous_valid_until(at(23)), Some(at(0) + Duration::hours(24)));
        let next_day = at(0) + Duration::hours(24);
        assert_eq!(rotated.valid_at(next_day), ["new", ""]);
        assert_eq!(rotated.previous_valid_until(next_day), None);
        assert_eq!(rotated.without_previous().valid_at(at(1)), ["new", ""]);
    }
}
