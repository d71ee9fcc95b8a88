//! Secret strings (OAuth tokens, client secrets, webhook call tokens) and e-mail masking.

use std::fmt;

/// A secret string. `Debug` and `Display` print `<redacted>`; use [`Secret::expose`] to read it.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Masking lives with the domain's privacy rules (R-J5); re-exported for this crate's callers.
pub use optisync_domain::privacy::{mask_email, redact_emails};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("abc");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(s.expose(), "abc");
    }

    #[test]
    fn masks_emails() {
        assert_eq!(mask_email("max@example.com"), "m***@e***.com");
        assert_eq!(mask_email("nope"), "***");
        assert_eq!(
            redact_emails("invalid address 'max@example.com'; dup a@b.de"),
            "invalid address 'm***@e***.com'; dup a***@b***.de"
        );
    }
}
