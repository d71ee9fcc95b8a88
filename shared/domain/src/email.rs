//! `Email`: parsed once at the edge, compared case-insensitively (R-B2), masked when displayed (R-J5).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// Why a text is not an e-mail address. Carries no part of the input, so it can be logged (R-J5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Nothing left after trimming.
    #[error("e-mail address is empty")]
    Empty,
    /// Not of the form local@domain by RFC 5321/5322.
    #[error("e-mail address is not valid")]
    Invalid,
}

/// A valid e-mail address.
///
/// R-B2: trimmed, and equal to another address when both agree ignoring case, so an ESP account holds
/// at most one recipient per `Email`. `Display` and `Debug` print a masked form (`m***@e***.org`) so an
/// address cannot reach a log by accident (R-J5); [`Email::as_str`] is the deliberate way to the text.
#[derive(Clone)]
pub struct Email {
    original: String,
    key: String,
}

impl Email {
    /// Parses at the edge: trims, validates, keeps the spelling for sending and a lower-case key for comparing.
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if !email_address::EmailAddress::is_valid(trimmed) || trimmed.chars().any(char::is_whitespace) {
            return Err(EmailError::Invalid);
        }
        Ok(Self { original: trimmed.to_owned(), key: trimmed.to_lowercase() })
    }

    /// The address as written, for ESP calls and OPTIGEM commands only.
    pub fn as_str(&self) -> &str {
        &self.original
    }

    /// The comparison key (R-B2): lower case. Use it for store keys, never for logs.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// A masked form for logs and error messages (R-J5): first letter of the local part and of the
    /// domain, and the top-level domain.
    pub fn masked(&self) -> String {
        crate::privacy::mask_email(&self.key)
    }
}

impl PartialEq for Email {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Email {}
impl Hash for Email {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}
impl PartialOrd for Email {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Email {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.masked())
    }
}

impl Serialize for Email {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.original)
    }
}
impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Email::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_b2_emails_are_trimmed_and_compared_ignoring_case() {
        let a = Email::parse("  Max.Muster@Example.com ").unwrap();
        let b = Email::parse("max.muster@example.COM").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "Max.Muster@Example.com");
        assert_eq!(a.key(), "max.muster@example.com");
        let mut set = std::collections::BTreeSet::new();
        set.insert(a);
        assert!(!set.insert(b), "one recipient per e-mail");
    }

    #[test]
    fn invalid_addresses_are_rejected_without_echoing_them() {
        for bad in ["", "   ", "max", "max@", "@example.com", "max muster@example.com"] {
            let err = Email::parse(bad).unwrap_err();
            assert!(!err.to_string().contains("max"), "{err}");
        }
    }

    #[test]
    fn r_j5_display_and_debug_mask_the_address() {
        let e = Email::parse("max.muster@example.com").unwrap();
        assert_eq!(e.to_string(), "m***@e***.com");
        let debug = format!("{e:?}");
        assert!(!debug.contains("muster") && !debug.contains("example"), "{debug}");
    }

    #[test]
    fn serde_round_trip_keeps_the_spelling_and_rejects_garbage() {
        let e: Email = serde_json::from_str("\" Max@Example.org\"").unwrap();
        assert_eq!(serde_json::to_string(&e).unwrap(), "\"Max@Example.org\"");
        assert!(serde_json::from_str::<Email>("\"nope\"").is_err());
    }
}
