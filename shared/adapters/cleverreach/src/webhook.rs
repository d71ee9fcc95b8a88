//! Webhook intake: the GET verification handshake, `X-CR-Calltoken` authentication and
//! tolerant parsing of receiver events. Framework-agnostic (strings and bytes in, values out).

use std::fmt;

use serde_json::Value;
use subtle::ConstantTimeEq as _;

use crate::model::lenient::value_to_string;
use crate::secret::Secret;

/// Header carrying the call token on event POSTs.
pub const CALL_TOKEN_HEADER: &str = "X-CR-Calltoken";

/// Errors of the webhook intake. Map them to HTTP: `MissingSecret`/`Malformed` → 400,
/// `Unauthorized` → 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("verification request without `secret` parameter")]
    MissingSecret,
    #[error("missing or wrong X-CR-Calltoken")]
    Unauthorized,
    #[error("malformed webhook body: {0}")]
    Malformed(&'static str),
}

impl WebhookError {
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Unauthorized => 401,
            Self::MissingSecret | Self::Malformed(_) => 400,
        }
    }
}

/// Body of the answer to the verification GET: `"<verify> <secret>"` (one space, no newline),
/// served with `200` and `Content-Type: text/plain`.
pub fn verification_answer(verify: &Secret, secret: Option<&str>) -> Result<String, WebhookError> {
    match secret {
        Some(s) if !s.is_empty() => Ok(format!("{} {}", verify.expose(), s)),
        _ => Err(WebhookError::MissingSecret),
    }
}

/// Same as [`verification_answer`], taking the raw query string (`secret=…&…`).
pub fn verification_answer_for_query(verify: &Secret, query: Option<&str>) -> Result<String, WebhookError> {
    let secret = query.and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "secret").map(|(_, v)| v.into_owned())
    });
    verification_answer(verify, secret.as_deref())
}

/// Checks the `X-CR-Calltoken` header value against the stored call token in constant time.
pub fn authenticate(expected: &Secret, header_value: Option<&str>) -> Result<(), WebhookError> {
    let Some(got) = header_value else { return Err(WebhookError::Unauthorized) };
    let exp = expected.expose().as_bytes();
    let got = got.trim().as_bytes();
    if exp.is_empty() || !bool::from(exp.ct_eq(got)) {
        return Err(WebhookError::Unauthorized);
    }
    Ok(())
}

/// The receiver event kinds CleverReach sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiverEventKind {
    Subscribed,
    Unsubscribed,
    Created,
    Updated,
    Deleted,
}

impl ReceiverEventKind {
    pub fn parse(event: &str) -> Option<Self> {
        Some(match event.trim().to_ascii_lowercase().as_str() {
            "receiver.subscribed" => Self::Subscribed,
            "receiver.unsubscribed" => Self::Unsubscribed,
            "receiver.created" => Self::Created,
            "receiver.updated" => Self::Updated,
            "receiver.deleted" => Self::Deleted,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subscribed => "receiver.subscribed",
            Self::Unsubscribed => "receiver.unsubscribed",
            Self::Created => "receiver.created",
            Self::Updated => "receiver.updated",
            Self::Deleted => "receiver.deleted",
        }
    }
}

/// "Re-read this receiver in this group": what a receiver event means for the sync.
#[derive(Clone, PartialEq, Eq)]
pub struct ReceiverChanged {
    pub kind: ReceiverEventKind,
    /// Group id (`condition`).
    pub group_id: String,
    /// `payload.pool_id` — the receiver id; absent on some `receiver.deleted` calls.
    pub pool_id: Option<String>,
    /// `payload.email` when CleverReach sent it (encrypted with the registration secret).
    pub encrypted_email: Option<Secret>,
}

impl fmt::Debug for ReceiverChanged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiverChanged")
            .field("kind", &self.kind)
            .field("group_id", &self.group_id)
            .field("pool_id", &self.pool_id)
            .field("encrypted_email", &self.encrypted_email.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A parsed webhook call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    Receiver(ReceiverChanged),
    /// `group.*`, `form.*`, `filter.*`, `automation.*` or an unknown event: acknowledge, ignore.
    Other {
        event: String,
    },
}

/// Parses an event body tolerantly: `condition` and `pool_id` may be numbers or strings,
/// `payload` may be a JSON-encoded string, the event name is case-insensitive.
pub fn parse_event(body: &[u8]) -> Result<WebhookEvent, WebhookError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| WebhookError::Malformed("not JSON"))?;
    let Value::Object(obj) = v else { return Err(WebhookError::Malformed("not a JSON object")) };
    let event = obj.get("event").map(value_to_string).unwrap_or_default();
    if event.trim().is_empty() {
        return Err(WebhookError::Malformed("no event"));
    }
    let Some(kind) = ReceiverEventKind::parse(&event) else {
        return Ok(WebhookEvent::Other { event: event.trim().to_owned() });
    };
    let payload = match obj.get("payload") {
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).unwrap_or(Value::Null),
        Some(p) => p.clone(),
        None => Value::Null,
    };
    let non_empty =
        |v: Option<&Value>| v.map(value_to_string).map(|s| s.trim().to_owned()).filter(|s| !s.is_empty() && s != "0");
    let group_id = non_empty(obj.get("condition"))
        .or_else(|| non_empty(payload.get("group_id")))
        .or_else(|| non_empty(payload.get("groups_id")))
        .ok_or(WebhookError::Malformed("no condition (group id)"))?;
    let pool_id = non_empty(payload.get("pool_id")).or_else(|| non_empty(payload.get("id")));
    let encrypted_email = non_empty(payload.get("email")).map(Secret::new);
    if pool_id.is_none() && encrypted_email.is_none() {
        return Err(WebhookError::Malformed("payload has neither pool_id nor email"));
    }
    Ok(WebhookEvent::Receiver(ReceiverChanged { kind, group_id, pool_id, encrypted_email }))
}

/// Authenticates and parses an event POST in one step.
pub fn handle_event(
    expected_call_token: &Secret,
    header_value: Option<&str>,
    body: &[u8],
) -> Result<WebhookEvent, WebhookError> {
    authenticate(expected_call_token, header_value)?;
    parse_event(body)
}

/// Turns a webhook, after the receiver was re-read from the API (payloads carry ids only), into the
/// planner's observation for one group. `receiver` is `None` when the re-read found none (deleted).
///
/// * gone → `Deleted` (R-E1);
/// * inactive → `Unsubscribed` if the recipient used the unsubscribe link, else `Deactivated` (admin,
///   import, API, hard bounce: R-E1, R-E6, R-J4), at the deactivation time;
/// * active after `created`/`subscribed` → `Signup` with what CleverReach knows: names from the global
///   attributes `firstname`/`lastname`, registration and activation (double opt-in confirmation) times,
///   and the source (R-E3, R-J1);
/// * active after `updated` → `FieldsChanged` (R-E5).
pub fn observation(
    kind: ReceiverEventKind,
    receiver: Option<&crate::Receiver>,
    email: &optisync_domain::Email,
    group: &optisync_domain::ListId,
    account: &optisync_domain::AccountId,
    received_at: chrono::DateTime<chrono::Utc>,
) -> optisync_domain::EspEvent {
    use optisync_domain::{EspAccount, EspEvent, EspEventKind, Provider};
    let time = |secs: i64| chrono::DateTime::from_timestamp(secs, 0).filter(|_| secs > 0);
    let (at, what) = match receiver {
        None => (received_at, EspEventKind::Deleted),
        Some(r) => match r.deactivation() {
            Some(d) if d.by_recipient => (time(d.at).unwrap_or(received_at), EspEventKind::Unsubscribed),
            Some(d) => (time(d.at).unwrap_or(received_at), EspEventKind::Deactivated),
            None if kind == ReceiverEventKind::Updated => (received_at, EspEventKind::FieldsChanged),
            None => {
                let signup = signup_of(r);
                (time(r.activated).or(time(r.registered)).unwrap_or(received_at), EspEventKind::Signup { signup })
            }
        },
    };
    EspEvent {
        esp: EspAccount { provider: Provider::CleverReach, account: account.clone() },
        list: Some(group.clone()),
        email: email.clone(),
        at,
        what,
    }
}

/// What a receiver tells of its signup (R-J1): names from the `firstname`/`lastname` global attributes,
/// the registration and activation (double opt-in confirmation) times, the source, and the receiver's
/// `last_ip` (the only IP CleverReach supplies for a receiver; for a fresh signup its confirmation click).
pub fn signup_of(r: &crate::Receiver) -> optisync_domain::Signup {
    use optisync_domain::{ConsentEvidence, PersonalText, Signup};
    let time = |secs: i64| chrono::DateTime::from_timestamp(secs, 0).filter(|_| secs > 0);
    let attr = |name: &str| {
        r.global_attributes.get(name).filter(|v| !v.trim().is_empty()).map(|v| PersonalText::new(v.as_str()))
    };
    Signup {
        first_name: attr("firstname"),
        last_name: attr("lastname"),
        evidence: ConsentEvidence {
            signup_at: time(r.registered),
            confirmed_at: time(r.activated),
            source: Some(r.source.clone()).filter(|s| !s.is_empty()),
            ip: Some(r.last_ip.trim()).filter(|ip| !ip.is_empty()).map(PersonalText::new),
            ..Default::default()
        },
    }
}
