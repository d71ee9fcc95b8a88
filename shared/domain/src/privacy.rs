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

/// A masked form of an address for logs and error messages (R-J5): the first letter of the local part
/// and of the host, and the top-level domain (`m***@e***.com`); `***` for anything without an `@`.
pub fn mask_email(raw: &str) -> String {
    let Some((local, domain)) = raw.trim().rsplit_once('@') else {
        return "***".to_owned();
    };
    let first = |s: &str| s.chars().next().map(String::from).unwrap_or_default();
    let (host, tld) = match domain.rsplit_once('.') {
        Some((host, tld)) => (host, format!(".{tld}")),
        None => (domain, String::new()),
    };
    format!("{}***@{}***{}", first(local), first(host), tld)
}

/// Masks every word of a text that contains an `@` (words end at white space, quotes and brackets), for
/// any text from outside (an ESP's error message) before it reaches an error or a log (R-J5).
pub fn redact_emails(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.contains('@') {
            out.push_str(&mask_email(word));
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_whitespace() || matches!(c, '\'' | '"' | ',' | ';' | '<' | '>' | '(' | ')' | '[' | ']' | '{' | '}') {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
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

/// Reduces a decoder message (serde, serde_json) to its kind, so no submitted value reaches a response
/// or a log (R-J5, M10): every `"…"`- and `` `…` ``-quoted text before `expected` is dropped
/// (`invalid type: string "lena@…", expected a boolean` → `invalid type: string, expected a boolean`,
/// ``unknown field `lena@…`, expected one of `a` `` → `unknown field, expected one of `a``); what follows
/// `expected` comes from our own schema. `missing field` and `duplicate field` name our own fields and
/// stay. serde_json's ` at line … column …` is cut.
pub fn decode_problem(message: &str) -> String {
    let message = message.split(" at line ").next().unwrap_or(message);
    if message.starts_with("missing field `") || message.starts_with("duplicate field `") {
        return message.to_owned();
    }
    let (head, tail) = match message.find("expected") {
        Some(at) => message.split_at(at),
        None => (message, ""),
    };
    let mut out = String::with_capacity(message.len());
    let mut quote: Option<char> = None;
    for c in head.chars() {
        match (quote, c) {
            (None, '"' | '`') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, _) => out.push(c),
        }
    }
    if quote.is_some() {
        // An unterminated quote: nothing after it is ours.
        out.push('…');
    }
    let mut out = out.split_whitespace().collect::<Vec<_>>().join(" ").replace(" ,", ",");
    if !tail.is_empty() {
        if !out.ends_with(' ') && !out.is_empty() {
            out.push(' ');
        }
        out.push_str(tail);
    }
    out
}

/// A decoder's field path up to the first segment that is not one of our field names or an index, which
/// becomes `?`: map keys (e.g. a person's `privacy` categories) are submitted text (R-J5, M10), and may
/// themselves contain dots.
pub fn decode_path(path: &str) -> String {
    let ours = |segment: &str| {
        let name = segment.split('[').next().unwrap_or("");
        let indices = &segment[name.len()..];
        name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && indices.chars().all(|c| c.is_ascii_digit() || matches!(c, '[' | ']'))
    };
    let mut out: Vec<&str> = Vec::new();
    for segment in path.split('.') {
        if !ours(segment) {
            out.push("?");
            break;
        }
        out.push(segment);
    }
    out.join(".")
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
    fn r_j5_addresses_in_free_text_are_masked() {
        assert_eq!(mask_email("max@example.com"), "m***@e***.com");
        assert_eq!(mask_email("nope"), "***");
        assert_eq!(
            redact_emails("Contact \"a.b@c.de\" exists (x@y.org)"),
            "Contact \"a***@c***.de\" exists (x***@y***.org)"
        );
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
