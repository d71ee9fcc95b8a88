//! Personal data never reaches logs, metrics or error messages (R-J5).

use crate::Email;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;

/// Text that is personal data (a name, a salutation). `Debug`/`Display` print a mask; use
/// [`PersonalText::expose`] where the value must go to an ESP or OPTIGEM.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct PersonalText(String);

impl PersonalText {
    /// Wraps a personal value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value itself, for ESP attributes and OPTIGEM commands only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PersonalText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PersonalText(<{} chars>)", self.0.chars().count())
    }
}
impl fmt::Display for PersonalText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Keyed hash of an e-mail (HMAC-SHA256 over the R-B2 key): identifies a recipient in logs, metrics and
/// the erasure tombstone (R-J3, R-J5) without revealing the address. The key is a deployment secret.
#[derive(Clone)]
pub struct EmailHasher {
    key: Vec<u8>,
}

impl EmailHasher {
    /// A hasher with the deployment's secret key.
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self { key: key.into() }
    }

    /// Hex digest of the address; equal for addresses equal under R-B2.
    pub fn hash(&self, email: &Email) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(email.key().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

impl fmt::Debug for EmailHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EmailHasher(<key>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_j5_personal_text_is_masked_in_debug_and_display() {
        let name = PersonalText::new("Erika Muster");
        assert_eq!(format!("{name}"), "***");
        assert!(!format!("{name:?}").contains("Erika"));
        assert_eq!(name.expose(), "Erika Muster");
    }

    #[test]
    fn r_j5_keyed_hash_identifies_without_revealing() {
        let h = EmailHasher::new(b"secret".to_vec());
        let a = h.hash(&Email::parse("Max@Example.com").unwrap());
        let b = h.hash(&Email::parse("max@example.com ").unwrap());
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        assert!(!a.contains("max"));
        let other_key = EmailHasher::new(b"other".to_vec()).hash(&Email::parse("max@example.com").unwrap());
        assert_ne!(a, other_key, "the hash depends on the deployment key");
        assert!(!format!("{h:?}").contains("secret"));
    }
}
