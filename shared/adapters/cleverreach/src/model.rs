//! The crate's own small CleverReach types, parsed tolerantly (ids and numbers may arrive as
//! strings, maps may arrive as `[]`, values may be `null`).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::secret::mask_email;

/// Lenient parsers for CleverReach's loosely typed JSON.
pub mod lenient {
    use super::*;

    pub fn value_to_i64(v: &Value) -> Option<i64> {
        match v {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
            Value::String(s) => {
                let s = s.trim();
                if s.is_empty() {
                    Some(0)
                } else {
                    s.parse::<i64>().ok().or_else(|| s.parse::<f64>().ok().map(|f| f as i64))
                }
            }
            Value::Bool(b) => Some(i64::from(*b)),
            Value::Null => Some(0),
            _ => None,
        }
    }

    pub fn value_to_string(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    }

    pub fn i64_<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let v = Value::deserialize(d)?;
        value_to_i64(&v).ok_or_else(|| de::Error::custom("expected an integer or a numeric string"))
    }

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(value_to_string(&Value::deserialize(d)?))
    }

    pub fn bool_<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Bool(b) => b,
            Value::Number(n) => n.as_i64().unwrap_or(0) != 0,
            Value::String(s) => matches!(s.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"),
            _ => false,
        })
    }

    pub fn map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Object(m) => m.into_iter().map(|(k, v)| (k, value_to_string(&v))).collect(),
            _ => BTreeMap::new(),
        })
    }

    pub fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Array(a) => a.iter().map(value_to_string).collect(),
            _ => Vec::new(),
        })
    }

    pub fn vec<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Array(a) => a.into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect(),
            _ => Vec::new(),
        })
    }
}

/// A group (= mailing list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient::bool_")]
    pub locked: bool,
    #[serde(default, deserialize_with = "lenient::i64_")]
    pub stamp: i64,
    #[serde(default, deserialize_with = "lenient::i64_")]
    pub last_changed: i64,
}

/// One event attached to a receiver (only with `detail` bit 1).
/// When and how a receiver was deactivated in a group (R-E1 needs the date; R-J4 tells the recipient's
/// own unsubscribe from a deactivation by an admin, an import or the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deactivation {
    /// Unix seconds.
    pub at: i64,
    /// The recipient used the unsubscribe link (a `user_unsubscribe` event at or after activation).
    pub by_recipient: bool,
}

impl Receiver {
    /// The receiver's deactivation in its group, if it is inactive.
    pub fn deactivation(&self) -> Option<Deactivation> {
        if self.deactivated <= 0 {
            return None;
        }
        let by_recipient = self
            .events
            .iter()
            .any(|e| e.kind == "user_unsubscribe" && e.stamp >= self.activated && e.stamp <= self.deactivated);
        Some(Deactivation { at: self.deactivated, by_recipient })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiverEvent {
    #[serde(default, deserialize_with = "lenient::i64_")]
    pub stamp: i64,
    /// `api`, `log`, `mail_send`, `mail_bounce`, `user_unsubscribe`, …
    #[serde(default, rename = "type", deserialize_with = "lenient::string")]
    pub kind: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub type_id: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub value: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub mailing_id: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub groups_id: String,
}

/// A receiver as seen in one group.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receiver {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub email: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub group_id: String,
    /// Unix seconds; 0 = not (yet) activated.
    #[serde(default, deserialize_with = "lenient::i64_")]
    pub activated: i64,
    /// Unix seconds; 0 = not deactivated.
    #[serde(default, deserialize_with = "lenient::i64_")]
    pub deactivated: i64,
    #[serde(default, deserialize_with = "lenient::i64_")]
    pub registered: i64,
    #[serde(default, deserialize_with = "lenient::bool_")]
    pub active: bool,
    #[serde(default, deserialize_with = "lenient::i64_")]
    pub bounced: i64,
    #[serde(default, deserialize_with = "lenient::string")]
    pub source: String,
    /// The last IP address CleverReach saw the receiver use (for a fresh double opt-in signup its
    /// confirmation click); `""` when none. Personal data: never logged (R-J5), so not in `Debug`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub last_ip: String,
    #[serde(default, deserialize_with = "lenient::map")]
    pub global_attributes: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "lenient::map")]
    pub attributes: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "lenient::strings")]
    pub tags: Vec<String>,
    #[serde(default, deserialize_with = "lenient::vec")]
    pub events: Vec<ReceiverEvent>,
    #[serde(default, deserialize_with = "lenient::i64_")]
    pub last_changed: i64,
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("id", &self.id)
            .field("email", &mask_email(&self.email))
            .field("group_id", &self.group_id)
            .field("activated", &self.activated)
            .field("deactivated", &self.deactivated)
            .field("registered", &self.registered)
            .field("active", &self.active)
            .field("global_attributes", &self.global_attributes.keys().collect::<Vec<_>>())
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

/// A global (account-wide) attribute definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub description: String,
    #[serde(default, rename = "type", deserialize_with = "lenient::string")]
    pub kind: String,
    #[serde(default, deserialize_with = "lenient::i64_")]
    pub groups_id: i64,
}

/// A segment rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterRule {
    #[serde(default, deserialize_with = "lenient::string")]
    pub operator: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub field: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub logic: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub condition: String,
}

/// A segment (filter) of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient::vec")]
    pub rules: Vec<FilterRule>,
}

/// Which receivers of a group to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiverType {
    All,
    Active,
    Inactive,
    Bounce,
}

impl ReceiverType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::Bounce => "bounce",
        }
    }
}

/// Whether an upsert changes the receiver's state in the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StateChange {
    /// Send neither `activated` nor `deactivated`: an existing receiver keeps its state.
    /// (A *new* receiver becomes active — CleverReach's rule.)
    #[default]
    Keep,
    /// Send `activated: at` and `deactivated: 0` (reactivates; no DOI).
    Activate { at: i64 },
    /// Send `deactivated: at` (inactive for sure).
    Deactivate { at: i64 },
    /// Send `activated: 0` (create inactive, e.g. before a DOI mail).
    CreateInactive,
}

/// One receiver to upsert into a group.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ReceiverUpsert {
    pub email: String,
    pub registered: Option<i64>,
    pub source: Option<String>,
    pub global_attributes: BTreeMap<String, String>,
    pub attributes: BTreeMap<String, String>,
    pub tags: Vec<String>,
    pub state: StateChange,
}

impl ReceiverUpsert {
    /// An upsert that only carries the e-mail (and keeps the state).
    pub fn new(email: impl Into<String>) -> Self {
        Self { email: email.into(), ..Self::default() }
    }

    pub fn global_attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.global_attributes.insert(name.into(), value.into());
        self
    }

    pub fn with_state(mut self, state: StateChange) -> Self {
        self.state = state;
        self
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("email".into(), Value::String(self.email.clone()));
        if let Some(r) = self.registered {
            m.insert("registered".into(), r.into());
        }
        if let Some(s) = &self.source {
            m.insert("source".into(), Value::String(s.clone()));
        }
        if !self.global_attributes.is_empty() {
            m.insert("global_attributes".into(), serde_json::to_value(&self.global_attributes).unwrap_or_default());
        }
        if !self.attributes.is_empty() {
            m.insert("attributes".into(), serde_json::to_value(&self.attributes).unwrap_or_default());
        }
        if !self.tags.is_empty() {
            m.insert("tags".into(), serde_json::to_value(&self.tags).unwrap_or_default());
        }
        match self.state {
            StateChange::Keep => {}
            StateChange::Activate { at } => {
                m.insert("activated".into(), at.into());
                m.insert("deactivated".into(), 0.into());
            }
            StateChange::Deactivate { at } => {
                m.insert("deactivated".into(), at.into());
            }
            StateChange::CreateInactive => {
                m.insert("activated".into(), 0.into());
            }
        }
        Value::Object(m)
    }
}

impl fmt::Debug for ReceiverUpsert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiverUpsert")
            .field("email", &mask_email(&self.email))
            .field("global_attributes", &self.global_attributes.keys().collect::<Vec<_>>())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Result of one upsert item, in input order.
#[derive(Clone, PartialEq, Eq)]
pub enum UpsertOutcome {
    /// `{"status":"upsert success","id":"6"}` (or any object with a status).
    Ok { id: String, status: String },
    /// A bare error string (e-mails already masked) or `false`.
    Rejected { email: String, message: String },
}

impl fmt::Debug for UpsertOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok { id, status } => f.debug_struct("Ok").field("id", id).field("status", status).finish(),
            Self::Rejected { email, message } => {
                f.debug_struct("Rejected").field("email", &mask_email(email)).field("message", message).finish()
            }
        }
    }
}

impl UpsertOutcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_fields_are_sent_only_on_request() {
        let keep = ReceiverUpsert::new("a@example.com").global_attribute("firstname", "A").to_json();
        assert!(keep.get("activated").is_none() && keep.get("deactivated").is_none());
        let act = ReceiverUpsert::new("a@example.com").with_state(StateChange::Activate { at: 5 }).to_json();
        assert_eq!((act["activated"].as_i64(), act["deactivated"].as_i64()), (Some(5), Some(0)));
        let de = ReceiverUpsert::new("a@example.com").with_state(StateChange::Deactivate { at: 7 }).to_json();
        assert!(de.get("activated").is_none());
        assert_eq!(de["deactivated"], 7);
        let ci = ReceiverUpsert::new("a@example.com").with_state(StateChange::CreateInactive).to_json();
        assert_eq!(ci["activated"], 0);
        assert!(ci.get("deactivated").is_none());
    }

    #[test]
    fn receiver_parses_tolerantly_and_debug_masks_email() {
        let r: Receiver = serde_json::from_str(
            r#"{"id":4285,"email":"ivan@test.com","group_id":"240803","activated":"1537774206","registered":1262300400,
                "deactivated":"0","active":"1","attributes":[],"global_attributes":{"firstname":"Ivan","age":3,"x":null},
                "tags":["A.b"],"events":[{"stamp":"1","type":"api","type_id":"REST update","value":"ip","mailing_id":0,"groups_id":"240803"}, "junk"]}"#,
        )
        .unwrap();
        assert_eq!(r.id, "4285");
        assert_eq!(r.activated, 1537774206);
        assert!(r.active);
        assert!(r.attributes.is_empty());
        assert_eq!(r.global_attributes["age"], "3");
        assert_eq!(r.global_attributes["x"], "");
        assert_eq!(r.events.len(), 1);
        assert!(!format!("{r:?}").contains("ivan@test.com"));
    }
}

/// One entry of the account-wide blacklist, `GET /v3/blacklist.json` (fields `email, comment, stamp,
/// isLocked`; shared/reference/cleverreach-api.md §4 "Blacklist (account)", §5.4). CleverReach sends
/// nothing to a blacklisted address from any group (R-E9).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlacklistEntry {
    #[serde(deserialize_with = "lenient::string")]
    pub email: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub comment: String,
    /// When it was blacklisted (unix seconds; 0 = not said).
    #[serde(default, deserialize_with = "lenient::i64_")]
    pub stamp: i64,
    #[serde(default, rename = "isLocked", deserialize_with = "lenient::bool_")]
    pub is_locked: bool,
}

impl fmt::Debug for BlacklistEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlacklistEntry")
            .field("email", &mask_email(&self.email))
            .field("stamp", &self.stamp)
            .field("is_locked", &self.is_locked)
            .finish_non_exhaustive()
    }
}

/// One bounce of the account, `GET /v3/bounces.json?page=&pagesize=` (fields `email, category,
/// occurences, last_update, expires_by, bounce_message, type, type_id`; reference §4 "Bounces"). While
/// it has not expired CleverReach blocks the address, whether or not it deactivated the receiver.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bounce {
    #[serde(deserialize_with = "lenient::string")]
    pub email: String,
    /// `hardbounce`, `softbounce`, …
    #[serde(default, deserialize_with = "lenient::string")]
    pub category: String,
    /// How often it bounced (CleverReach's spelling).
    #[serde(default, deserialize_with = "lenient::i64_")]
    pub occurences: i64,
    /// The last bounce (unix seconds).
    #[serde(default, deserialize_with = "lenient::i64_")]
    pub last_update: i64,
    /// Until when the address is blocked (unix seconds; 0 = not said).
    #[serde(default, deserialize_with = "lenient::i64_")]
    pub expires_by: i64,
    /// The receiving server's answer (may quote the address: never logged).
    #[serde(default, deserialize_with = "lenient::string")]
    pub bounce_message: String,
}

impl Bounce {
    /// A hard bounce CleverReach blocks at `now` (unix seconds): category `hardbounce`, not expired.
    pub fn blocks_hard(&self, now: i64) -> bool {
        self.category.eq_ignore_ascii_case("hardbounce") && (self.expires_by <= 0 || self.expires_by > now)
    }
}

impl fmt::Debug for Bounce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bounce")
            .field("email", &mask_email(&self.email))
            .field("category", &self.category)
            .field("occurences", &self.occurences)
            .field("last_update", &self.last_update)
            .field("expires_by", &self.expires_by)
            .finish_non_exhaustive()
    }
}
