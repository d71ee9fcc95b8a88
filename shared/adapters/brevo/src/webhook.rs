//! Intake of Brevo marketing webhooks: tolerant parsing, deduplication key, bearer authentication.
//!
//! Brevo signs nothing; the webhook is registered with `auth: {type: bearer, token}` and every call
//! carries `Authorization: Bearer <token>` ([`authenticate`]). Brevo retries (and may duplicate)
//! deliveries and has no event id, so [`dedupe_key`] derives one from the content.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// Most events one request may carry (M3, T23). Brevo sends one event per call, or with `batched: true`
/// at most 500 per call (its batch-webhooks documentation); more is not Brevo.
pub const MAX_EVENTS_PER_REQUEST: usize = 500;
/// Most list ids one `list_addition` may name (M3, T23): each becomes an observation.
pub const MAX_LISTS_PER_ADDITION: usize = 100;

/// A parsed marketing webhook event.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookEvent {
    /// Campaign unsubscribe link (`unsubscribed` / `unsubscribe`); account-wide blacklist.
    Unsubscribed(CampaignEvent),
    /// `hard_bounce` / `hard_bounced` / `hardBounce`.
    HardBounce(CampaignEvent),
    /// Marked as spam.
    Spam(CampaignEvent),
    /// `list_addition`: added to the lists in `list_ids`.
    ListAddition(ContactEvent),
    /// `contact_updated`.
    ContactUpdated(ContactEvent),
    /// `contact_deleted`.
    ContactDeleted(ContactEvent),
    /// Any other event name (opened, click, …); kept so that callers can log and acknowledge it.
    Other { event: String, ts: Option<i64> },
}

/// Fields of campaign events (unsubscribe, bounce, spam).
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignEvent {
    pub email: String,
    pub campaign_id: Option<i64>,
    pub list_ids: Vec<i64>,
    /// Epoch seconds (UTC) of the event.
    pub ts_event: Option<i64>,
    /// Epoch seconds of the webhook emission.
    pub ts: Option<i64>,
    pub reason: Option<String>,
    /// Internal id of the webhook (not of the event).
    pub webhook_id: Option<i64>,
}

/// Fields of contact events (list addition, update, deletion).
#[derive(Debug, Clone, PartialEq)]
pub struct ContactEvent {
    pub email: String,
    pub list_ids: Vec<i64>,
    pub ts: Option<i64>,
    /// Name of the API key that made the change (empty/None when not via the API).
    pub api_key_name: Option<String>,
    /// `contact_updated` only: the changed attributes, as sent.
    pub content: Option<Value>,
    pub webhook_id: Option<i64>,
}

/// Why a webhook body was rejected. `Display` never contains body content.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error("webhook body is not valid JSON (line {line}, column {column})")]
    MalformedJson { line: usize, column: usize },
    #[error("webhook body is not a JSON object or array of objects")]
    NotAnObject,
    #[error("webhook event has no `event` field")]
    MissingEvent,
    #[error("webhook event `{event}` has no e-mail")]
    MissingEmail { event: String },
    /// More than [`MAX_EVENTS_PER_REQUEST`] events (M3).
    #[error("more than {MAX_EVENTS_PER_REQUEST} events in one request")]
    TooManyEvents,
    /// A `list_addition` naming more than [`MAX_LISTS_PER_ADDITION`] lists (M3).
    #[error("a list_addition names more than {MAX_LISTS_PER_ADDITION} lists")]
    TooManyLists,
}

impl WebhookEvent {
    /// The contact's e-mail, if the event concerns one.
    pub fn email(&self) -> Option<&str> {
        match self {
            WebhookEvent::Unsubscribed(c) | WebhookEvent::HardBounce(c) | WebhookEvent::Spam(c) => Some(&c.email),
            WebhookEvent::ListAddition(c) | WebhookEvent::ContactUpdated(c) | WebhookEvent::ContactDeleted(c) => {
                Some(&c.email)
            }
            WebhookEvent::Other { .. } => None,
        }
    }

    /// Normalised event name (snake_case).
    pub fn name(&self) -> &str {
        match self {
            WebhookEvent::Unsubscribed(_) => "unsubscribed",
            WebhookEvent::HardBounce(_) => "hard_bounce",
            WebhookEvent::Spam(_) => "spam",
            WebhookEvent::ListAddition(_) => "list_addition",
            WebhookEvent::ContactUpdated(_) => "contact_updated",
            WebhookEvent::ContactDeleted(_) => "contact_deleted",
            WebhookEvent::Other { event, .. } => event,
        }
    }

    /// List ids carried by the event.
    pub fn list_ids(&self) -> &[i64] {
        match self {
            WebhookEvent::Unsubscribed(c) | WebhookEvent::HardBounce(c) | WebhookEvent::Spam(c) => &c.list_ids,
            WebhookEvent::ListAddition(c) | WebhookEvent::ContactUpdated(c) | WebhookEvent::ContactDeleted(c) => {
                &c.list_ids
            }
            WebhookEvent::Other { .. } => &[],
        }
    }

    /// `ts_event` when present (UTC time of the event), else `ts`.
    pub fn timestamp(&self) -> Option<i64> {
        match self {
            WebhookEvent::Unsubscribed(c) | WebhookEvent::HardBounce(c) | WebhookEvent::Spam(c) => c.ts_event.or(c.ts),
            WebhookEvent::ListAddition(c) | WebhookEvent::ContactUpdated(c) | WebhookEvent::ContactDeleted(c) => c.ts,
            WebhookEvent::Other { ts, .. } => *ts,
        }
    }

    /// [`Self::timestamp`] as a UTC date-time.
    pub fn occurred_at(&self) -> Option<DateTime<Utc>> {
        self.timestamp().and_then(|s| DateTime::from_timestamp(s, 0))
    }

    fn campaign_id(&self) -> Option<i64> {
        match self {
            WebhookEvent::Unsubscribed(c) | WebhookEvent::HardBounce(c) | WebhookEvent::Spam(c) => c.campaign_id,
            _ => None,
        }
    }
}

/// Parses one event (a JSON object).
pub fn parse_event(body: &[u8]) -> Result<WebhookEvent, WebhookError> {
    let value = parse_json(body)?;
    event_from_value(&value)
}

/// Parses a body that is either one event or (for `batched: true` webhooks) an array of events, at most
/// [`MAX_EVENTS_PER_REQUEST`] of them (M3).
pub fn parse_events(body: &[u8]) -> Result<Vec<WebhookEvent>, WebhookError> {
    match parse_json(body)? {
        Value::Array(items) if items.len() > MAX_EVENTS_PER_REQUEST => Err(WebhookError::TooManyEvents),
        Value::Array(items) => items.iter().map(event_from_value).collect(),
        other => Ok(vec![event_from_value(&other)?]),
    }
}

fn parse_json(body: &[u8]) -> Result<Value, WebhookError> {
    serde_json::from_slice(body).map_err(|e| WebhookError::MalformedJson { line: e.line(), column: e.column() })
}

fn event_from_value(v: &Value) -> Result<WebhookEvent, WebhookError> {
    let obj = v.as_object().ok_or(WebhookError::NotAnObject)?;
    let raw_event = obj.get("event").and_then(Value::as_str).ok_or(WebhookError::MissingEvent)?.trim().to_owned();
    let normalised: String = raw_event.chars().filter(|c| *c != '_' && *c != '-').collect::<String>().to_lowercase();
    let email = || {
        obj.get("email")
            .and_then(Value::as_str)
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty())
            .ok_or_else(|| WebhookError::MissingEmail { event: raw_event.clone() })
    };
    let list_ids = list_ids(obj.get("list_id").or_else(|| obj.get("listIds")).or_else(|| obj.get("list_ids")));
    let ts = obj.get("ts").and_then(int);
    let webhook_id = obj.get("id").and_then(int);
    let campaign = |email: String| CampaignEvent {
        email,
        campaign_id: obj.get("camp_id").or_else(|| obj.get("campaign_id")).and_then(int),
        list_ids: list_ids.clone(),
        ts_event: obj.get("ts_event").and_then(int),
        ts,
        reason: obj.get("reason").and_then(Value::as_str).map(str::to_owned),
        webhook_id,
    };
    let contact = |email: String| ContactEvent {
        email,
        list_ids: list_ids.clone(),
        ts: ts.or_else(|| obj.get("ts_event").and_then(int)),
        api_key_name: obj.get("api_key_name").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned),
        content: obj.get("content").cloned(),
        webhook_id,
    };
    Ok(match normalised.as_str() {
        "unsubscribed" | "unsubscribe" => WebhookEvent::Unsubscribed(campaign(email()?)),
        "hardbounce" | "hardbounced" => WebhookEvent::HardBounce(campaign(email()?)),
        "spam" => WebhookEvent::Spam(campaign(email()?)),
        // M3: every list id of an addition becomes an observation, so their number is capped.
        "listaddition" if list_ids.len() > MAX_LISTS_PER_ADDITION => return Err(WebhookError::TooManyLists),
        "listaddition" => WebhookEvent::ListAddition(contact(email()?)),
        "contactupdated" => WebhookEvent::ContactUpdated(contact(email()?)),
        "contactdeleted" => WebhookEvent::ContactDeleted(contact(email()?)),
        _ => {
            // Never the name as received: a crafted one could be an address (R-J5, M10).
            tracing::info!(event = known_event_name(&normalised), "brevo webhook: unhandled event name");
            WebhookEvent::Other { event: raw_event, ts: obj.get("ts_event").and_then(int).or(ts) }
        }
    })
}

/// The names Brevo documents for its transactional, marketing and contact webhooks (normalised: lower
/// case, without `_` and `-`); any other name is logged as `unknown` (R-J5, M10).
fn known_event_name(normalised: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "sent",
        "request",
        "delivered",
        "opened",
        "uniqueopened",
        "proxyopen",
        "uniqueproxyopen",
        "click",
        "softbounce",
        "softbounced",
        "deferred",
        "invalidemail",
        "blocked",
        "error",
        "hardbounce",
        "spam",
        "unsubscribed",
        "listaddition",
        "contactupdated",
        "contactdeleted",
    ];
    KNOWN.iter().find(|k| **k == normalised).copied().unwrap_or("unknown")
}

/// A number, a numeric string, or a float (truncated).
fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse::<i64>().ok().or_else(|| s.trim().parse::<f64>().ok().map(|f| f as i64)),
        _ => None,
    }
}

/// `[3, "42"]`, `3`, `"3"` or `"3,42"`.
fn list_ids(v: Option<&Value>) -> Vec<i64> {
    let mut ids: Vec<i64> = match v {
        Some(Value::Array(items)) => items.iter().filter_map(int).collect(),
        Some(Value::String(s)) => s.split(',').filter_map(|p| p.trim().parse().ok()).collect(),
        Some(other) => int(other).into_iter().collect(),
        None => vec![],
    };
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Deduplication key of an event: SHA-256 (hex) over event name, normalised e-mail, sorted list ids,
/// timestamp (`ts_event`, else `ts`) and campaign id. It contains no e-mail address.
pub fn dedupe_key(event: &WebhookEvent) -> String {
    let email = event.email().map(|e| e.trim().to_lowercase()).unwrap_or_default();
    let lists: Vec<String> = event.list_ids().iter().map(i64::to_string).collect();
    let material = format!(
        "brevo-webhook-v1\n{}\n{}\n{}\n{}\n{}",
        event.name(),
        email,
        lists.join(","),
        event.timestamp().map(|t| t.to_string()).unwrap_or_default(),
        event.campaign_id().map(|c| c.to_string()).unwrap_or_default(),
    );
    hex::encode(Sha256::digest(material.as_bytes()))
}

/// Checks `Authorization: Bearer <token>` against the expected token in constant time.
/// An empty expected token never authenticates.
pub fn authenticate(authorization_header: Option<&str>, expected_token: &str) -> bool {
    authenticate_any(authorization_header, &[expected_token])
}

/// Checks `Authorization: Bearer <token>` against each of the expected tokens (the current and, during a
/// rotation's overlap, the previous one, M3). Every token is compared, in constant time, whichever
/// matches; an empty expected token never authenticates.
pub fn authenticate_any(authorization_header: Option<&str>, expected_tokens: &[&str]) -> bool {
    let Some(header) = authorization_header else { return false };
    let header = header.trim();
    let Some((scheme, token)) = header.split_once(' ') else { return false };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    // Hash both sides so that the comparison does not leak the token length either.
    let given = Sha256::digest(token.trim().as_bytes());
    let mut matched = Choice::from(0);
    for expected_token in expected_tokens {
        let expected = Sha256::digest(expected_token.as_bytes());
        let usable = Choice::from(u8::from(!expected_token.is_empty()));
        matched |= given.as_slice().ct_eq(expected.as_slice()) & usable;
    }
    matched.into()
}

/// Turns a parsed webhook into the planner's ESP observations for one Brevo account.
///
/// * unsubscribe → `Unsubscribed`, account-wide (R-E2; the recipient's own revocation, which erasure mode
///   acts on, R-J2, R-J4);
/// * spam complaint → `Blacklisted`, account-wide (R-E2; not an unsubscribe link or form, R-J4);
/// * hard bounce → `Deactivated`, account-wide (R-E6: Brevo's automatic deactivation, not a revocation, R-J4);
/// * contact deleted → `Deleted`, account-wide (R-E1);
/// * list addition → a `Signup` per list (R-E3); our own additions (made with our API key, named in
///   `api_key_name`) are echoes and are dropped;
/// * contact updated → `FieldsChanged` (R-E5: ignored by the rules);
/// * anything else, or an address that is not valid → nothing.
///
/// `received_at` stands in when the payload carries no time.
pub fn observations(
    event: &WebhookEvent,
    account: &optisync_domain::AccountId,
    own_api_key_name: Option<&str>,
    received_at: DateTime<Utc>,
) -> Vec<optisync_domain::EspEvent> {
    use optisync_domain::{Email, EspAccount, EspEvent, EspEventKind, ListId, Provider, Signup};
    let Some(email) = event.email().and_then(|e| Email::parse(e).ok()) else { return Vec::new() };
    let esp = EspAccount { provider: Provider::Brevo, account: account.clone() };
    let at = event.occurred_at().unwrap_or(received_at);
    let one =
        |list: Option<ListId>, what: EspEventKind| EspEvent { esp: esp.clone(), list, email: email.clone(), at, what };
    match event {
        WebhookEvent::Unsubscribed(_) => vec![one(None, EspEventKind::Unsubscribed)],
        WebhookEvent::Spam(_) => vec![one(None, EspEventKind::Blacklisted)],
        WebhookEvent::HardBounce(_) => vec![one(None, EspEventKind::Deactivated)],
        WebhookEvent::ContactDeleted(_) => vec![one(None, EspEventKind::Deleted)],
        WebhookEvent::ContactUpdated(_) => vec![one(None, EspEventKind::FieldsChanged)],
        WebhookEvent::ListAddition(c) => {
            let ours = matches!((c.api_key_name.as_deref(), own_api_key_name), (Some(by), Some(own)) if !own.is_empty() && by == own);
            if ours {
                return Vec::new();
            }
            c.list_ids
                .iter()
                .map(|list| {
                    // R-J1: what Brevo tells of the signup is its time and that it came as a list addition
                    // (a form or an import); names are not in the payload.
                    let signup = Signup {
                        evidence: optisync_domain::ConsentEvidence {
                            signup_at: Some(at),
                            source: Some("brevo:list_addition".to_owned()),
                            ..Default::default()
                        },
                        ..Signup::default()
                    };
                    one(Some(ListId::new(list.to_string())), EspEventKind::Signup { signup })
                })
                .collect()
        }
        WebhookEvent::Other { .. } => Vec::new(),
    }
}
