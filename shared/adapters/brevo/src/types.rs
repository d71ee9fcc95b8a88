//! Small value types shared by the client, the fake and the webhook parser.

use std::fmt;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The Brevo API key. A secret: its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key (`xkeysib-…`).
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The raw key, for the `api-key` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A Brevo contact as returned by `GET /contacts/{identifier}` and the contact listings.
///
/// `Debug` masks the e-mail address and hides attribute values (they hold names).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrevoContact {
    pub id: i64,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub email_blacklisted: bool,
    #[serde(default)]
    pub sms_blacklisted: bool,
    #[serde(default)]
    pub list_ids: Vec<i64>,
    /// Only present when per-list unsubscription is enabled for the account.
    #[serde(default)]
    pub list_unsubscribed: Vec<i64>,
    #[serde(default)]
    pub attributes: Map<String, Value>,
    #[serde(default)]
    pub created_at: Option<DateTime<FixedOffset>>,
    #[serde(default)]
    pub modified_at: Option<DateTime<FixedOffset>>,
    /// `GET /contacts/{identifier}` only: the last 90 days' events, of which optisync reads the
    /// unsubscriptions (when and by whom the contact was blacklisted, R-D1, R-J4).
    #[serde(default)]
    pub statistics: ContactStatistics,
}

/// The part of a contact's `statistics` optisync reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactStatistics {
    #[serde(default)]
    pub unsubscriptions: Option<Unsubscriptions>,
}

/// `statistics.unsubscriptions`: by the recipient's unsubscribe link, and by an admin, import or the API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unsubscriptions {
    #[serde(default)]
    pub user_unsubscription: Vec<UnsubscriptionEvent>,
    #[serde(default)]
    pub admin_unsubscription: Vec<UnsubscriptionEvent>,
}

/// One unsubscription (its IP is not read: optisync has no use for it here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnsubscriptionEvent {
    pub event_time: DateTime<FixedOffset>,
}

impl BrevoContact {
    /// When the contact was last blacklisted, as far as its statistics (90 days) tell.
    pub fn blacklisted_since(&self) -> Option<DateTime<chrono::Utc>> {
        let u = self.statistics.unsubscriptions.as_ref()?;
        u.user_unsubscription
            .iter()
            .chain(&u.admin_unsubscription)
            .map(|e| e.event_time.with_timezone(&chrono::Utc))
            .max()
    }
}

impl fmt::Debug for BrevoContact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let attribute_names: Vec<&String> = self.attributes.keys().collect();
        f.debug_struct("BrevoContact")
            .field("id", &self.id)
            .field("email", &mask_email(&self.email))
            .field("email_blacklisted", &self.email_blacklisted)
            .field("sms_blacklisted", &self.sms_blacklisted)
            .field("list_ids", &self.list_ids)
            .field("list_unsubscribed", &self.list_unsubscribed)
            .field("attribute_names", &attribute_names)
            .field("created_at", &self.created_at)
            .field("modified_at", &self.modified_at)
            .finish()
    }
}

/// A contact list (`GET /contacts/lists`). Brevo is dropping the counters (they become 0), do not rely on them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrevoList {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub folder_id: Option<i64>,
    #[serde(default)]
    pub total_subscribers: Option<i64>,
    #[serde(default)]
    pub total_blacklisted: Option<i64>,
}

/// The category of a contact attribute.
///
/// `normal` attributes hold a free value of their `type` (text, date, float, boolean);
/// `category` attributes are enumerations whose value is written as the numeric enumeration value
/// (see [`BrevoAttribute::enumeration`]); `transactional`, `calculated` and `global` are computed or
/// transaction-scoped and cannot be written on a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeCategory {
    Normal,
    Category,
    Transactional,
    Calculated,
    Global,
    Other(String),
}

impl AttributeCategory {
    fn parse(s: &str) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "normal" => Self::Normal,
            "category" => Self::Category,
            "transactional" => Self::Transactional,
            "calculated" => Self::Calculated,
            "global" => Self::Global,
            _ => Self::Other(s.to_owned()),
        }
    }

    /// Whether a value of such an attribute can be written on a contact (normal or category).
    pub fn is_contact_writable(&self) -> bool {
        matches!(self, Self::Normal | Self::Category)
    }
}

/// One enumeration entry of a `category` attribute.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AttributeEnumValue {
    pub value: i64,
    pub label: String,
}

/// A contact attribute definition (`GET /contacts/attributes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrevoAttribute {
    /// Upper-case attribute name, e.g. `FIRSTNAME`.
    pub name: String,
    pub category: AttributeCategory,
    /// `text`, `date`, `float`, `boolean`, `id`, `multiple-choice`, `user`; absent for category attributes.
    pub attribute_type: Option<String>,
    /// Only for `category` attributes.
    pub enumeration: Vec<AttributeEnumValue>,
}

impl BrevoAttribute {
    /// Numeric value to write for a `category` attribute, looked up by its label (case-insensitive).
    pub fn enum_value_for_label(&self, label: &str) -> Option<i64> {
        self.enumeration.iter().find(|e| e.label.eq_ignore_ascii_case(label)).map(|e| e.value)
    }
}

#[derive(Deserialize)]
pub(crate) struct RawAttribute {
    pub name: String,
    #[serde(default)]
    pub category: String,
    #[serde(default, rename = "type")]
    pub attribute_type: Option<String>,
    #[serde(default)]
    pub enumeration: Vec<AttributeEnumValue>,
}

impl From<RawAttribute> for BrevoAttribute {
    fn from(raw: RawAttribute) -> Self {
        Self {
            name: raw.name,
            category: AttributeCategory::parse(&raw.category),
            attribute_type: raw.attribute_type,
            enumeration: raw.enumeration,
        }
    }
}

/// Masking lives with the domain's privacy rules (R-J5); re-exported for this crate's callers.
pub use optisync_domain::privacy::{mask_email, redact_emails as mask_emails_in};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_emails() {
        assert_eq!(mask_email("max@example.com"), "m***@e***.com");
        assert_eq!(mask_email("nope"), "***");
        assert_eq!(mask_emails_in("Contact \"a.b@c.de\" exists"), "Contact \"a***@c***.de\" exists");
    }

    #[test]
    fn api_key_debug_is_redacted() {
        let key = ApiKey::new("xkeysib-secret");
        assert_eq!(format!("{key:?}"), "<redacted>");
        assert_eq!(format!("{key}"), "<redacted>");
    }
}
